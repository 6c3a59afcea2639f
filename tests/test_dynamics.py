"""The engine against exact oracles: linear ODEs, the lazy kernel limit, Ornstein–Uhlenbeck laws,
invariants and symmetries of the flow."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.model import twolayer

from . import naive
from .conftest import fitted_slope


def base(**changes):
    cfg = mf.Config(network={"m": 40, "d": 3}, data={"n": 20, "n_test": 10},
                    flow={"dt": 0.02, "t_end": 2.0}, record={"n_records": 10})
    return cfg.updated(changes)


# --- output layer only: a linear ODE -----------------------------------------------------------

@pytest.mark.parametrize("scaling,alpha", [("mean_field", 1.3), ("lazy", 0.7)])
def test_output_layer_training_is_the_linear_ode_with_euler_order_one(scaling, alpha):
    errors, dts = [], [0.1, 0.05, 0.025, 0.0125]
    for dt in dts:
        cfg = base(**{"network.activation": "tanh", "network.train": "output", "network.scaling": scaling,
                      "network.alpha": alpha, "flow.lam": 0.1, "flow.dt": dt, "flow.t_end": 2.0})
        res = mf.simulate(cfg)
        exact, X = naive.output_only_exact(cfg, res, res.t[-1])
        got = twolayer.predict(res.theta, X, cfg.network)
        errors.append(np.max(np.abs(got - exact)))
        np.testing.assert_array_equal(res.theta[:, :-1], res.theta0[:, :-1])   # w frozen
    assert errors[-1] < 1e-2 * np.max(np.abs(exact))
    assert fitted_slope(dts, errors) == pytest.approx(1.0, abs=0.1)


def test_heun_is_second_order_on_the_linear_ode():
    errors, dts = [], [0.2, 0.1, 0.05, 0.025]
    for dt in dts:
        cfg = base(**{"network.activation": "tanh", "network.train": "output", "flow.lam": 0.1,
                      "flow.dt": dt, "flow.t_end": 2.0, "flow.integrator": "heun"})
        res = mf.simulate(cfg)
        exact, X = naive.output_only_exact(cfg, res, res.t[-1])
        errors.append(np.max(np.abs(twolayer.predict(res.theta, X, cfg.network) - exact)))
    assert fitted_slope(dts, errors) == pytest.approx(2.0, abs=0.15)


# --- lazy regime: the kernel flow with Du et al.'s H_inf ---------------------------------------

def test_lazy_relu_follows_the_h_infinity_kernel_flow_with_error_m_to_minus_half():
    n, dt, t_end = 8, 0.05, 30.0
    widths, errors = [100, 400, 1600, 6400], []
    for m in widths:
        errs = []
        for seed in range(4):
            cfg = mf.Config(seed=seed,
                            network={"m": m, "d": 3, "scaling": "lazy", "train": "hidden"},
                            init={"w_law": "gaussian", "a_law": "rademacher", "symmetric": True},
                            data={"kind": "teacher", "n": n, "inputs": "sphere", "teacher_m0": 2},
                            flow={"dt": dt, "t_end": t_end}, record={"n_records": 8, "spacing": "linear"})
            res = mf.simulate(cfg)
            data = mf.run_data(cfg)
            H = naive.h_inf(data.X)
            evals, evecs = np.linalg.eigh(H / n)
            preds = np.array([twolayer.predict(th, data.X, cfg.network) for th in res.snapshots])
            # the m -> infinity limit of the discretised flow: u_k = y - (I - dt H/n)^k y
            limit = np.array([data.y - evecs @ ((1 - dt * evals) ** round(t / dt) * (evecs.T @ data.y))
                              for t in res.t])
            flow_limit = np.array([data.y - evecs @ (np.exp(-t * evals) * (evecs.T @ data.y)) for t in res.t])
            assert np.max(np.abs(limit - flow_limit)) < 2e-3 * np.max(np.abs(data.y))
            errs.append(np.sqrt(np.mean((preds - limit) ** 2)))
        errors.append(np.mean(errs))
    assert errors[-1] < 0.05 * np.sqrt(np.mean(data.y ** 2))
    assert fitted_slope(widths, errors) == pytest.approx(-0.5, abs=0.15)


# --- noise: Ornstein–Uhlenbeck -----------------------------------------------------------------

def test_no_data_with_decay_and_temperature_is_ornstein_uhlenbeck():
    lam, T, dt = 1.0, 0.5, 0.1
    cfg = mf.Config(seed=3, network={"m": 20000, "d": 1}, data={"kind": "none"},
                    flow={"dt": dt, "t_end": 8.0, "lam": lam, "temperature": T},
                    record={"n_records": 9, "spacing": "linear"})
    res = mf.simulate(cfg)
    q = 1 - lam * dt
    v_inf = T / (lam * (1 - lam * dt / 2))                   # exact Euler–Maruyama stationary variance
    second0, mean0 = np.mean(res.theta0 ** 2, axis=0), np.mean(res.theta0, axis=0)
    N = res.theta0.shape[0]
    for t, snap in zip(res.t, res.snapshots):
        k = round(t / dt)
        noise_var = v_inf * (1 - q ** (2 * k))
        expected_second = q ** (2 * k) * second0 + noise_var
        se = np.sqrt(2 * noise_var ** 2 / N) + 1e-15
        np.testing.assert_allclose(np.mean(snap ** 2, axis=0), expected_second, atol=4 * se, rtol=1e-12)
        np.testing.assert_allclose(np.mean(snap, axis=0), q ** k * mean0, atol=4 * np.sqrt(noise_var / N) + 1e-15)
    assert q ** (2 * 80) < 1e-7
    np.testing.assert_allclose(np.var(res.snapshots[-1], axis=0), v_inf, rtol=4 * np.sqrt(2 / N))


# --- invariants --------------------------------------------------------------------------------

def test_relu_balance_is_conserved_up_to_order_dt():
    drifts = []
    for dt in (0.02, 0.01):
        res = mf.simulate(base(**{"flow.dt": dt, "flow.t_end": 2.0}))
        drifts.append(res.observables["balance_drift"][-1])
        b0 = res.theta0[:, -1] ** 2 - np.sum(res.theta0[:, :-1] ** 2, axis=1)
        assert drifts[-1] < 0.05 * np.max(np.abs(b0))
    assert drifts[1] / drifts[0] == pytest.approx(0.5, abs=0.1)


def test_relu_balance_decays_like_exp_minus_two_lam_t_with_weight_decay():
    lam = 0.4
    res = mf.simulate(base(**{"flow.dt": 0.005, "flow.t_end": 2.0, "flow.lam": lam}))
    b0 = res.theta0[:, -1] ** 2 - np.sum(res.theta0[:, :-1] ** 2, axis=1)
    for t, snap in zip(res.t, res.snapshots):
        b = snap[:, -1] ** 2 - np.sum(snap[:, :-1] ** 2, axis=1)
        np.testing.assert_allclose(b, b0 * np.exp(-2 * lam * t), atol=0.02 * np.max(np.abs(b0)))


def test_noiseless_small_step_risk_never_increases():
    for loss, labels in (("squared", "teacher"), ("logistic", "random_labels")):
        cfg = base(**{"flow.loss": loss, "data.kind": labels, "flow.dt": 0.01, "flow.t_end": 3.0,
                      "record.n_records": 301, "record.spacing": "linear", "flow.lam": 0.05})
        res = mf.simulate(cfg)
        assert len(res.t) == 301
        assert np.all(np.diff(res.observables["objective"]) <= 1e-12)      # lam > 0: the objective decreases
    res = mf.simulate(base(**{"flow.dt": 0.01, "record.n_records": 201, "record.spacing": "linear"}))
    assert np.all(np.diff(res.observables["train_risk"]) <= 1e-12)
    assert res.observables["train_risk"][-1] < 0.9 * res.observables["train_risk"][0]


# --- symmetries --------------------------------------------------------------------------------

def test_duplicating_particles_leaves_the_mean_field_path_unchanged():
    cfg = base(**{"network.activation": "tanh", "flow.lam": 0.1})
    res = mf.simulate(cfg)
    doubled = np.repeat(res.theta0, 2, axis=0)
    res2 = mf.simulate(cfg.updated({"network.m": 2 * cfg.network.m}), theta0=doubled)
    np.testing.assert_allclose(res2.snapshots[:, ::2], res.snapshots, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res2.snapshots[:, 1::2], res.snapshots, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res2.observables["train_risk"], res.observables["train_risk"], rtol=1e-10)


def test_duplicating_particles_scales_the_lazy_initial_predictor_by_sqrt_two():
    cfg = base(**{"network.scaling": "lazy"})
    res = mf.simulate(cfg)
    res2 = mf.simulate(cfg.updated({"network.m": 2 * cfg.network.m}), theta0=np.repeat(res.theta0, 2, axis=0))
    np.testing.assert_allclose(res2.observables["predictor_norm"][0],
                               np.sqrt(2) * res.observables["predictor_norm"][0], rtol=1e-12)


def test_permuting_particles_permutes_the_trajectory(rng):
    cfg = base(**{"flow.temperature": 0.0, "network.activation": "erf"})
    res = mf.simulate(cfg)
    perm = rng.permutation(cfg.network.m)
    res2 = mf.simulate(cfg, theta0=res.theta0[perm])
    np.testing.assert_allclose(res2.snapshots, res.snapshots[:, perm], rtol=1e-10, atol=1e-12)


# --- reproducibility ---------------------------------------------------------------------------

def test_same_seed_same_result_and_thread_count_does_not_matter():
    cfg = base(**{"flow.temperature": 0.01, "flow.batch_size": 7, "network.m": 300})
    one = mf.simulate(cfg.updated({"flow.threads": 1}))
    two = mf.simulate(cfg.updated({"flow.threads": 2}))
    again = mf.simulate(cfg.updated({"flow.threads": 2}))
    np.testing.assert_array_equal(one.snapshots, two.snapshots)
    np.testing.assert_array_equal(two.snapshots, again.snapshots)
    other = mf.simulate(cfg.updated({"seed": 1}))
    assert not np.array_equal(other.snapshots[-1], one.snapshots[-1])


def test_online_sgd_draws_fresh_samples_and_learns_the_teacher():
    cfg = base(**{"flow.online": True, "flow.batch_size": 16, "flow.dt": 0.05, "flow.t_end": 20.0,
                  "data.n_test": 500, "network.m": 50})
    res = mf.simulate(cfg)
    risk = res.observables["test_risk"]
    assert risk[-1] < 0.3 * risk[0]
    np.testing.assert_array_equal(mf.simulate(cfg).theta, res.theta)


@pytest.mark.parametrize("spacing", ["geometric", "linear"])
@pytest.mark.parametrize("n_steps,n_records", [(100, 2), (100, 3), (7, 50), (1, 2), (10**6, 40)])
def test_record_steps_start_at_zero_end_at_the_last_step_and_increase(spacing, n_steps, n_records):
    from meanfield.engine.problem import record_steps
    steps = record_steps(n_steps, n_records, spacing)
    assert steps[0] == 0
    assert steps[-1] == n_steps
    assert np.all(np.diff(steps) > 0)
    assert len(steps) <= n_records
    if spacing == "linear":                     # geometric spacing merges the early rounded steps
        assert len(steps) == min(n_records, n_steps + 1)
    else:
        assert len(steps) >= min(n_records, n_steps + 1) // 2


def test_a_run_reaches_t_end_with_two_records():
    res = mf.simulate(base(**{"record.n_records": 2, "flow.dt": 0.02, "flow.t_end": 2.0}))
    np.testing.assert_allclose(res.t, [0.0, 2.0])
    assert res.stats["steps"] == 100


def test_recorded_observables_equal_their_numpy_definitions():
    cfg = base(**{"flow.lam": 0.2, "network.train": "hidden", "network.scaling": "lazy", "network.alpha": 2.0,
                  "network.centered": True})
    res = mf.simulate(cfg)
    data = mf.run_data(cfg)
    f0 = twolayer.predict(res.theta0, data.X, cfg.network)
    f0_test = twolayer.predict(res.theta0, data.X_test, cfg.network)
    obs = res.observables
    for k, theta in enumerate(res.snapshots):
        assert obs["objective"][k] == pytest.approx(twolayer.objective(theta, data.X, data.y, cfg.network, cfg.flow,
                                                                       f0), rel=1e-10)
        assert obs["test_risk"][k] == pytest.approx(twolayer.risk(theta, data.X_test, data.y_test, cfg.network,
                                                                  "squared", f0_test), rel=1e-10)
        moved = np.linalg.norm(theta - res.theta0, axis=1)
        assert obs["displacement_max"][k] == pytest.approx(moved.max(), abs=1e-15)
        pred = twolayer.predict(theta, data.X, cfg.network, f0)
        assert obs["predictor_norm"][k] == pytest.approx(np.sqrt(np.mean(pred ** 2)), rel=1e-10, abs=1e-15)
    assert obs["predictor_norm"][0] == 0.0                  # centered: f - f0 = 0 at initialisation
