"""flow.dtype = "float32": the two-layer steps in float32 on the fused and BLAS paths. The float32
drift equals the float64 NumPy twin to float32 precision; a float32 run tracks the float64 run,
gives the same bits on one and two threads and when resumed; its buffers take half the memory;
what it does not cover is refused by name."""
import numpy as np
import pytest

import meanfield as mf
from meanfield import _kernels
from meanfield.engine import drifts, memory
from meanfield.engine.problem import build
from meanfield.model import twolayer
from meanfield.model.data import Dataset

from .conftest import assert_same_run, resumed_after_interrupt

FLOAT32_EPS = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("d,activation,engine", [(1, "relu", "fused"), (2, "relu", "fused"), (3, "relu", "fused"),
                                                 (5, "tanh", "fused"),
                                                 (20, "relu", "blas"), (20, "tanh", "blas"), (6, "sigmoid", "blas")])
@pytest.mark.parametrize("chunk", [1024, 16])      # 16: several sample tiles on the BLAS path, the last partial
def test_the_float32_drift_equals_the_float64_twin_to_float32_precision(rng, d, activation, engine, chunk, monkeypatch):
    """On the float32-rounded particles and data, the float32 drift (1 and 2 threads: the same bits)
    equals ``twolayer.velocity`` in float64 within 50 float32 ulps of its largest entry."""
    monkeypatch.setattr(_kernels, "CHUNK", chunk)
    m, n = 257, 75
    cfg = mf.Config(network={"m": m, "d": d, "activation": activation, "train": "both"},
                    flow={"loss": "squared", "lam": 0.1, "engine": engine, "dtype": "float32"})
    X, y, theta = rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal((m, d + 1))
    problem = build(cfg, Dataset(X, y, X[:0], y[:0]), theta)
    assert problem.path == engine
    assert all(a.dtype == np.float32 for a in problem.steps)
    theta32 = problem.theta0.astype(np.float32)
    out = {}
    for threads in (1, 2):
        _kernels.set_threads(threads)
        out[threads] = drifts.strategy(problem, n).drift(theta32)
    _kernels.set_threads(0)
    assert out[1].dtype == np.float32
    np.testing.assert_array_equal(out[2], out[1])
    expected = twolayer.velocity(problem.theta0, problem.X, problem.y, cfg.network, cfg.flow)
    np.testing.assert_allclose(out[1], expected, rtol=0, atol=50 * FLOAT32_EPS * np.abs(expected).max())


RUN = mf.Config(seed=3, network={"m": 200, "d": 2, "activation": "relu"}, data={"n": 300, "n_test": 50},
                flow={"dt": 0.05, "t_end": 10.0, "dtype": "float32"}, record={"n_records": 12})


@pytest.mark.parametrize("changes", [{}, {"network.d": 20, "network.m": 300},
                                     {"network.d": 8, "network.activation": "tanh"}, {"flow.integrator": "rk4"}])
def test_a_float32_run_tracks_the_float64_run_and_has_the_same_bits_on_one_and_two_threads(changes):
    """A standard teacher-student run (fused path at d = 2, BLAS at d = 20 and 8): the training risk
    of the float32 run is within 1e-5 of the float64 run's, relatively, at every record (measured
    2e-7); particles and snapshots are float32, observables float64; threads change no bits."""
    cfg = RUN.updated(changes)
    one, two = (mf.simulate(cfg.updated({"flow.threads": k})) for k in (1, 2))
    assert_same_run(one, two)
    wide = mf.simulate(cfg.updated({"flow.dtype": "float64"}))
    assert one.theta.dtype == np.float32
    assert one.snapshots.dtype == np.float32
    assert one.observables["train_risk"].dtype == np.float64
    assert "float32 steps" in repr(one)
    np.testing.assert_array_equal(one.theta0, one.theta0.astype(np.float32))       # rounded once
    risk32, risk64 = one.observables["train_risk"], wide.observables["train_risk"]
    assert risk64[-1] < 0.7 * risk64[0]                                              # it trained
    np.testing.assert_allclose(risk32, risk64, rtol=1e-5)


