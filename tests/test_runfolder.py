"""A run folder has one owner (issue 36): locks for run, resume, --force, limit and sweeps; --force
retires the old run first; a refused run leaves the folder as it was; messages that name the right
thing; keyed seals.

The race of two runs into one folder is reproduced every time by a shim that delays the start of
every file write by 0.5 s (a slow shared file system): without the lock, both runs printed "saved"
and the folder's config.toml disagreed with its result in 3 of 3 tries.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import meanfield as mf
from meanfield.store import checkpoint, files, runfolder
from meanfield.tools.cli import main

from .conftest import assert_same_run, interruptible
from .test_faults import CLI, cli, mount, one_line_error, wait_for

CFG = mf.Config(seed=3, network={"m": 40, "d": 3}, data={"n": 30},
                flow={"dt": 0.05, "t_end": 3.0}, record={"n_records": 10, "spacing": "linear"})
SHIM = '''import tempfile, time
_mkstemp = tempfile.mkstemp
def _slow_mkstemp(*args, **kwargs):
    time.sleep(0.5)
    return _mkstemp(*args, **kwargs)
tempfile.mkstemp = _slow_mkstemp
'''


@pytest.fixture
def slow_writes(tmp_path):
    """The environment of a process whose every atomic write starts 0.5 s late."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}


def config_file(tmp_path, cfg=CFG, name="c.toml"):
    path = tmp_path / name
    path.write_text(cfg.to_toml())
    return path


