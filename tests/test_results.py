"""Saved results load back equal; damaged files are refused clearly; no pickle anywhere."""
import json

import numpy as np
import pytest

import meanfield as mf


@pytest.fixture(scope="module")
def result():
    cfg = mf.Config(network={"m": 8, "d": 2}, data={"n": 10, "n_test": 5}, flow={"dt": 0.1, "t_end": 1.0},
                    record={"n_records": 5})
    return mf.simulate(cfg)


def test_save_then_load_returns_an_equal_result(result, tmp_path):
    loaded = mf.Result.load(result.save(tmp_path / "run"))
    assert loaded.config == result.config and loaded.status == result.status
    assert loaded.stats == result.stats
    for name in ("t", "snapshots", "theta", "theta0"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(result, name))
    assert loaded.observables.keys() == result.observables.keys()
    for name, values in result.observables.items():
        np.testing.assert_array_equal(loaded.observables[name], values)
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_saving_again_replaces_atomically(result, tmp_path):
    folder = result.save(tmp_path / "run")
    result.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "manifest.json"]


def test_damaged_results_raise_corrupted_result_error(result, tmp_path):
    folder = result.save(tmp_path / "run")
    (folder / "arrays.npz").write_bytes((folder / "arrays.npz").read_bytes()[:200])
    with pytest.raises(mf.CorruptedResultError, match="corrupted or truncated"):
        mf.Result.load(folder)
    folder = result.save(tmp_path / "run2")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(mf.CorruptedResultError, match="format_version 99"):
        mf.Result.load(folder)
    folder = result.save(tmp_path / "run3")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["arrays"]["theta"]["shape"] = [3, 3]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(mf.CorruptedResultError, match="'theta'"):
        mf.Result.load(folder)
    with pytest.raises(mf.CorruptedResultError, match="no manifest.json"):
        mf.Result.load(tmp_path / "nothing")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "manifest.json").write_text("{not json")
    with pytest.raises(mf.CorruptedResultError, match="unreadable"):
        mf.Result.load(tmp_path / "garbage")


def test_pickled_arrays_are_refused(result, tmp_path):
    folder = result.save(tmp_path / "run")
    arrays = dict(np.load(folder / "arrays.npz"))
    arrays["theta"] = np.array([object()], dtype=object)
    with open(folder / "arrays.npz", "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(mf.CorruptedResultError):
        mf.Result.load(folder)


def test_divergence_stops_names_the_time_and_keeps_the_partial_result():
    cfg = mf.Config(network={"m": 20, "d": 3, "activation": "quadratic"}, data={"n": 20},
                    init={"tau": 3.0}, flow={"dt": 5.0, "t_end": 500.0}, record={"n_records": 30})
    with pytest.raises(mf.DivergenceError, match=r"diverged at t = .*smaller flow.dt") as info:
        mf.simulate(cfg)
    partial = info.value.result
    assert partial.status == "diverged" and partial.t[-1] < 500.0
    assert len(partial.t) == len(partial.observables["train_risk"]) == len(partial.snapshots)
    quiet = mf.simulate(cfg, throw=False)
    assert quiet.status == "diverged" and quiet.message == str(info.value)
