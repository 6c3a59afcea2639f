"""Sweeps: expansion, stable ids and seeds, identical results on every executor, resumption."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.tools import executors, sweep

BASE = mf.Config(seed=5, network={"m": 8, "d": 2}, data={"n": 12}, flow={"dt": 0.1, "t_end": 1.0, "temperature": 0.01},
                 record={"n_records": 3})
GRID = {"network.m": [8, 16], "flow.dt": {"start": 0.05, "stop": 0.1, "num": 2}, "seeds": 2}


def test_expansion_ids_and_seeds():
    table = sweep.grid(GRID)
    assert table == {"network.m": [8, 16], "flow.dt": [0.05, 0.1], "replicate": [0, 1]}
    points = sweep.expand(BASE, table)
    assert len(points) == 8
    assert len({p.id for p in points}) == 8
    assert len({p.config.seed for p in points}) == 8
    assert {p.config.network.m for p in points} == {8, 16}
    again = sweep.expand(BASE, sweep.grid({"seeds": 2, "flow.dt": [0.05, 0.1], "network.m": [8, 16, 32]}))
    ids = {p.id for p in again}
    assert {p.id for p in points} <= ids                  # reordering and extending keep ids and seeds
    assert sweep.grid({"x": {"start": 1, "stop": 100, "num": 3,
                             "spacing": "geometric"}})["x"] == pytest.approx([1, 10, 100])


@pytest.mark.parametrize("table,match", [({}, "non-empty"), ({"network.m": []}, "empty grid"),
                                         ({"seeds": 0}, ">= 1"), ({"x": {"start": 1}}, "start, stop, num"),
                                         ({"x": "abc"}, "list of values")])
def test_bad_grids_are_refused(table, match):
    with pytest.raises(mf.ConfigError, match=match):
        sweep.grid(table)


def test_unknown_swept_key_is_refused_with_a_suggestion():
    with pytest.raises(mf.ConfigError, match="did you mean 'network.m'"):
        sweep.expand(BASE, {"network.mm": [1, 2]})


def test_serial_processes_and_dask_give_identical_results(tmp_path):
    pytest.importorskip("distributed")
    points = sweep.expand(BASE, sweep.grid({"network.m": [8, 16], "seeds": 2}))
    results = {}
    for scheduler in ("serial", "processes", "local"):
        rows = sweep.run(points, tmp_path / scheduler, scheduler=scheduler, workers=2)
        results[scheduler] = {r["id"]: mf.Result.load(tmp_path / scheduler / "points" / r["id"]) for r in rows}
        assert len(sweep.load_table(tmp_path / scheduler)) == 4
    for scheduler in ("processes", "local"):
        for point_id, res in results["serial"].items():
            np.testing.assert_array_equal(results[scheduler][point_id].snapshots, res.snapshots)


def test_numba_runs_one_thread_inside_dask_workers():
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster

    with executors.one_numba_thread(), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                                 dashboard_address=None) as cluster, Client(cluster) as client:
        def threads():
            import numba
            return numba.config.NUMBA_NUM_THREADS
        assert set(client.run(threads).values()) == {1}


def test_a_rerun_skips_finished_points_and_resumes_the_others(tmp_path):
    points = sweep.expand(BASE, sweep.grid({"network.m": [8, 16, 24]}))
    first = sweep.run(points, tmp_path, scheduler="serial")
    stamps = {p.id: (tmp_path / "points" / p.id / "arrays.npz").stat().st_mtime_ns for p in points}
    (tmp_path / "points" / points[1].id / "manifest.json").unlink()          # as if interrupted
    second = sweep.run(points, tmp_path, scheduler="serial")
    np.testing.assert_equal(second, first)          # (NaN test risks compare equal)
    assert (tmp_path / "points" / points[0].id / "arrays.npz").stat().st_mtime_ns == stamps[points[0].id]
    assert (tmp_path / "points" / points[1].id / "arrays.npz").stat().st_mtime_ns != stamps[points[1].id]


def test_fit_exponent_recovers_a_slope_with_a_confidence_interval():
    rng = np.random.default_rng(0)
    rows = [{"network.m": m, "replicate": r, "err": 3 * m ** -0.5 * np.exp(0.05 * rng.standard_normal())}
            for m in (16, 64, 256, 1024) for r in range(6)]
    fit = sweep.fit_exponent(rows, "network.m", "err")
    assert fit["ci_low"] < -0.5 < fit["ci_high"]
    assert fit["ci_high"] - fit["ci_low"] < 0.1


def test_sweep_command(tmp_path, capsys):
    from meanfield.tools.cli import main
    path = tmp_path / "s.toml"
    path.write_text(BASE.to_toml() + '\n[sweep]\n"network.m" = [8, 16]\nseeds = 2\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--scheduler", "serial"]) == 0
    assert "4 points" in capsys.readouterr().out
    assert len(sweep.load_table(tmp_path / "out")) == 4


def test_the_example_sweep_config_expands():
    from pathlib import Path
    base, table = sweep.load(Path(__file__).resolve().parent.parent / "scenarios/configs/width_sweep.toml")
    assert len(sweep.expand(base, table)) == 16
    assert base.network.scaling == "lazy"
    with pytest.raises(mf.ConfigError, match="no \\[sweep\\] table"):
        sweep.load(Path(__file__).resolve().parent.parent / "scenarios/configs/teacher_student.toml")


def test_a_scenarios_runs_are_the_same_on_every_scheduler(monkeypatch):
    """figures.simulate_all (what `meanfield figures --scheduler` sends a scenario's runs through):
    the same particles and risks in this process and in a pool of processes, in the order given."""
    from meanfield.tools.figures import simulate_all

    configs = [mf.Config(seed=seed, network={"m": m, "d": 2}, data={"kind": "teacher", "n": 20},
                         flow={"dt": 0.1, "t_end": 1.0}) for m in (5, 9) for seed in (0, 1)]
    monkeypatch.setenv(executors.VARIABLE, "serial")
    serial = simulate_all(configs)
    monkeypatch.setenv(executors.VARIABLE, "processes")
    pooled = simulate_all(configs)
    assert [r.config.network.m for r in pooled] == [5, 5, 9, 9]
    for a, b in zip(serial, pooled):
        np.testing.assert_array_equal(a.theta, b.theta)
        np.testing.assert_array_equal(a.observables["train_risk"], b.observables["train_risk"])


def test_a_geometric_range_over_an_integer_field_gives_integers_once():
    assert sweep._range("sweep.network.m", {"start": 16, "stop": 4096, "num": 9, "spacing": "geometric"}) == \
        [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert sweep._range("sweep.network.m", {"start": 1, "stop": 3, "num": 9, "spacing": "geometric"}) == [1, 2, 3]
    dts = sweep._range("flow.dt", {"start": 0.01, "stop": 0.1, "num": 3, "spacing": "geometric"})
    np.testing.assert_allclose(dts, [0.01, 0.1 ** 1.5, 0.1], rtol=1e-12)
    points = sweep.expand(BASE, sweep.grid({"network.m": {"start": 4, "stop": 64, "num": 5, "spacing": "geometric"}}))
    assert [p.config.network.m for p in points] == [4, 8, 16, 32, 64]