def test_float32_minibatch_langevin_and_online_runs_have_the_same_bits_on_one_and_two_threads():
    for changes in ({"flow.integrator": "heun", "flow.temperature": 0.01, "flow.batch_size": 32},
                    {"flow.online": True, "flow.batch_size": 32, "network.d": 12}):
        cfg = RUN.updated({**changes, "flow.t_end": 2.0})
        one, two = (mf.simulate(cfg.updated({"flow.threads": k})) for k in (1, 2))
        assert one.theta.dtype == np.float32
        assert_same_run(one, two)


def test_an_interrupted_float32_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    cfg = RUN.updated({"network.d": 12, "flow.batch_size": 40, "record.checkpoint_seconds": 0.0})
    whole = mf.simulate(cfg)
    resumed = resumed_after_interrupt(monkeypatch, 5, lambda **kw: mf.simulate(cfg, **kw), tmp_path)
    assert resumed.theta.dtype == np.float32
    assert_same_run(resumed, whole)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_float32_halves_the_steps_buffers_and_the_memory_plan_says_so(rng, activation):
    """The BLAS path's float buffers (tiles, W, stages) take exactly half the bytes (ReLU's signs,
    a byte each, stay); with tanh, whose m x B tiles dominate the plan's network.m term, that
    term falls to between 1/2 and 0.55 of float64's."""
    m, n, d = 600, 500, 20
    X, y, theta = rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal((m, d + 1))
    nbytes = {}
    for dtype in ("float64", "float32"):
        cfg = mf.Config(network={"m": m, "d": d, "activation": activation}, data={"n": n, "n_test": 0},
                        flow={"engine": "blas", "dtype": dtype, "integrator": "rk4"})
        blas = drifts.strategy(build(cfg, Dataset(X, y, X[:0], y[:0]), theta), n)
        nbytes[dtype] = {name: b.nbytes for name, b in blas.buffers.items()}
    signs = nbytes["float32"].pop("signs")
    assert signs == nbytes["float64"].pop("signs")
    assert m * n <= signs < (m + 64) * n if activation == "relu" else signs == 0       # blocks of 64 neurons
    assert sum(nbytes["float32"].values()) * 2 == sum(nbytes["float64"].values())
    big = mf.Config(network={"m": 20_000, "d": 100, "activation": "tanh"}, data={"n": 20_000, "n_test": 0},
                    flow={"engine": "blas"})
    terms = {dtype: memory.memory_terms(big.updated({"flow.dtype": dtype})) for dtype in ("float64", "float32")}
    assert 0.5 < terms["float32"]["network.m"] / terms["float64"]["network.m"] < 0.55
    assert terms["float32"]["data.n"] == 1.5 * terms["float64"]["data.n"]      # float64 data and a float32 copy


@pytest.mark.parametrize("changes,named", [
    ({"network.depth": 2}, "network.depth"),
    ({"data.kind": "population"}, "data.kind"),
    ({"flow.integrator": "dopri5"}, "flow.integrator"),
    ({"network.linearized": True}, "network.linearized"),
    ({"record.diagnostics": ["tangent_gap"]}, "tangent_gap"),
    ({"flow.potential.kind": "quartic"}, "flow.potential"),
    ({"flow.interaction.kind": "gaussian"}, "flow.interaction"),
])
def test_what_float32_does_not_cover_is_refused_by_name(changes, named):
    with pytest.raises(mf.ConfigError, match="flow.dtype") as error:
        RUN.updated(changes)
    assert named in str(error.value)
    assert "'float64'" in str(error.value)


def test_float32_is_refused_with_weights_by_the_limits_and_by_the_landscape(rng):
    from meanfield.model.limit_kernels import LimitKernel
    from meanfield.theory.limits import mean_field_limit
    cfg = RUN.updated({"network.activation": "tanh"})
    weights = np.full(cfg.network.m, 1.0 / cfg.network.m)
    with pytest.raises(mf.ConfigError, match="flow.dtype.*weighted particles"):
        mf.simulate(cfg, weights=weights)
    with pytest.raises(mf.ConfigError, match="flow.dtype.*limit is computed in float64"):
        mean_field_limit(cfg, level=4)
    with pytest.raises(mf.ConfigError, match="flow.dtype.*lazy limit"):
        LimitKernel(cfg.updated({"network.scaling": "lazy"}))
    with pytest.raises(mf.ConfigError, match="flow.dtype"):
        mf.Config(flow={"dtype": "float16"})
