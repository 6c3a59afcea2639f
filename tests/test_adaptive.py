"""Error-controlled steps (flow.integrator = "dopri5", alias "adaptive"; "bs3", "tsit5") follow the
gradient flow in continuous time, with a global error proportional to the tolerance (closed-form
flows)."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.engine import adaptive
from meanfield.errors import ConfigError, DivergenceError
from meanfield.model import ntk, twolayer

from .conftest import fitted_slope, resumed_after_interrupt

TOLERANCES = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9)


def run(cfg, rtol, data=None, theta0=None, method="adaptive"):
    cfg = cfg.updated({"flow.integrator": method, "flow.rtol": rtol, "flow.atol": 1e-3 * rtol})
    return mf.simulate(cfg, data=data, theta0=theta0)


def output_layer_flow(rng):
    """Only a trained (ReLU features fixed), lam > 0: a' = A a + c, A = -Phi^T Phi / (m n) - lam I, c = Phi^T y / n."""
    m, d, n, lam, t_end = 20, 3, 30, 0.05, 4.0
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    theta0 = rng.standard_normal((m, d + 1))
    cfg = mf.Config(seed=0, network={"m": m, "d": d, "train": "output"}, data={"kind": "arrays"},
                    flow={"dt": 0.5, "t_end": t_end, "lam": lam}, record={"n_records": 2})
    Phi = np.maximum(X @ theta0[:, :d].T, 0.0)
    A, c = -Phi.T @ Phi / (m * n) - lam * np.eye(m), Phi.T @ y / n
    probe = theta0.copy()
    np.testing.assert_allclose(twolayer.velocity(probe, X, y, cfg.network, cfg.flow)[:, d], A @ probe[:, d] + c,
                               rtol=1e-12, atol=1e-15)             # the drift is this affine map
    star = np.linalg.solve(-A, c)
    lam_A, V = np.linalg.eigh(A)
    exact = star + V @ (np.exp(lam_A * t_end) * (V.T @ (theta0[:, d] - star)))
    return cfg, (X, y), theta0, lambda res: np.max(np.abs(res.theta[:, d] - exact))


def kernel_flow(rng):
    """The tangent model (network.linearized): u' = -(1/n) H (u - y) on the training inputs."""
    cfg = mf.Config(seed=3, network={"m": 40, "d": 3, "activation": "tanh", "linearized": True},
                    data={"n": 25}, flow={"dt": 0.5, "t_end": 3.0}, record={"n_records": 2})
    data = mf.run_data(cfg)
    probe = mf.simulate(cfg.updated({"flow.t_end": 0.5}))
    H = ntk.tangent_kernel(probe.theta0, data.X, cfg.network)
    u0 = twolayer.predict(probe.theta0, data.X, cfg.network, theta0=probe.theta0)
    lam_H, V = np.linalg.eigh(H / len(data.y))
    exact = data.y + V @ (np.exp(-lam_H * 3.0) * (V.T @ (u0 - data.y)))
    return cfg, None, None, lambda res: np.max(np.abs(
        twolayer.predict(res.theta, data.X, cfg.network, theta0=res.theta0) - exact))


def linear_activation_flow(rng):
    """One balanced neuron a = w, linear activation, d = 1: p = a w solves the logistic equation
    p' = 2 S2 p (beta - p), beta = Sxy / S2 (S2 = mean x^2, Sxy = mean x y)."""
    n, t_end = 30, 2.0
    X = rng.standard_normal((n, 1))
    y = 1.5 * X[:, 0] + 0.3 * rng.standard_normal(n)
    cfg = mf.Config(seed=0, network={"m": 1, "d": 1, "activation": "linear"}, data={"kind": "arrays"},
                    flow={"dt": 0.5, "t_end": t_end}, record={"n_records": 2})
    S2, Sxy, p0 = np.mean(X[:, 0] ** 2), np.mean(X[:, 0] * y), 0.09
    beta = Sxy / S2
    exact = beta / (1 + (beta / p0 - 1) * np.exp(-2 * S2 * beta * t_end))
    return cfg, (X, y), np.array([[0.3, 0.3]]), lambda res: abs(res.theta[0, 0] * res.theta[0, 1] - exact)


