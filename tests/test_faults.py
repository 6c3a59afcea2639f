"""The fault corpus: one case per kind of fault a user meets. Each asserts the exit code (or the
error class), that the message names the parameter or path, and that nothing was lost.

Categories (issue 17): 1 kills, 2 tampering, 3 file systems, 4 sweeps, 5 horizon, 6 messages,
7 progress, 8 looking at a run, 9 where figures go.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import meanfield as mf
from meanfield.engine.problem import record_steps
from meanfield.store import checkpoint, files, runfolder
from meanfield.tools import sweep
from meanfield.tools.cli import main

from .conftest import assert_same_run, interrupt_at_record, interruptible

CFG = mf.Config(seed=3, network={"m": 40, "d": 3}, data={"n": 30},
                flow={"dt": 0.05, "t_end": 60.0, "temperature": 0.01},
                record={"n_records": 30, "spacing": "linear"})
CLI = [sys.executable, "-m", "meanfield.tools.cli"]


def one_line_error(err: str, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def cli(*args, **kwargs):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kwargs)


def wait_for(predicate, seconds=60.0):
    deadline = time.time() + seconds
    while not predicate() and time.time() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module")
def whole():
    """The uninterrupted run of a slow-enough config (about 3 s of stepping)."""
    cfg = CFG.updated({"network.m": 400, "data.n": 400, "flow.t_end": 120.0})
    return cfg, mf.simulate(cfg)


# --- 1. no lost work after a kill ------------------------------------------------------------

@pytest.mark.parametrize("moment", ["first record", "later"])
def test_sigkill_then_resume_gives_the_uninterrupted_run(whole, tmp_path, moment):
    cfg, result = whole
    if moment == "later":
        cfg_file = cfg.updated({"record.checkpoint_seconds": 0.0})
    else:
        cfg_file = cfg                                       # default checkpoint_seconds: only the first record
    config = tmp_path / "c.toml"
    config.write_text(cfg_file.to_toml())
    out = tmp_path / "run"
    proc = interruptible([*CLI, "run", str(config), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    seen = wait_for(lambda: checkpoint.exists(out) and (moment == "first record" or
                                                       json.loads((out / checkpoint.STATE).read_text())["done"] > 200))
    proc.kill()
    proc.communicate()
    assert seen
    assert proc.returncode == -signal.SIGKILL
    done = cli("resume", out)
    assert done.returncode == 0, done.stderr
    assert_same_run(mf.Result.load(out), mf.simulate(cfg_file) if moment == "later" else result)


def test_a_run_killed_before_its_first_checkpoint_says_so_and_how_to_start_again(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text(CFG.updated({"flow.t_end": 1.0}).to_toml())
    refused = cli("resume", out)
    assert refused.returncode == 2
    one_line_error(refused.stderr, "before its first checkpoint",
                   f"meanfield run {out / 'config.toml'} --out {out} --force")
    again = cli("run", out / "config.toml", "--out", out, "--force")
    assert again.returncode == 0, again.stderr
    busy = cli("run", out / "config.toml", "--out", out)
    assert busy.returncode == 2
    one_line_error(busy.stderr, f"`meanfield resume {out}`")                # the real folder, no placeholder
    finished = cli("resume", out)
    one_line_error(finished.stderr, "has finished", f"meanfield show {out}")


# --- 2. tamper-evident checkpoints (results: tests/test_results.py) ------------------------

def interrupted(tmp_path, cfg=CFG):
    """A checkpoint folder of ``cfg`` stopped at its 10th record."""
    cfg = cfg.updated({"record.checkpoint_seconds": 0.0})
    with pytest.MonkeyPatch.context() as patch:
        interrupt_at_record(patch, 9)
        with pytest.raises(KeyboardInterrupt):
            mf.simulate(cfg, checkpoint=tmp_path)
    return cfg


def edit_state(folder, change, reseal=False):
    path = folder / checkpoint.STATE
    document = json.loads(path.read_text())
    change(document)
    if reseal:
        files.write_sealed(path, document)
    else:
        path.write_text(json.dumps(document))


def rewrite_checkpoint_theta(folder):
    path = next(folder.glob("checkpoint-*.npz"))
    arrays = dict(np.load(path))
    arrays["theta"][0, 0] += 1e-9
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize("damage,match", [
    (lambda f: edit_state(f, lambda d: d.update(done=d["done"] + 100)), "changed after it was written"),
    (lambda f: edit_state(f, lambda d: d.update(done=10**9), reseal=True), "done = 1000000000"),
    (lambda f: edit_state(f, lambda d: d.update(done=d["done"] * 3 // 2), reseal=True), "contradicts itself"),
    (lambda f: edit_state(f, lambda d: d.pop("rng_states"), reseal=True), "lacks the field 'rng_states'"),
    (rewrite_checkpoint_theta, "'theta'.*changed after"),
    (lambda f: next(f.glob("checkpoint-*.npz")).unlink(), "corrupted or truncated"),
])
def test_an_edited_checkpoint_is_refused_naming_the_file(tmp_path, damage, match):
    cfg = interrupted(tmp_path)
    damage(tmp_path)
    with pytest.raises(mf.CorruptedResultError, match=match) as info:
        mf.simulate(cfg, checkpoint=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_a_checkpoint_is_one_arrays_file_named_by_its_seal(tmp_path):
    cfg = interrupted(tmp_path)
    state = files.read_sealed(tmp_path / checkpoint.STATE, "a checkpoint")
    assert [p.name for p in tmp_path.glob("checkpoint-*.npz")] == [state["arrays_file"]]
    assert state["done"] == 8 * cfg.flow.n_steps // 29           # the 9th linear record of 30
    checkpoint.remove(tmp_path)
    assert not list(tmp_path.iterdir())


# --- 3. file-system faults ---------------------------------------------------------------

def mount(*args):
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"mounting is not permitted here: {exc}")


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    mount("--bind", str(folder), str(folder))
    try:
        mount("-o", "remount,ro,bind", str(folder))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_read_only_folder_is_one_line_for_run_sweep_and_save(tmp_path, read_only):
    config = tmp_path / "c.toml"
    config.write_text(CFG.updated({"flow.t_end": 1.0}).to_toml())
    for args in (("run", config, "--out", read_only / "run"),
                 ("sweep", tmp_path / "s.toml", "--out", read_only / "sweep")):
        (tmp_path / "s.toml").write_text(config.read_text() + '\n[sweep]\n"network.m" = [4, 6]\n')
        proc = cli(*args)
        assert proc.returncode == 2
        one_line_error(proc.stderr, str(read_only), "Read-only file system")
    result = mf.simulate(CFG.updated({"flow.t_end": 1.0}))
    with pytest.raises(mf.OutputError, match="Read-only file system"):
        result.save(read_only / "saved")
    assert not list(read_only.iterdir())


def test_a_full_disk_keeps_the_last_checkpoint_and_names_it(tmp_path, small_disk):
    cfg = CFG.updated({"network.m": 1000, "flow.t_end": 30.0, "record.n_records": 60,
                       "record.checkpoint_seconds": 0.0})             # each checkpoint larger than the last
    config = tmp_path / "c.toml"
    config.write_text(cfg.to_toml())
    proc = cli("run", config, "--out", small_disk / "run")
    assert proc.returncode == 2
    one_line_error(proc.stderr, "No space left on device", "the last checkpoint, at t = ", "is kept in")
    steps = record_steps(cfg.flow.n_steps, cfg.record.n_records, cfg.record.spacing)
    kept = checkpoint.load(small_disk / "run", cfg, checkpoint.arrays_hash(*_run_arrays(cfg)), ["theta"], steps)
    assert kept.done > 0
    assert kept.done * cfg.flow.dt == pytest.approx(float(proc.stderr.split("at t = ")[1].split(" ")[0]))


def test_a_deep_run_on_a_full_disk_keeps_the_last_checkpoint_and_names_it(tmp_path, small_disk):
    """The disk fills while a deep run writes a checkpoint at every record: the same one line as a
    two-layer run's (one controller), and the checkpoint it names resumes."""
    cfg = mf.Config(seed=3, network={"m": 64, "d": 3, "depth": 2}, data={"n": 30},
                    flow={"dt": 0.01, "t_end": 100.0},
                    record={"n_records": 1000, "spacing": "linear", "checkpoint_seconds": 0.0})
    config = tmp_path / "c.toml"
    config.write_text(cfg.to_toml())
    out = small_disk / "run"
    proc = interruptible([*CLI, "run", str(config), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert wait_for(lambda: checkpoint.exists(out) and json.loads((out / checkpoint.STATE).read_text())["done"] > 0)
    with open(small_disk / "filler", "wb") as handle:          # take every byte left
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    one_line_error(err, "No space left on device", "the last checkpoint, at t = ", "is kept in")
    (small_disk / "filler").unlink()
    assert cli("resume", out).returncode == 0
    assert_same_run_but_snapshots(mf.Result.load(out), mf.simulate(cfg))


def assert_same_run_but_snapshots(a, b):
    np.testing.assert_array_equal(a.theta, b.theta)
    for name in a.observables:
        np.testing.assert_array_equal(a.observables[name], b.observables[name])


def _run_arrays(cfg):
    from meanfield.model.data import make_data
    from meanfield.model.init import initial_particles

    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    data = make_data(cfg, np.random.default_rng(seeds[0]))
    theta0 = initial_particles(cfg.network, cfg.init, np.random.default_rng(seeds[1]))
    return data.X, data.y, data.X_test, data.y_test, theta0


def test_an_output_path_that_is_a_file_is_one_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(CFG.updated({"flow.t_end": 1.0}).to_toml())
    (tmp_path / "taken").write_text("x")
    proc = cli("run", config, "--out", tmp_path / "taken")
    assert proc.returncode == 2
    one_line_error(proc.stderr, "it is a file")


# --- 4. sweeps -------------------------------------------------------------------------------

def sweep_file(tmp_path, values=(300, 310, 320, 330), t_end=200.0):
    base = CFG.updated({"network.m": 300, "data.n": 300, "flow.t_end": t_end, "record.checkpoint_seconds": 0.0})
    path = tmp_path / "s.toml"
    path.write_text(base.to_toml() + f'\n[sweep]\n"network.m" = {list(values)}\n')
    return path


def worker_pids(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("scheduler", ["processes", "local"])
def test_sigkill_of_a_sweep_leaves_no_worker_writing(tmp_path, scheduler):
    if scheduler == "local":
        pytest.importorskip("distributed")
    out = tmp_path / "out"
    proc = interruptible([*CLI, "sweep", str(sweep_file(tmp_path)), "--out", str(out), "--scheduler", scheduler,
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: len(list(out.glob("points/*/checkpoint.json"))) >= 2, 120)
    workers = worker_pids(proc.pid)
    assert workers
    proc.kill()
    proc.communicate()
    assert wait_for(lambda: not any(alive(p) for p in workers), 5)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    time.sleep(1.5)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_sigint_stops_a_sweep_within_two_seconds_keeping_checkpoints_and_it_resumes(tmp_path):
    out = tmp_path / "out"
    config = sweep_file(tmp_path, values=(300, 310))
    proc = interruptible([*CLI, "sweep", str(config), "--out", str(out), "--scheduler", "processes",
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: len(list(out.glob("points/*/checkpoint.json"))) == 2, 120)
    tic = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - tic < 2.5
    assert proc.returncode == 130
    assert "continues the sweep" in err
    assert len(list(out.glob("points/*/checkpoint.json"))) == 2
    assert cli("sweep", config, "--out", out, "--scheduler", "serial").returncode == 0
    for point in sweep.expand(*sweep.load(config)):
        assert_same_run(mf.Result.load(out / "points" / point.id), mf.simulate(point.config))


def test_a_second_sweep_on_a_busy_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    config = sweep_file(tmp_path, values=(300,))
    first = interruptible([*CLI, "sweep", str(config), "--out", str(out), "--scheduler", "serial"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = out / runfolder.LOCK
    assert wait_for(lambda: lock.exists() and lock.read_text().startswith(f"{first.pid} (meanfield sweep"))
    second = cli("sweep", config, "--out", out)
    first.kill()
    first.communicate()
    assert second.returncode == 2
    one_line_error(second.stderr, f"is in use by process {first.pid} (meanfield sweep {config}")


@pytest.mark.parametrize("args,needle", [(["--scheduler", "bogus"], "--scheduler = 'bogus'"),
                                         (["--workers", "0"], "--workers = 0"),
                                         (["--workers", "-2"], "--workers = -2"),
                                         (["--workers", "two"], "--workers: invalid int value"),
                                         (["--redo", "nosuchpoint"], "--redo = 'nosuchpoint'")])
def test_bad_sweep_options_are_one_line(tmp_path, args, needle):
    proc = cli("sweep", sweep_file(tmp_path, values=(4,), t_end=1.0), "--out", tmp_path / "out", *args)
    assert proc.returncode == 2
    one_line_error(proc.stderr, needle)


def test_an_unreachable_dask_scheduler_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    proc = cli("sweep", sweep_file(tmp_path, values=(4,), t_end=1.0), "--out", tmp_path / "out",
               "--scheduler", "tcp://127.0.0.1:9")
    assert proc.returncode == 2
    one_line_error(proc.stderr, "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")


def test_a_damaged_point_says_how_to_redo_it_and_redo_restores_it(tmp_path):
    config = sweep_file(tmp_path, values=(4, 6), t_end=1.0)
    out = tmp_path / "out"
    assert cli("sweep", config, "--out", out).returncode == 0
    point = sweep.expand(*sweep.load(config))[1]
    manifest = out / "points" / point.id / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"completed"', '"diverged"'))
    proc = cli("sweep", config, "--out", out)
    assert proc.returncode == 2
    one_line_error(proc.stderr, f"point {point.id}", f"meanfield sweep {config} --out {out} --redo {point.id}")
    assert cli("sweep", config, "--out", out, "--redo", point.id).returncode == 0
    assert_same_run(mf.Result.load(out / "points" / point.id), mf.simulate(point.config))


# --- 5. the horizon ------------------------------------------------------------------------

def test_a_horizon_that_is_not_a_multiple_of_dt_is_refused_with_the_nearest():
    with pytest.raises(mf.ConfigError, match=r"flow.t_end = 1.0 is not a multiple of flow.dt = 0.03.*nearest valid "
                                             r"flow.t_end is 0.99") as info:
        mf.Config(flow={"dt": 0.03, "t_end": 1.0})
    assert info.value.parameter == "flow.t_end"
    assert mf.Config(flow={"dt": 0.1, "t_end": 0.3}).flow.n_steps == 3       # round-off is not a fault


# --- 6. messages -----------------------------------------------------------------------------

@pytest.mark.parametrize("make,parameter,needle", [
    (lambda: mf.Config.from_dict({"dt": 0.1}), "dt", "did you mean 'flow.dt'"),
    (lambda: mf.Config.from_dict({"network": {"dt": 0.1}}), "network.dt", "did you mean 'flow.dt'"),
    (lambda: mf.Config(netwrk={"m": 3}), "netwrk", "did you mean 'network'"),
    (lambda: mf.NetworkConfig(mm=3), "network.mm", "did you mean 'network.m'"),
    (lambda: mf.Config().updated({"m": 3}), "m", "did you mean 'network.m'"),
])
def test_unknown_keys_point_at_the_right_key(make, parameter, needle):
    with pytest.raises(mf.ConfigError, match=needle) as info:
        make()
    assert info.value.parameter == parameter


@pytest.mark.parametrize("changes,parameter", [({"network.m": 10**9, "record.snapshots": False}, "network.m"),
                                               ({"network.m": 10**8}, "record.snapshots"),
                                               ({"data.n": 10**9}, "data.n")])
def test_a_memory_refusal_names_the_dominant_term(changes, parameter):
    with pytest.raises(mf.ConfigError, match="GiB") as info:
        mf.simulate(CFG.updated(changes))
    assert info.value.parameter == parameter
    assert parameter in str(info.value)


def test_array_inputs_are_named_or_accepted():
    cfg = CFG.updated({"flow.t_end": 0.5, "network.d": 2})
    X, y = np.ones((6, 2)), np.linspace(-1, 1, 6)
    with pytest.raises(mf.DataError, match=r"pair \(X, y\).*not a dict"):
        mf.simulate(cfg, data={"X": X, "y": y})
    with pytest.raises(mf.DataError, match="masked") as info:
        mf.simulate(cfg, data=(np.ma.masked_array(X), y))
    assert info.value.parameter == "X"
    assert_same_run(mf.simulate(cfg, data=(X, y[:, None])), mf.simulate(cfg, data=(X, y)))
    with pytest.raises(mf.DataError, match=r"overflows float64.*rescale X") as info:
        mf.simulate(cfg, data=(X * 1e200, y))
    assert info.value.parameter == "X"


def test_a_byte_order_mark_is_accepted_and_an_empty_config_warned(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + CFG.to_toml().encode())
    assert mf.Config.from_toml(path) == CFG
    path.write_text("")
    with pytest.warns(UserWarning, match="sets nothing: running every default"):
        assert mf.Config.from_toml(path) == mf.Config()
    proc = cli("run", path, "--out", tmp_path / "run", "--set", "flow.t_end=0.02", "--set", "network.m=4")
    assert proc.returncode == 0
    assert "meanfield: warning:" in proc.stderr
    assert "running every default" in proc.stderr


# --- 7. progress ---------------------------------------------------------------------------

def test_progress_lines_say_how_far_and_how_long_is_left(capsys):
    from meanfield.engine.progress import Reporter, cli_mode

    reporter = Reporter("lines", total=8, unit="point", desc="meanfield sweep", every=0.0)
    time.sleep(0.01)
    reporter.update(2)
    reporter.close()
    line = capsys.readouterr().err.strip()
    assert line.startswith("meanfield sweep: point 2/8 (25 %), 0:00 elapsed, about 0:00 left")
    assert cli_mode(None) == "lines"                 # stderr is not a terminal under pytest
    with pytest.raises(mf.ConfigError, match="progress"):
        mf.simulate(CFG, progress="bar")


SLOW = '''"""A fake figure that takes a minute.

Source: a test.
"""
import time

from meanfield.tools.figures import scenario_main


def run(quick, out):
    time.sleep(60)


if __name__ == "__main__":
    scenario_main(__file__, run)
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_figures_prints_each_start_and_a_signal_stops_the_running_child(tmp_path, sig):
    (tmp_path / "scen").mkdir()
    (tmp_path / "scen" / "slow.py").write_text(SLOW)
    log = tmp_path / "log.txt"
    with open(log, "w") as handle:
        proc = interruptible([*CLI, "figures", "--scenarios", str(tmp_path / "scen"), "--out", str(tmp_path / "f")],
                                stdout=handle, stderr=subprocess.STDOUT)
        assert wait_for(lambda: "slow" in log.read_text() and worker_pids(proc.pid), 30)
        children = worker_pids(proc.pid)
        proc.send_signal(sig)
        proc.wait(15)
    assert proc.returncode == 130
    assert "slow" in log.read_text()
    assert "running (1/1)" in log.read_text()
    assert wait_for(lambda: not any(alive(p) for p in children), 10)


# --- 8. looking at a run ---------------------------------------------------------------------

def test_show_prints_status_changes_stats_and_observables_and_plots(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(CFG.updated({"flow.t_end": 1.0}).to_toml())
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--set", "network.m=7", "--seed", "5",
                 "--set", "network.activation=tanh", "--set", "flow.potential.kind=quartic"]) == 0
    saved = mf.Result.load(out)
    assert (saved.config.network.m, saved.config.seed, saved.config.network.activation) == (7, 5, "tanh")
    capsys.readouterr()
    assert main(["show", str(out), "--plot", str(tmp_path / "risk.png")]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{out}: completed, t = 1 of 1")
    for needle in ("network.m = 7", "seed = 5", "network.activation = tanh", "flow.dt = 0.05", "steps",
                   "flow.potential.kind = quartic\n"):
        assert needle in text
    risk = saved.observables["train_risk"]
    assert re.search(rf"train_risk +{risk[0]:.6g} -> {risk[-1]:.6g}\n", text)
    assert (tmp_path / "risk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "observables.csv").exists()


@pytest.mark.parametrize("args,needle", [(["--set", "network.mm=3"], "did you mean 'network.m'"),
                                         (["--set", "flow.dt=-1"], "flow.dt = -1"),
                                         (["--set", "nokey"], "--set = 'nokey'"),
                                         (["--seed", "-1"], "seed = -1")])
def test_bad_overrides_are_one_line(tmp_path, args, needle):
    config = tmp_path / "c.toml"
    config.write_text(CFG.to_toml())
    proc = cli("run", config, "--out", tmp_path / "run", *args)
    assert proc.returncode == 2
    one_line_error(proc.stderr, needle)


# --- 9. where figures go ---------------------------------------------------------------------

def test_figures_outside_a_checkout_go_to_the_current_folder(tmp_path, monkeypatch):
    from meanfield.tools import figures

    monkeypatch.setattr(figures, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert figures.default_out() == tmp_path / "figures"
    monkeypatch.setattr(figures, "CHECKOUT", Path(figures.__file__).resolve().parents[2])
    assert figures.default_out() == figures.CHECKOUT / "figures"


LONG_GAP = """
import sys, time, meanfield as mf
cfg = mf.Config(seed=4, network={"m": 2000, "d": 10}, data={"n": 400},
                flow={"dt": 0.01, "t_end": %r, "threads": 1},
                record={"n_records": 3, "spacing": "geometric", "checkpoint_seconds": 1000.0})
mf.simulate(cfg.updated({"flow.t_end": 0.02}))            # compiled or loaded before the clock starts
print("go", flush=True)
try:
    mf.simulate(cfg, checkpoint=sys.argv[1])
except KeyboardInterrupt:
    print("stopped", time.monotonic(), flush=True)
    sys.exit(130)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_inside_a_long_gap_between_records_is_answered_within_a_second_and_keeps_the_work(tmp_path,
                                                                                                   signum):
    """Records at steps 0, 1 and 3600 (one thread, at least 3 s on a quiet machine: the signal
    comes at 1.5 s): the last gap was one compiled call; chunks now split it by time. The signal
    is answered within a second, the checkpoint holds the steps done up to it (not the record at
    step 1), and the resumed run equals the uninterrupted one bit for bit."""
    t_end = 36.0
    proc = interruptible([sys.executable, "-c", LONG_GAP % t_end, str(tmp_path / "run")], stdout=subprocess.PIPE,
                         text=True)
    assert proc.stdout.readline().strip() == "go"
    time.sleep(1.5)
    sent = time.monotonic()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    latency = float(out.split()[-1]) - sent
    assert latency < 1.0, latency
    state = json.loads((tmp_path / "run" / checkpoint.STATE).read_text())
    assert 1 < state["done"] < 3600, state["done"]                   # mid-gap: the chunks' work kept
    cfg = mf.Config(seed=4, network={"m": 2000, "d": 10}, data={"n": 400},
                    flow={"dt": 0.01, "t_end": t_end, "threads": 1},
                    record={"n_records": 3, "spacing": "geometric", "checkpoint_seconds": 1000.0})
    resumed = mf.simulate(cfg, checkpoint=tmp_path / "run")
    assert resumed == mf.simulate(cfg)


def test_landscape_inputs_are_refused_by_name():
    """Wrong shapes, NaN particles, strings or a non-result: one ConfigError naming the argument
    (were a broadcast error, an SVD failure, (False, inf), and an AttributeError)."""
    from meanfield.theory import landscape
    cfg = mf.Config(seed=1, network={"m": 6, "d": 2, "activation": "relu"}, data={"n": 10},
                    flow={"dt": 0.1, "t_end": 1.0})
    result = mf.simulate(cfg)
    land = landscape.Landscape.of(result)
    for theta, match in ((np.ones((7, 2)), r"theta\.shape"), (np.full((6, 3), np.nan), "non-finite"),
                         ([["a", "b", "c"]], "theta"), (np.ones(3), r"theta\.shape")):
        with pytest.raises(mf.ConfigError, match=match):
            landscape.certificate(result, theta)
        with pytest.raises(mf.ConfigError, match=match):
            landscape.polish(land, theta)
    with pytest.raises(mf.ConfigError, match="result = 'str' is invalid"):
        landscape.certificate("not a result")
    with pytest.raises(mf.ConfigError, match="landscape = 'Result'"):
        landscape.polish(result, result.theta)


@pytest.mark.parametrize("n_records", [10**12, 2**62, 10**8])
def test_more_records_than_steps_are_capped_with_a_warning_not_a_memory_error(n_records):
    """1e12 records of a 10-step run raised a NumPy memory error (1e8 with 100 steps: killed)."""
    cfg = mf.Config(network={"m": 5}, data={"n": 10}, flow={"dt": 0.1, "t_end": 1.0},
                    record={"n_records": n_records, "spacing": "linear"})
    with pytest.warns(UserWarning, match=r"record.n_records = \d+ is more than the run's 11 step times .*: 11 records"):
        result = mf.simulate(cfg)
    np.testing.assert_allclose(result.t, np.arange(11) * 0.1, rtol=1e-12)


def test_a_killed_sweep_worker_is_named_in_one_line_and_the_rerun_resumes(tmp_path):
    """SIGKILL of one worker (not of the sweep): exit 2 and one line naming the point it ran (was a
    RuntimeError traceback, exit 1, the code of a failed figure claim); the rerun finishes."""
    out = tmp_path / "out"
    config = sweep_file(tmp_path, values=(300, 310))
    proc = interruptible([*CLI, "sweep", str(config), "--out", str(out), "--scheduler", "processes",
                          "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: len(list(out.glob("points/*/checkpoint.json"))) >= 1, 120)
    running = next(out.glob("points/*/checkpoint.json")).parent.name

    def is_worker(pid):
        try:
            return "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
    worker = next(pid for pid in worker_pids(proc.pid) if is_worker(pid))
    os.kill(worker, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    one_line_error(err, f"the worker running point {running} died (killed by SIGKILL)")
    assert cli("sweep", config, "--out", out, "--scheduler", "serial").returncode == 0


def test_a_sweep_refuses_set_on_a_swept_key(tmp_path):
    """--set network.m=999 on a sweep over network.m was silently ignored."""
    config = sweep_file(tmp_path, values=(300, 310))
    done = cli("sweep", config, "--out", tmp_path / "out", "--set", "network.m=999")
    assert done.returncode == 2
    one_line_error(done.stderr, "--set = 'network.m' is invalid", "does not sweep")
    assert not (tmp_path / "out").exists()
