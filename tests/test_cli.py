"""The command line: exit codes 0 / 2 / 3, one-line errors, results on disk, never overwritten."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import meanfield as mf
from meanfield.tools.cli import main

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_run_saves_a_loadable_result(tmp_path, capsys):
    config = write(tmp_path, "[network]\nm = 6\n[flow]\ndt = 0.1\nt_end = 1.0\n[record]\nn_records = 4\n")
    assert main(["run", config, "--out", str(tmp_path / "out")]) == 0
    assert "completed" in capsys.readouterr().out
    assert mf.Result.load(tmp_path / "out").config.network.m == 6
    assert main(["run", config, "--out", str(tmp_path / "out")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["run", config, "--out", str(tmp_path / "out"), "--force"]) == 0


def test_limit_saves_the_weighted_limit_and_refuses_noise_in_one_line(tmp_path, capsys):
    config = write(tmp_path, "[network]\nm = 6\nd = 2\nactivation = 'tanh'\n[data]\nn = 20\n"
                             "[flow]\ndt = 0.1\nt_end = 0.5\n[record]\nn_records = 3\n")
    assert main(["limit", config, "--level", "4", "--out", str(tmp_path / "lim")]) == 0
    assert "128 weighted nodes" in capsys.readouterr().out
    limit = mf.Result.load(tmp_path / "lim")
    np.testing.assert_allclose(limit.weights.sum(), 1.0, rtol=1e-14)
    assert limit.stats["limit"]["level"] == 4
    assert main(["limit", config, "--set", "flow.temperature=0.1", "--out", str(tmp_path / "noisy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "flow.temperature" in err
    assert not (tmp_path / "noisy").exists()


def test_limit_reduced_prints_its_plan_saves_the_reduced_limit_and_refuses_what_it_does_not_fit(tmp_path, capsys):
    """--reduced: the plan before any work, then the same numbers as reduced_limit, saved sealed
    (show reads it; an edit is detected); finite data, or --rule without --reduced, refused in one line."""
    from meanfield.theory import reduced

    config = write(tmp_path, "[network]\nm = 6\nd = 30\nactivation = 'relu'\n[data]\nkind = 'population'\n"
                             "teacher_m0 = 2\n[flow]\ndt = 0.2\nt_end = 1.0\n[record]\nn_records = 3\n")
    out = tmp_path / "red"
    assert main(["limit", config, "--reduced", "--level", "3", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "the reduced limit in d = 30 (4 reduced coordinates, rays rule)" in captured.err
    assert "CPU-minutes (estimated)" in captured.err
    assert "reduced limit (rays rule, level 3)" in captured.out
    saved = reduced.ReducedLimit.load(out)
    direct = reduced.reduced_limit(mf.Config.from_toml(config), 3)
    np.testing.assert_array_equal(saved.risk, direct.risk)
    np.testing.assert_array_equal(saved.snapshots, direct.snapshots)
    assert saved.error == direct.error
    assert saved.config == direct.config
    assert main(["show", str(out)]) == 0
    assert "reduced limit (rays rule, level 3)" in capsys.readouterr().out
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"level": 3', '"level": 4'))
    assert main(["show", str(out)]) == 2
    assert "changed" in capsys.readouterr().err
    for extra, name in ((["--reduced", "--set", "data.kind='teacher'"], "data.kind"), (["--rule", "sobol"], "--rule")):
        assert main(["limit", config, *extra, "--out", str(tmp_path / "no")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert name in err
        assert not (tmp_path / "no").exists()


def test_predict_saves_the_lazy_limit_s_predictions_and_refuses_in_one_line(tmp_path, capsys):
    """predict: the config's training samples, --test's inputs, the same numbers as lazy.predict,
    saved sealed (show reads it); a missing file, a mean-field config or bad times refused by name."""
    from meanfield.theory import lazy

    config = write(tmp_path, "seed = 2\n[network]\nm = 64\nd = 4\nactivation = 'erf'\nscaling = 'lazy'\n"
                             "[data]\nn = 15\n[flow]\ndt = 0.1\nt_end = 2.0\n")
    Z = np.random.default_rng(1).standard_normal((6, 4))
    np.savez(tmp_path / "test.npz", X=Z)
    out = tmp_path / "pred"
    assert main(["predict", config, "--test", str(tmp_path / "test.npz"), "--times", "0,1.5,inf", "--ensemble",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "15 training and 6 test points, 3 times: about" in captured.err
    assert "lazy-limit ensemble mean and variance (erf two-layer" in captured.out
    saved = lazy.Prediction.load(out)
    cfg = mf.Config.from_toml(config)
    data = mf.run_data(cfg)
    direct = lazy.predict(cfg, data.y, [0, 1.5, np.inf], data.X, Z, ensemble=True)
    np.testing.assert_array_equal(saved.test, direct.test)
    np.testing.assert_array_equal(saved.variance, direct.variance)
    assert main(["show", str(out)]) == 0
    assert "lazy-limit ensemble" in capsys.readouterr().out
    for extra, name in ((["--test", str(tmp_path / "none.npz")], "--test"), (["--times", "1,x"], "--times"),
                        (["--times=-1,2"], "--times"), (["--lam=-1"], "--lam"),
                        (["--set", "network.scaling='mean_field'"], "network.scaling"), ([], "--test")):
        assert main(["predict", config, *extra, "--out", str(tmp_path / "no")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert name in err
        assert not (tmp_path / "no").exists()


def test_bad_config_exits_2_with_one_line(tmp_path, capsys):
    config = write(tmp_path, "[network]\nactivaton = 'relu'\n")
    assert main(["run", config, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "did you mean 'network.activation'" in err


def test_divergence_exits_3_and_keeps_the_partial_result(tmp_path, capsys):
    config = write(tmp_path, "[network]\nm = 20\nd = 3\nactivation = 'quadratic'\n[init]\ntau = 3.0\n"
                             "[flow]\ndt = 5.0\nt_end = 500.0\n")
    assert main(["run", config, "--out", str(tmp_path / "o")]) == 3
    assert "diverged at t =" in capsys.readouterr().err
    assert mf.Result.load(tmp_path / "o").status == "diverged"


def test_console_script_runs_the_example_config(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "meanfield.tools.cli", "run",
                           str(ROOT / "scenarios/configs/teacher_student.toml"), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = mf.Result.load(tmp_path / "r")
    assert result.observables["train_risk"][-1] < 0.1 * result.observables["train_risk"][0]


def test_the_bench_floor_and_two_thread_speed_up_are_the_stated_ratios():
    from meanfield.tools import bench

    def row(threads, ms, wall):
        return {"n": 10, "m": 20, "d": 3, "threads": threads, "ms": {"engine": ms}, "dgemm_gflops": 2.0,
                "clocks": {"engine": {"wall": [0.0, wall, 9.0], "cpu": [0.0, ms, 9.0]}}}
    report = {"dgemm_gflops_1_thread": 7.0, "steps": [{**row(1, 3.0, 4.0), "products": {"ms": 2.5}}, row(2, 1.0, 1.6)]}
    floor_ms = (4 * 10 * 20 * 3 + 7 * 10 * 20) / 2e9 * 1e3     # nominal flops at the rows' 2 GFLOP/s, not 7
    one, two = (bench.floor_and_speedup(report, r) for r in report["steps"])
    np.testing.assert_allclose(one["engine_over_floor"], 3.0 / floor_ms, rtol=1e-15)
    np.testing.assert_allclose(one["products_over_floor"], 2.5 / floor_ms, rtol=1e-15)
    assert two["products_over_floor"] is None
    np.testing.assert_allclose(two["engine_over_floor"], 1.0 / (floor_ms / 2), rtol=1e-15)
    assert one["speedup_over_one_thread"] is None
    np.testing.assert_allclose(two["speedup_over_one_thread"], 4.0 / 1.6, rtol=1e-15)
    single = {"cpu": [1.0, 1.5, 2.0], "wall": [0.5, 0.8, 1.0], "ms": 1.5, "speedup_over_float64": 2.0}
    table = bench.markdown_table({**report, "steps": [{**r, "ratio": {"numpy": 1.0}, "best_peer": "numpy",
                                                       "ratio_to_best_peer": 1.0, "engine_gflops": 1.0,
                                                       "float32": single} for r in report["steps"]]})
    assert "| 2.50 |" in table
    assert "| 1.50 [1.00-2.00] | 2.00 |" in table              # the float32 row's CPU time at one thread
    assert "| 0.80 [0.50-1.00] | 2.00 |" in table              # and its wall time at two


def test_the_products_alone_are_the_blas_steps_two_products_over_all_its_tiles(monkeypatch):
    """products_stepper makes W_b X^T and (W_b X^T) X on every tile: summed over the blocks, M
    equals sum_b (W_b X^T) X (three sample tiles of 4, the last partial and zero-padded)."""
    from meanfield import _kernels
    from meanfield.tools import bench
    monkeypatch.setattr(_kernels, "CHUNK", 4)
    rng = np.random.default_rng(0)
    X, theta = rng.standard_normal((10, 5)), rng.standard_normal((150, 6))        # blocks of 56, 56, 38
    assert _kernels.blas_plan(150, 10, 5)[:2] == (56, 4)                           # even blocks of at most 64
    step = bench.products_stepper(X, theta)
    step()
    W = theta[:, :5]
    expected = sum(np.pad((W[lo:lo + 56] @ X.T) @ X, ((0, 56 - len(W[lo:lo + 56])), (0, 0))) for lo in (0, 56, 112))
    np.testing.assert_allclose(step.M, expected, rtol=1e-12, atol=1e-12)


def test_the_deep_floor_counts_the_products_the_deep_step_makes(monkeypatch):
    """deep_flops equals 2 r k c summed over the matrix products (and the read-out's sum) of one
    deep.velocity call, counted as they are made."""
    from meanfield.model import deep
    from meanfield.tools import bench
    counted, original = [], deep.matmul

    def matmul(A, B, out=None):
        counted.append(2 * A.shape[0] * A.shape[1] * (B.shape[1] if B.ndim > 1 else 1))
        return original(A, B, out)
    monkeypatch.setattr(deep, "matmul", matmul)
    n, m, d, depth = 12, 20, 3, 4
    net = deep.DeepNet(d, m, depth, "relu", "mlp", "ntk", 2.0, 1.0)
    rng = np.random.default_rng(0)
    deep.velocity(net, net.init(rng), rng.standard_normal((n, d)), rng.standard_normal(n))
    readout = 2 * n * m                                                 # features.sum(axis=0), f's product
    assert sum(counted) + readout == bench.deep_flops(n, m, d, depth)


def test_the_deep_products_alone_are_the_deep_steps_products():
    """deep_products_stepper replays the products of one deep.velocity call: they count the
    floor's flops (with the read-out's sum) and give the same bits again."""
    from meanfield.model import deep
    from meanfield.tools import bench
    n, m, d, depth = 12, 20, 3, 4
    net = deep.DeepNet(d, m, depth, "relu", "resnet", "ntk", 2.0, 0.5)
    rng = np.random.default_rng(0)
    step = bench.deep_products_stepper(net, net.init(rng), rng.standard_normal((n, d)), rng.standard_normal(n))
    made = [out.copy() for _, _, out in step.made]
    step()
    flops = sum(2 * A.shape[0] * A.shape[1] * (B.shape[1] if B.ndim > 1 else 1) for A, B, _ in step.made)
    assert flops + 2 * n * m == bench.deep_flops(n, m, d, depth)
    for before, (A, B, out) in zip(made, step.made):
        np.testing.assert_array_equal(out, before)
        np.testing.assert_allclose(out, A @ B, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_bench_quick_reports_every_measure(tmp_path, capsys):
    """A whole quick benchmark (a cold compile, the thread policy beside busy loops, every peer):
    about a minute, so slow. That every peer takes the engine's step is checked in the default run."""
    import json
    assert main(["bench", "--quick", "--out", str(tmp_path / "bench.json")]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["dgemm_gflops_1_thread"] > 0
    assert report["quick"] is True
    for row in report["steps"]:
        assert {"engine", "numpy", "numpy (expert)"} <= set(row["ms"])
        assert row["ms"]["engine"] > 0
        assert row["ratio"]["numpy"] == row["ms"]["engine"] / row["ms"]["numpy"]
        assert row["ratio_to_best_peer"] == max(row["ratio"].values())
        for clocks in row["clocks"].values():
            assert clocks["cpu"][0] <= clocks["cpu"][1] <= clocks["cpu"][2]
            assert clocks["wall"][0] <= clocks["wall"][1] <= clocks["wall"][2]
        assert row["engine_over_floor"] > 0
        assert row["dgemm_gflops"] > 0
        assert "dgemm" not in row["ms"]                              # the floor's timer, not a peer
        assert (row["speedup_over_one_thread"] is None) == (row["threads"] == 1)
        assert row["float32"]["speedup_over_float64"] == row["ms"]["engine"] / row["float32"]["ms"]
        assert (row["products_over_floor"] is None) == (row["threads"] > 1 or row["d"] <= 3)
        assert "engine float32" not in row["ratio"]                  # not a peer
    assert {row["threads"] for row in report["steps"]} == {1, report["machine"]["cpus"]}
    assert all(row["engine_over_floor"] > 0 for row in report["deep_steps"])
    assert all(v > 0 for v in report["population_ns_per_pair"].values())
    assert {"sliced", "1d", "exact"} <= set(report["w2_seconds"]["500"])
    assert report["compile_cold"] > 0
    assert report["import_cached"] > 0
    policy = report["thread_policy"]                     # structure only: speeds are the bench's business
    assert set(policy) == {"small, busy", "medium, busy", "large, quiet"}
    assert policy["small, busy"]["busy_processes"] >= 1
    assert policy["large, quiet"]["busy_processes"] == 0
    for row in policy.values():
        assert row["ratio_wall"] > 0
        assert row["default"]["wall"][0] <= row["default"]["wall"][1] <= row["default"]["wall"][2]
    assert "| (n, m, d) |" in capsys.readouterr().out


def test_every_deep_benchmark_peer_takes_the_engine_s_deep_step():
    """PyTorch autograd and JAX's jitted loop (when installed) take deep.velocity's Euler steps, to 1e-12."""
    import numpy as np

    from meanfield.model import deep
    from meanfield.tools import bench, peers
    for arch in ("mlp", "resnet"):
        net = deep.DeepNet(4, 24, 3, "relu", arch, "ntk", 2.0, deep.resnet_scale(3, 1.0, 2.0))
        rng = np.random.default_rng(3)
        params, X, y = net.init(rng), rng.standard_normal((16, 4)), rng.standard_normal(16)
        for name, step in peers.deep_peers(net, params, X, y).items():
            engine = bench.deep_engine_stepper(net, params, X, y)
            step()
            for _ in range(step.steps):
                engine()
            for ours, theirs in zip(engine.state(), step.state()):
                np.testing.assert_allclose(theirs, ours, rtol=1e-12, atol=1e-14, err_msg=f"{name}, {arch}")
            assert np.max(np.abs(engine.state()[1] - params[1])) > 1e-9


def test_every_benchmark_peer_takes_the_engine_s_step():
    """Naive and expert peers (NumPy always; PyTorch and JAX when the bench extra is installed)
    compute the same steps as the engine, to 1e-12."""
    import numpy as np

    from meanfield.tools import bench, peers
    X, y, theta = bench._problem(30, 40, 5)
    found = peers.peers(X, y, theta)
    assert {"numpy", "numpy (expert)"} <= set(found)
    for name, step in found.items():
        engine = bench.engine_stepper(X, y, theta)
        for _ in range(3):
            step()
            for _ in range(step.steps):
                engine()
        for ours, theirs in zip(engine.state(), step.state()):
            np.testing.assert_allclose(theirs, ours, rtol=1e-12, atol=1e-14, err_msg=name)
        assert np.max(np.abs(engine.state()[0] - theta[:, :5])) > 1e-9          # the steps moved something
    engine, single = bench.engine_stepper(X, y, theta), bench.engine_stepper(X, y, theta, "float32")
    for _ in range(3):                   # the float32 row's step: the same steps to float32 precision
        engine()
        single()
    for ours, theirs in zip(engine.state(), single.state()):
        assert theirs.dtype == np.float32
        np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5 * np.abs(ours).max())