@pytest.mark.parametrize("method", ["dopri5", "bs3", "tsit5"])
@pytest.mark.parametrize("flow", [output_layer_flow, kernel_flow, linear_activation_flow])
def test_the_global_error_is_proportional_to_the_tolerance(flow, method, rng):
    """For every embedded pair: the step size controller keeps the error proportional to rtol."""
    cfg, data, theta0, error = flow(rng)
    errors = [error(run(cfg, rtol, data, theta0, method)) for rtol in TOLERANCES]
    assert fitted_slope(TOLERANCES, errors) == pytest.approx(1.0, abs=0.2)
    assert max(e / tol for e, tol in zip(errors, TOLERANCES)) < 30.0


PATHS = {
    "fused": {},
    "blas": {"flow.engine": "blas"},
    "population": {"data.kind": "population", "network.activation": "erf", "data.teacher_activation": "erf"},
    "energy": {"flow.lam": 0.02, "flow.potential.kind": "double_well", "flow.potential.depth": 0.3,
               "flow.interaction.kind": "gaussian", "flow.interaction.strength": 0.4},
}


@pytest.mark.parametrize("path", PATHS)
def test_every_deterministic_path_follows_the_flow_rk4_resolves(path):
    cfg = mf.Config(seed=2, network={"m": 30, "d": 5, "activation": "tanh"},
                    data={"n": 40, "teacher_activation": "tanh", "teacher_m0": 2},
                    flow={"dt": 0.1, "t_end": 1.0}, record={"n_records": 6, "spacing": "linear"}).updated(PATHS[path])
    res = run(cfg, 1e-9)
    reference = mf.simulate(cfg.updated({"flow.integrator": "rk4", "flow.dt": 0.0025}))     # error < 3e-9
    np.testing.assert_allclose(res.theta, reference.theta, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.t, reference.t, rtol=1e-15)                 # records at the same times
    np.testing.assert_allclose(res.observables["train_risk"], reference.observables["train_risk"], rtol=1e-8)
    stats = res.stats
    assert stats["drift_evaluations"] == 1 + 6 * (stats["steps"] + stats["rejected_steps"])
    assert stats["dt_min"] <= stats["dt_max"]


def test_a_deep_run_follows_the_flow_rk4_resolves():
    cfg = mf.Config(seed=1, network={"m": 16, "d": 4, "depth": 3, "activation": "tanh"}, data={"n": 20},
                    flow={"dt": 0.05, "t_end": 1.0}, record={"n_records": 3})
    res = run(cfg, 1e-9)
    reference = mf.simulate(cfg.updated({"flow.integrator": "rk4", "flow.dt": 0.0025}))
    np.testing.assert_allclose(res.theta, reference.theta, rtol=0, atol=1e-8)
    assert res.stats["steps"] > 0


def test_the_controller_is_stable_where_a_fixed_step_diverges():
    """From a first trial step 100x beyond Euler's stability limit, the adaptive run completes,
    its risk never increasing between records (a gradient flow), with few rejections: the step
    stays within the stability interval (the stiffness estimate), while Euler at that dt diverges."""
    cfg = mf.Config(seed=4, network={"m": 50, "d": 2, "activation": "tanh"},
                    data={"n": 30, "teacher_activation": "tanh"},
                    flow={"dt": 20.0, "t_end": 400.0}, record={"n_records": 30, "spacing": "linear"})
    with pytest.raises(DivergenceError):
        mf.simulate(cfg)
    res = run(cfg, 1e-3)
    risk = res.observables["train_risk"]
    assert res.status == "completed"
    assert np.all(np.diff(risk) <= 1e-12 * risk[0])
    assert res.stats["rejected_steps"] < 0.05 * res.stats["steps"]


def test_relu_on_samples_takes_forced_steps_at_the_floor_and_says_so():
    """ReLU's drift jumps where a sample crosses a neuron's hyperplane (and chatters where the flow
    slides along one): with flow.dt_floor the run completes, counting the steps taken above the
    tolerance, within O(dt_floor) of RK4 at dt = 1e-4 (itself only first-order accurate here)."""
    cfg = mf.Config(seed=4, network={"m": 50, "d": 2}, data={"n": 30}, flow={"dt": 0.1, "t_end": 20.0},
                    record={"n_records": 2})
    reference = mf.simulate(cfg.updated({"flow.integrator": "rk4", "flow.dt": 1e-4}))
    res = run(cfg.updated({"flow.dt_floor": 1e-3}), 1e-6)
    assert res.stats["forced_steps"] > 0
    assert res.stats["dt_min"] >= 1e-3
    np.testing.assert_allclose(res.theta, reference.theta, rtol=0, atol=3e-3)


