"""The thread policy of flow.threads = 0: one thread for small steps or a busy machine."""
import subprocess
import sys

import numpy as np
import pytest

import meanfield as mf
from meanfield.engine import threads


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a 2-CPU machine with a given number of other runnable tasks."""
    def set_load(others):
        monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
        monkeypatch.setattr(threads, "other_runnable", lambda: others)
    return set_load


def test_an_explicit_count_is_used_up_to_the_limit(machine):
    machine(5)
    assert threads.choose(1, 1e9, limit=8) == 1
    assert threads.choose(3, 1e2, limit=8) == 3           # even for tiny steps and a busy machine
    assert threads.choose(16, 1e9, limit=8) == 8


def test_auto_runs_small_steps_on_one_thread(machine):
    machine(0)
    assert threads.choose(0, threads.PARALLEL_WORK / 2, limit=8) == 1
    assert threads.choose(0, threads.PARALLEL_WORK, limit=8) == 2


def test_auto_backs_off_when_other_tasks_are_runnable(machine):
    machine(1)
    assert threads.choose(0, 1e9, limit=8) == 1
    machine(0)
    assert threads.choose(0, 1e9, limit=1) == 1


def test_work_per_step_counts_samples_or_particle_pairs():
    assert threads.work_per_step(30, 50, 6) == 30 * 50 * 6
    assert threads.work_per_step(30, 50, 6, population=True) == 50 * 50 * 6


def test_other_runnable_reads_the_run_queue_and_excludes_this_process(monkeypatch, tmp_path):
    import builtins
    import os
    assert threads.usable_cpus() == len(os.sched_getaffinity(0))
    fake = tmp_path / "loadavg"
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a,
                        **k: real_open(fake if path == "/proc/loadavg" else path, *a, **k))
    fake.write_text("0.50 0.40 0.30 3/212 4242\n")
    assert threads.other_runnable() == 2                     # 3 runnable, one of them this process
    fake.write_text("garbled\n")
    assert threads.other_runnable() == 0                     # unreadable: assume an idle machine


def test_the_policy_changes_no_bits():
    cfg = mf.Config(seed=3, network={"m": 400, "d": 5}, data={"n": 600}, flow={"dt": 0.05, "t_end": 0.5})
    assert threads.work_per_step(600, 400, 6) >= threads.PARALLEL_WORK          # auto may pick 2 here
    runs = [mf.simulate(cfg.updated({"flow.threads": k})) for k in (0, 1, 2)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.theta, runs[0].theta)
    assert runs[0].stats["threads"] in (1, 2)


def test_import_meanfield_loads_neither_numba_nor_scipy_linalg():
    code = "import sys, meanfield; print(sorted(m for m in ('numba', 'scipy.linalg') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
