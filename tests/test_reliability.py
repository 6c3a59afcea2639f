"""Reliability: fuzzed input gives a run or a meanfield error, never another exception; a
read-only install still runs (without a Numba cache, with a warning); a long run keeps its
memory and invariants. (Interrupted runs and sweeps: tests/test_faults.py.)"""
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import meanfield as mf
from meanfield.config import _SECTIONS

ROOT = Path(__file__).resolve().parent.parent

values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=12), st.lists(st.integers(-2, 3), max_size=3),
                   st.sampled_from(["relu", "lazy", "mean_field", "both", "teacher", "none", "logistic", "heun",
                                    "gaussian", "sphere", "population", "piecewise", "linear", "rademacher"]))
keys = st.sampled_from([f.name for cls in _SECTIONS.values() for f in cls.__dataclass_fields__.values()] + ["zz"])
tables = st.dictionaries(st.sampled_from(list(_SECTIONS) + ["seed", "sweep", "netwrk"]),
                         st.one_of(st.dictionaries(keys, values, max_size=4), values), max_size=4)


@settings(max_examples=300, deadline=None)
@given(tables)
def test_fuzzed_configs_load_or_raise_a_meanfield_error(table):
    try:
        cfg = mf.Config.from_dict(table)
    except mf.MeanfieldError as exc:
        assert exc.parameter is not None                      # every refusal names what it refuses
        return
    assert mf.Config.from_dict(cfg.to_dict()) == cfg          # what loads, round-trips
    assert mf.Config.from_dict(__import__("tomllib").loads(cfg.to_toml())) == cfg


def mostly(valid, invalid):
    """Values that are valid about 85 % of the time, so that most examples reach simulate."""
    return st.sampled_from(list(valid) * 6 + list(invalid))


small = st.fixed_dictionaries({
    "network": st.fixed_dictionaries({"m": mostly([1, 2, 5], [0, -1]), "d": mostly([1, 2, 3], [0]),
                                      "activation": mostly(["relu", "tanh", "quadratic"], ["rleu"]),
                                      "scaling": st.sampled_from(["mean_field", "lazy"]),
                                      "bias": mostly([False], [True])}),
    "data": st.fixed_dictionaries({"kind": mostly(["teacher", "random_labels", "none"],
                                                  ["arrays", "population", "mnist"]),
                                   "n": mostly([1, 3, 8], [0, -1]), "n_test": st.integers(0, 3)}),
    "flow": st.fixed_dictionaries({"dt": mostly([0.1, 0.05], [0.0, -1.0, float("nan")]),
                                   "t_end": mostly([0.1, 0.3], [0.01, float("inf")]),
                                   "temperature": mostly([0.0, 0.1], [-0.1]),
                                   "loss": mostly(["squared", "logistic"], ["hinge"]),
                                   "batch_size": mostly([0, 1], [9]), "online": mostly([False], [True])}),
    "record": st.fixed_dictionaries({"n_records": mostly([2, 4], [1])}),
})
arrays = st.one_of(st.none(), st.tuples(
    st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=4), max_size=6),
    st.lists(st.floats(allow_nan=True, width=32), max_size=6)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small, arrays)
def test_fuzzed_front_door_runs_or_raises_a_meanfield_error(table, data):
    try:
        cfg = mf.Config.from_dict(table)
        data = None if data is None else (np.array(data[0],
                                                   dtype=object if len({len(r) for r in data[0]}) > 1 else float),
                                          np.array(data[1]))
        result = mf.simulate(cfg, data=data, throw=False)
    except mf.MeanfieldError:
        return
    assert result.status in ("completed", "diverged")
    assert len(result.t) >= 1


def _mount_read_only(path: Path):
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True, capture_output=True)