@pytest.mark.parametrize("depth", [1, 2])
def test_an_adaptive_run_has_the_same_bits_on_one_and_two_threads_and_when_resumed(depth, tmp_path, monkeypatch):
    """Interrupted at its 4th record and resumed from the checkpoint (the controller's state is
    saved with it), the run ends exactly where the uninterrupted one does."""
    cfg = mf.Config(seed=5, network={"m": 40, "d": 5, "depth": depth, "activation": "tanh"},
                    data={"n": 50, "teacher_activation": "tanh"},
                    flow={"dt": 0.1, "t_end": 3.0, "integrator": "adaptive", "rtol": 1e-7},
                    record={"n_records": 6, "checkpoint_seconds": 0.0,
                            "diagnostics": ["tangent_gap"] if depth == 1 else []})
    whole = mf.simulate(cfg.updated({"flow.threads": 1}))
    np.testing.assert_array_equal(mf.simulate(cfg.updated({"flow.threads": 2})).theta, whole.theta)
    resumed = resumed_after_interrupt(monkeypatch, 3, lambda **kw: mf.simulate(cfg.updated({"flow.threads": 1}), **kw),
                                      tmp_path)
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    for key, values in whole.observables.items():
        np.testing.assert_array_equal(resumed.observables[key], values, err_msg=key)
    assert resumed.stats["steps"] == whole.stats["steps"]


def test_adaptive_refuses_noise_and_minibatches_and_bad_tolerances_before_any_work():
    for flow, parameter in (({"temperature": 0.1}, "flow.temperature"), ({"batch_size": 5}, "flow.batch_size"),
                            ({"rtol": 0.0}, "flow.rtol"), ({"rtol": 1e-16}, "flow.rtol"), ({"rtol": 2.0}, "flow.rtol"),
                            ({"atol": -1e-9}, "flow.atol")):
        with pytest.raises(ConfigError, match=parameter):
            mf.Config(flow={"integrator": "adaptive", **flow})


def test_the_step_size_stalls_with_a_clear_message_when_the_drift_is_not_finite():
    ctrl = adaptive.Controller(0.1)
    y = np.ones(3)
    message = adaptive.advance(y, 0.0, 1.0, lambda v: np.full_like(v, np.nan) if v[0] > 1.05 else -v * 0 + 1.0,
                               ctrl, 1e-6, 1e-9)
    assert "cannot be followed" in message
    assert np.all(np.isfinite(y))
    assert y[0] <= 1.05


def test_records_land_on_their_times_and_the_controller_keeps_its_step_across_them():
    """y' = -y from 1: exact at every record, and 5 records do not take more steps than one."""
    many, few = adaptive.Controller(0.01), adaptive.Controller(0.01)
    y_many, y_few = np.ones(2), np.ones(2)
    for t0, t1 in zip(np.linspace(0, 5, 6)[:-1], np.linspace(0, 5, 6)[1:]):
        adaptive.advance(y_many, t0, t1, lambda v: -v, many, 1e-10, 1e-14)
        np.testing.assert_allclose(y_many, np.exp(-t1), rtol=5e-9)
    adaptive.advance(y_few, 0.0, 5.0, lambda v: -v, few, 1e-10, 1e-14)
    assert many.accepted <= few.accepted + 5