def test_output_piped_into_a_reader_that_stops_exits_quietly():
    """`meanfield scenarios | head -1`: the reader closes the pipe; no BrokenPipe traceback, exit 0."""
    proc = subprocess.run(f"{sys.executable} -m meanfield scenarios | head -c 1; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_band_saves_the_finite_width_band_and_refuses_in_one_line(tmp_path, capsys):
    """band: the same numbers as fluctuations(), saved sealed (show reads it, an edit is detected);
    a kinked activation, times off the step grid or a missing file refused by name, nothing written."""
    from meanfield.theory import fluctuations as fl

    config = write(tmp_path, "seed = 3\n[network]\nm = 8\nd = 2\nactivation = 'tanh'\n[data]\nn = 12\n"
                             "[flow]\ndt = 0.1\nt_end = 1.0\n[record]\nn_records = 3\nspacing = 'linear'\n")
    X = np.random.default_rng(2).standard_normal((4, 2))
    np.savez(tmp_path / "x.npz", X=X)
    out = tmp_path / "band"
    assert main(["band", config, "--level", "4", "--test", str(tmp_path / "x.npz"), "--times", "0,0.5,1",
                 "--out", str(out)]) == 0
    assert "finite-width band at level 4" in capsys.readouterr().out
    saved = fl.Fluctuations.load(out)
    direct = fl.fluctuations(mf.Config.from_toml(config), 4, x=X, times=[0, 0.5, 1.0])
    np.testing.assert_array_equal(saved.predictor, direct.predictor)
    np.testing.assert_array_equal(saved.error["risk"], direct.error["risk"])
    assert saved.config == direct.config
    assert main(["show", str(out)]) == 0
    assert "finite-width band at level 4" in capsys.readouterr().out
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"level": 4', '"level": 5'))
    assert main(["show", str(out)]) == 2
    capsys.readouterr()
    for extra, name in ((["--test", str(tmp_path / "none.npz")], "--test"), (["--times", "0.05"], "--times"),
                        (["--times", "1,x"], "--times"), (["--set", "network.activation='relu'"],
                                                           "network.activation")):
        assert main(["band", config, *extra, "--out", str(tmp_path / "no")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert name in err
        assert not (tmp_path / "no").exists()


def test_band_of_the_population_risk_refuses_parallel_pairs_by_name_or_drops_them_and_says_so(tmp_path, capsys):
    config = write(tmp_path, "[network]\nm = 10\nd = 100\nactivation = 'relu'\n[init]\nw_law = 'gaussian'\n"
                             "w_scale = 0.1\na_law = 'gaussian'\ntau = 0.1\n[data]\nkind = 'population'\n"
                             "teacher_m0 = 10\n[flow]\ndt = 0.2\nt_end = 4.2\n")
    assert main(["band", config, "--level", "5", "--times", "0.6,4.2", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "parallel" in err
    assert not (tmp_path / "no").exists() or not any((tmp_path / "no").iterdir())
    out = tmp_path / "band"
    assert main(["band", config, "--level", "5", "--times", "0.6,4.2", "--parallel", "drop", "--out", str(out)]) == 0
    assert "dropped the second derivatives" in capsys.readouterr().out
    assert main(["show", str(out)]) == 0
    assert "dropped the second derivatives" in capsys.readouterr().out
