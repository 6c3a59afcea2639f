"""Checkpoints: an interrupted run, resumed, equals the uninterrupted one bit for bit; a changed
config is refused; SIGINT and SIGTERM leave a resumable run folder."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import meanfield as mf
from meanfield.store import checkpoint

from .conftest import assert_same_run, interrupt_at_record, interruptible

CFG = mf.Config(seed=11, network={"m": 40, "d": 3, "scaling": "lazy"}, data={"n": 30, "n_test": 10},
                flow={"dt": 0.05, "t_end": 4.0, "temperature": 0.01, "batch_size": 8},
                record={"n_records": 12, "diagnostics": ["tangent_gap"], "checkpoint_seconds": 0.0})


def interrupt_at(monkeypatch, call):
    """Interrupt at the ``call``-th record, counting the one at t = 0."""
    return interrupt_at_record(monkeypatch, call - 1)


def test_interrupted_then_resumed_run_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    whole = mf.simulate(CFG)
    undo = interrupt_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        mf.simulate(CFG, checkpoint=tmp_path)
    undo()
    assert checkpoint.exists(tmp_path)
    resumed = mf.simulate(CFG, checkpoint=tmp_path)
    assert_same_run(resumed, whole)
    assert resumed.stats["steps"] == whole.stats["steps"]


def test_resume_refuses_a_changed_config_or_other_data(tmp_path, monkeypatch):
    undo = interrupt_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        mf.simulate(CFG, checkpoint=tmp_path)
    undo()
    with pytest.raises(mf.ConfigError, match="flow.lam"):
        mf.simulate(CFG.updated({"flow.lam": 0.1}), checkpoint=tmp_path)
    rng = np.random.default_rng(0)
    with pytest.raises(mf.ConfigError, match="data"):
        mf.simulate(CFG, checkpoint=tmp_path, theta0=rng.standard_normal((40, 4)))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_leaves_a_resumable_run_folder(tmp_path, sig):
    cfg = CFG.updated({"network.m": 400, "data.n": 400, "flow.t_end": 400.0, "record.n_records": 400,
                       "record.spacing": "linear", "record.diagnostics": []})
    config = tmp_path / "c.toml"
    config.write_text(cfg.to_toml())
    out = tmp_path / "run"
    proc = interruptible([sys.executable, "-m", "meanfield.tools.cli", "run", str(config), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / checkpoint.STATE).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "meanfield resume" in err
    assert checkpoint.exists(out)
    assert not (out / "manifest.json").exists()
    done = subprocess.run([sys.executable, "-m", "meanfield.tools.cli", "resume", str(out)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert not checkpoint.exists(out)
    assert_same_run(mf.Result.load(out), mf.simulate(cfg))