def test_the_command_line_runs_an_adaptive_config_and_show_reports_its_steps(tmp_path, capsys):
    from meanfield.tools.cli import main

    config = tmp_path / "c.toml"
    config.write_text(mf.Config(network={"m": 10, "d": 2, "activation": "tanh"}, data={"n": 20},
                                flow={"dt": 0.1, "t_end": 1.0, "integrator": "adaptive", "rtol": 1e-7},
                                record={"n_records": 3}).to_toml())
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 0
    saved = mf.Result.load(tmp_path / "run")
    capsys.readouterr()
    assert main(["show", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    stats = saved.stats
    assert (f"adaptive: {stats['rejected_steps']} rejected and {stats['forced_steps']} forced steps, steps "
            f"{stats['dt_min']:.3g} to {stats['dt_max']:.3g}, {stats['drift_evaluations']} drift evaluations") in text


def test_relu_on_samples_without_a_floor_stops_naming_the_floor_and_keeps_its_checkpoint(tmp_path):
    """The step shrinks towards round-off where the flow slides along a hyperplane: it ran for hours
    without a word; now STALL_ATTEMPTS steps that barely advance t stop it, naming flow.dt_floor
    (exit 2 on the command line), with the checkpoint kept."""
    cfg = mf.Config(seed=4, network={"m": 50, "d": 2}, data={"n": 30},
                    flow={"dt": 0.1, "t_end": 20.0, "integrator": "adaptive", "rtol": 1e-6}, record={"n_records": 2})
    with pytest.raises(mf.ConfigError, match=r"stalled at t = .*set flow.dt_floor") as info:
        mf.simulate(cfg, checkpoint=tmp_path)
    assert info.value.parameter == "flow.dt_floor"
    assert (tmp_path / "checkpoint.json").exists()


def test_an_exploding_flow_is_stopped_as_a_divergence_in_adaptive_runs():
    """A quadratic potential -10 |theta|^2 / 2 pushes the particles out like exp(10 t): the adaptive
    run stops once its training risk passes the divergence limit, as a divergence (between records: it
    ran on, its steps shrinking, without a result)."""
    cfg = mf.Config(seed=1, network={"m": 20, "d": 2, "activation": "tanh"},
                    data={"n": 20, "teacher_activation": "tanh"},
                    flow={"dt": 0.1, "t_end": 40.0, "integrator": "adaptive",
                          "potential": {"kind": "quadratic", "matrix": (-10 * np.eye(3)).tolist()}},
                    record={"n_records": 5})
    with pytest.raises(mf.DivergenceError, match=r"the training risk reached .* above record.divergence_factor"):
        mf.simulate(cfg)


def test_vacuous_tolerances_and_a_rising_objective_are_said():
    """atol = 1e300, rtol = 0.999: the risk rose 1.7 -> 7e4 and the run said "completed". Now the
    tolerances are called vacuous before the run, and the rise of a gradient flow's objective after."""
    cfg = mf.Config(seed=4, network={"m": 50, "d": 2, "activation": "tanh"},
                    data={"n": 30, "teacher_activation": "tanh"},
                    flow={"dt": 0.1, "t_end": 20.0, "integrator": "adaptive", "rtol": 0.999, "atol": 1e300},
                    record={"n_records": 5})
    with pytest.warns(UserWarning) as caught:
        result = mf.simulate(cfg)
    said = [str(w.message) for w in caught]
    assert any("make the error control vacuous" in s for s in said), said
    assert any("the objective rose from" in s and "flow.rtol and flow.atol too coarse" in s for s in said), said
    assert result.observables["objective"][-1] > 10 * result.observables["objective"][0]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mf.simulate(cfg.updated({"flow.rtol": 1e-6, "flow.atol": 1e-9}))


@pytest.mark.parametrize("spacing", ["geometric", "linear"])
def test_records_cost_no_more_steps_at_the_floor(spacing):
    """ReLU with a floor: 41 records took over 90 s where 2 took 2 s: a step landing on a record, up
    to 1.01 dt_floor long, was never forced and was rejected again and again. Now 41 records cost
    the steps of 2 within 5 %."""
    cfg = mf.Config(seed=4, network={"m": 50, "d": 2}, data={"n": 30},
                    flow={"dt": 0.1, "t_end": 20.0, "integrator": "adaptive", "rtol": 1e-6, "dt_floor": 1e-3})
    two = mf.simulate(cfg.updated({"record.n_records": 2}))
    many = mf.simulate(cfg.updated({"record.n_records": 41, "record.spacing": spacing}))
    assert many.status == "completed"
    np.testing.assert_allclose(many.stats["drift_evaluations"], two.stats["drift_evaluations"], rtol=0.05)