def listing(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


# --- 1. one owner -------------------------------------------------------------------------------

def test_two_runs_into_one_folder_one_is_refused_naming_the_other_and_nothing_is_lost(tmp_path, slow_writes):
    out = tmp_path / "run"
    configs = [config_file(tmp_path, CFG.updated({"seed": seed}), f"c{seed}.toml") for seed in (1, 2)]
    procs = [subprocess.Popen([*CLI, "run", str(c), "--out", str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=slow_writes) for c in configs]
    outcomes = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outcomes
    winner = [k for k, p in enumerate(procs) if p.returncode == 0][0]
    loser = 1 - winner
    one_line_error(outcomes[loser][1])
    assert (f"in use by process {procs[winner].pid}" in outcomes[loser][1]
            or "exists and is not empty" in outcomes[loser][1]), outcomes[loser][1]
    saved = mf.Result.load(out)
    assert saved.config == mf.Config.from_toml(out / "config.toml") == mf.Config.from_toml(configs[winner])
    assert_same_run(saved, mf.simulate(saved.config))


def test_a_held_folder_refuses_run_force_resume_and_limit_naming_the_holder(tmp_path, slow_writes):
    out = tmp_path / "run"
    config = config_file(tmp_path, CFG.updated({"flow.t_end": 60.0, "record.n_records": 100,
                                                "record.checkpoint_seconds": 0.0}))      # a write at every record
    first = interruptible([*CLI, "run", str(config), "--out", str(out)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=slow_writes)
    lock = out / runfolder.LOCK
    try:
        assert wait_for(lambda: lock.exists() and lock.read_text().startswith(f"{first.pid} (meanfield run"))
        for args in (("run", config, "--out", out), ("run", config, "--out", out, "--force"), ("resume", out),
                     ("limit", config, "--out", out, "--force")):
            before = time.monotonic()
            proc = cli(*args)
            assert proc.returncode == 2, (args, proc.stderr)
            one_line_error(proc.stderr, f"{str(out)!r} is in use by process {first.pid} (meanfield run {config}")
            assert time.monotonic() - before < 30
        assert wait_for(lambda: checkpoint.exists(out))
    finally:
        first.send_signal(signal.SIGINT)
        said = first.communicate(timeout=60)
    assert first.returncode == 130, said
    assert not lock.exists()                       # released: removed by its owner
    assert cli("resume", out).returncode == 0
    assert_same_run(mf.Result.load(out), mf.simulate(mf.Config.from_toml(config)))


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "run"
    config = config_file(tmp_path, CFG.updated({"flow.t_end": 600.0, "network.m": 400, "data.n": 400}))
    proc = interruptible([*CLI, "run", str(config), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: checkpoint.exists(out))
    proc.kill()
    proc.communicate()
    assert (out / runfolder.LOCK).read_text().startswith(str(proc.pid))      # the file stays; its lock does not
    with runfolder.lock(out, "RUN_DIR"):
        assert (out / runfolder.LOCK).read_text().startswith(f"{os.getpid()} ")
    assert not (out / runfolder.LOCK).exists()


def test_the_lock_is_reentrant_in_one_process_and_exclusive_between_processes(tmp_path):
    with runfolder.lock(tmp_path):
        with runfolder.lock(tmp_path):               # simulate(checkpoint=) inside `meanfield run`
            pass
        assert (tmp_path / runfolder.LOCK).exists()
        probe = subprocess.run([sys.executable, "-c", "from meanfield import runfolder; import sys\n"
                                f"with runfolder.lock({str(tmp_path)!r}, 'checkpoint'): pass"],
                               capture_output=True, text=True)
        assert probe.returncode == 1
        assert f"is in use by process {os.getpid()}" in probe.stderr
        assert "choose another checkpoint" in probe.stderr
    assert not (tmp_path / runfolder.LOCK).exists()


def test_simulate_with_a_checkpoint_folder_held_elsewhere_is_refused(tmp_path):
    holder = interruptible([sys.executable, "-c", "from meanfield import runfolder; import time\n"
                            f"with runfolder.lock({str(tmp_path)!r}): time.sleep(60)"])
    try:
        assert wait_for(lambda: (tmp_path / runfolder.LOCK).exists()
                        and (tmp_path / runfolder.LOCK).read_text().startswith(str(holder.pid)))
        with pytest.raises(mf.ConfigError, match=f"in use by process {holder.pid}") as info:
            mf.simulate(CFG, checkpoint=tmp_path)
        assert info.value.parameter == "checkpoint"
    finally:
        holder.kill()
        holder.communicate()


# --- 2. --force retires the old run first -------------------------------------------------------

def test_force_retires_the_old_result_before_the_new_run_writes(tmp_path):
    out = tmp_path / "run"
    old = config_file(tmp_path, CFG, "old.toml")
    assert cli("run", old, "--out", out).returncode == 0
    new_cfg = CFG.updated({"seed": 9, "flow.t_end": 60.0, "network.m": 400, "data.n": 400})
    new = config_file(tmp_path, new_cfg, "new.toml")
    proc = interruptible([*CLI, "run", str(new), "--out", str(out), "--force"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert wait_for(lambda: checkpoint.exists(out))
    proc.kill()
    proc.communicate()
    assert sorted(runfolder.contents(out)) == sorted(["config.toml", checkpoint.STATE,
                                                      next(out.glob("checkpoint-*.npz")).name])
    assert mf.Config.from_toml(out / "config.toml") == new_cfg
    with pytest.raises(mf.CorruptedResultError, match="holds no manifest.json"):
        mf.Result.load(out)                       # the old result is gone, not shown as this folder's
    assert "completed" not in cli("show", out).stdout
    assert cli("resume", out).returncode == 0
    assert_same_run(mf.Result.load(out), mf.simulate(new_cfg))


def test_force_with_a_refused_config_leaves_the_old_run_as_it_was(tmp_path):
    out = tmp_path / "run"
    assert cli("run", config_file(tmp_path), "--out", out).returncode == 0
    before = listing(out)
    for bad in (CFG.updated({"network.m": 10**9, "record.snapshots": False}),      # memory
                CFG.updated({"data.teacher_scale": 1e300})):                         # overflow at t = 0
        proc = cli("run", config_file(tmp_path, bad, "bad.toml"), "--out", out, "--force")
        assert proc.returncode == 2, proc.stderr
        one_line_error(proc.stderr)
        assert listing(out) == before
    assert_same_run(mf.Result.load(out), mf.simulate(CFG))


# --- 3. a refused run leaves the folder as it was -----------------------------------------------

@pytest.mark.parametrize("changes,needle", [
    ({"network.m": 10**9, "record.snapshots": False}, "network.m = 1000000000"),
    ({"data.teacher_scale": 1e300}, "overflows float64"),
    ({"network.depth": 2, "data.teacher_scale": 1e300}, "overflows float64"),
    ({"flow.batch_size": 31}, "flow.batch_size = 31"),
])
@pytest.mark.parametrize("existed", [False, True])
def test_a_refused_run_writes_nothing_and_the_corrected_rerun_needs_no_force(tmp_path, changes, needle, existed):
    out = tmp_path / "run"
    if existed:
        out.mkdir()
    proc = cli("run", config_file(tmp_path, CFG.updated(changes)), "--out", out)
    assert proc.returncode == 2, proc.stderr
    one_line_error(proc.stderr, needle)
    assert listing(out) == ({} if existed else None)
    assert cli("run", config_file(tmp_path), "--out", out).returncode == 0


def test_a_refused_limit_writes_nothing(tmp_path):
    out = tmp_path / "limit"
    proc = cli("limit", config_file(tmp_path, CFG.updated({"network.depth": 2})), "--out", out)
    assert proc.returncode == 2
    one_line_error(proc.stderr, "network.depth = 2", "two-layer")
    assert "theta0" not in proc.stderr
    assert not out.exists()


# --- 4. messages ---------------------------------------------------------------------------------

def test_a_memory_refusal_of_a_very_deep_network_names_the_depth():
    with pytest.raises(mf.ConfigError, match="network.depth = 1000000") as info:
        mf.simulate(CFG.updated({"network.depth": 10**6}))
    assert info.value.parameter == "network.depth"
    with pytest.raises(mf.ConfigError, match="network.m = 1000000: reduce network.m") as info:
        mf.simulate(CFG.updated({"network.depth": 3, "network.m": 10**6}))
    assert info.value.parameter == "network.m"


def test_a_symbolic_link_as_out_is_followed_or_named(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    config = config_file(tmp_path, CFG.updated({"flow.t_end": 0.5}))
    assert cli("run", config, "--out", tmp_path / "link").returncode == 0
    assert mf.Result.load(target).config.flow.t_end == 0.5
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    proc = cli("run", config, "--out", tmp_path / "dangling")
    assert proc.returncode == 2
    one_line_error(proc.stderr, "is a symbolic link to", "which does not exist")
    (tmp_path / "file").write_text("x")
    (tmp_path / "tofile").symlink_to(tmp_path / "file")
    proc = cli("run", config, "--out", tmp_path / "tofile")
    assert proc.returncode == 2
    one_line_error(proc.stderr, "it is a symbolic link to a file")


# --- 5. a Gaussian bandwidth whose square underflows -------------------------------------------

@pytest.mark.parametrize("bandwidth", [1e-300, 1e-155, 1e200])
def test_a_gaussian_bandwidth_outside_float64_is_refused_by_name(tmp_path, bandwidth):
    with pytest.raises(mf.ConfigError, match="flow.interaction.bandwidth") as info:
        CFG.updated({"flow.interaction.kind": "gaussian", "flow.interaction.bandwidth": bandwidth})
    assert info.value.parameter == "flow.interaction.bandwidth"
    narrow = CFG.updated({"flow.interaction.kind": "gaussian", "flow.interaction.bandwidth": 1.1e-154,
                          "flow.t_end": 0.5})
    result = mf.simulate(narrow, throw=False)                  # the narrowest allowed runs, no traceback
    assert result.status in ("completed", "diverged")


# --- 6. limit checks its folder before work -----------------------------------------------------

def test_limit_into_a_read_only_folder_fails_before_any_work(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder))
    try:
        tic = time.monotonic()
        proc = cli("limit", config_file(tmp_path, CFG.updated({"record.snapshots": True, "flow.t_end": 300.0})),
                   "--out", folder / "lim")
        took = time.monotonic() - tic
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)
    assert proc.returncode == 2
    one_line_error(proc.stderr, "Read-only file system", str(folder / "lim"))
    assert took < 10                     # the limit itself takes about 45 s (7 s at t_end = 30)


# --- 7. what the seal detects, and the keyed seal -----------------------------------------------

def test_a_plain_seal_detects_edits_but_not_a_reseal_and_a_keyed_seal_detects_both(tmp_path, monkeypatch):
    result = mf.simulate(CFG.updated({"flow.t_end": 0.5}))
    monkeypatch.delenv(files.KEY_VARIABLE, raising=False)
    result.save(tmp_path / "plain")
    manifest = tmp_path / "plain" / "manifest.json"
    document = json.loads(manifest.read_text())
    document["status"] = "diverged"
    manifest.write_text(json.dumps(document))
    with pytest.raises(mf.CorruptedResultError, match="its SHA-256 does not match"):
        mf.Result.load(tmp_path / "plain")
    files.write_sealed(manifest, document)                  # a deliberate re-seal: a plain digest accepts it
    assert mf.Result.load(tmp_path / "plain").status == "diverged"

    monkeypatch.setenv(files.KEY_VARIABLE, "lab secret")
    with pytest.raises(mf.CorruptedResultError, match="has no keyed seal"):
        mf.Result.load(tmp_path / "plain")
    result.save(tmp_path / "keyed")
    assert mf.Result.load(tmp_path / "keyed").status == "completed"
    keyed = tmp_path / "keyed" / "manifest.json"
    document = json.loads(keyed.read_text())
    assert files.KEYED_SEAL in document and files.SEAL not in document
    document["status"] = "diverged"
    body = {k: v for k, v in document.items() if k != files.KEYED_SEAL}
    keyed.write_text(json.dumps({**body, files.SEAL: files.json_sha256(body)}))     # a forger without the key
    with pytest.raises(mf.CorruptedResultError, match="has no keyed seal"):
        mf.Result.load(tmp_path / "keyed")
    monkeypatch.setenv(files.KEY_VARIABLE, "another key")
    files.write_sealed(keyed, body)                          # re-sealed under a wrong key
    monkeypatch.setenv(files.KEY_VARIABLE, "lab secret")
    with pytest.raises(mf.CorruptedResultError, match="its HMAC under the key does not match"):
        mf.Result.load(tmp_path / "keyed")
    monkeypatch.delenv(files.KEY_VARIABLE)
    with pytest.raises(mf.CorruptedResultError, match="sealed with a key: set MEANFIELD_SEAL_KEY"):
        mf.Result.load(tmp_path / "keyed")


def test_a_keyed_checkpoint_resumes_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setenv(files.KEY_VARIABLE, "lab secret")
    config = config_file(tmp_path, CFG.updated({"flow.t_end": 600.0, "network.m": 400, "data.n": 400,
                                                "record.checkpoint_seconds": 0.0}))
    out = tmp_path / "run"
    proc = interruptible([*CLI, "run", str(config), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: checkpoint.exists(out) and json.loads((out / checkpoint.STATE).read_text())["done"] > 0)
    proc.send_signal(signal.SIGINT)
    proc.communicate()
    assert proc.returncode == 130
    assert files.KEYED_SEAL in json.loads((out / checkpoint.STATE).read_text())
    assert main(["resume", str(out)]) == 0
    assert_same_run(mf.Result.load(out), mf.simulate(mf.Config.from_toml(config)))