def test_a_read_only_install_runs_without_a_numba_cache(tmp_path):
    """Package folder and every cache folder read-only: compile without caching, with a warning."""
    package, cache = tmp_path / "site", tmp_path / "cache"
    shutil.copytree(ROOT / "meanfield", package / "meanfield", ignore=shutil.ignore_patterns("__pycache__"))
    cache.mkdir()
    mounted = []
    try:
        for path in (package, cache):
            _mount_read_only(path)
            mounted.append(path)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        for path in mounted:
            subprocess.run(["umount", str(path)], capture_output=True)
        pytest.skip(f"read-only mounts are not permitted here: {exc}")
    try:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "HOME": str(cache), "XDG_CACHE_HOME": str(cache),
               "PYTHONPATH": str(package), "PYTHONDONTWRITEBYTECODE": "1"}
        code = ("import meanfield as mf; cfg = mf.Config(network={'m': 5, 'd': 2}, data={'n': 6}, "
                "flow={'dt': 0.1, 't_end': 0.5}); print(mf.simulate(cfg).status, mf.__file__)")
        proc = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("completed")
        assert str(package) in proc.stdout
        assert "cannot cache" in proc.stderr
        assert "NUMBA_CACHE_DIR" in proc.stderr
    finally:
        for path in mounted:
            subprocess.run(["umount", str(path)], capture_output=True)


@pytest.mark.slow
def test_soak_a_million_steps_keeps_memory_flat_and_invariants():
    cfg = mf.Config(seed=0, network={"m": 10, "d": 2}, data={"n": 10},
                    flow={"dt": 1e-3, "t_end": 1000.0}, record={"n_records": 200, "spacing": "linear"})
    assert cfg.flow.n_steps == 10**6
    mf.simulate(cfg.updated({"flow.t_end": 1.0}))                      # warm up: compile, allocate
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = mf.simulate(cfg)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50 * 1024                                        # no growth with the step count
    assert np.all(np.diff(res.observables["train_risk"]) <= 1e-12)     # noiseless: risk never increases
    assert res.observables["balance_drift"][-1] < 0.05 * np.max(np.abs(res.theta0[:, -1] ** 2
                                                                        - np.sum(res.theta0[:, :-1] ** 2, 1)))


@pytest.mark.slow
def test_soak_the_blas_path_for_a_hundred_thousand_steps_keeps_memory_flat():
    cfg = mf.Config(seed=0, network={"m": 200, "d": 5}, data={"n": 100},
                    flow={"dt": 1e-3, "t_end": 100.0, "engine": "blas"}, record={"n_records": 20, "snapshots": False})
    assert cfg.flow.n_steps == 10**5
    mf.simulate(cfg.updated({"flow.t_end": 1.0}))                      # warm up: compile, allocate
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = mf.simulate(cfg)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024
    assert res.status == "completed"
    assert np.all(np.diff(res.observables["train_risk"]) <= 1e-12)


def test_kernels_compiled_here_and_loaded_from_the_cache_give_the_same_bits(tmp_path):
    """A run whose kernels were just compiled equals the same run with kernels loaded from the
    cache (with fastmath 'reassoc' they did not: LLVM vectorised sums differently in context)."""
    code = ("import hashlib, meanfield as mf; out = []\n"
            "for d, kind in ((2, 'teacher'), (6, 'teacher'), (4, 'population')):\n"
            "    cfg = mf.Config(seed=2, network={'m': 300, 'd': d}, data={'kind': kind, 'n': 200},\n"
            "                    flow={'dt': 0.05, 't_end': 0.5}, record={'n_records': 2})\n"
            "    out.append(hashlib.sha1(mf.simulate(cfg).theta.tobytes()).hexdigest())\n"
            "print(' '.join(out))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    cold, cached = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True) for _ in range(2))
    assert any(tmp_path.rglob("*.nbc"))                     # the second run really loaded a cache
    assert cold.stdout == cached.stdout
    # the first-ever compile says so on stderr, with its duration; loading from the cache says nothing
    assert "compiling kernels (first run only)" in cold.stderr
    assert "kernels compiled in" in cold.stderr
    assert "compiling" not in cached.stderr
