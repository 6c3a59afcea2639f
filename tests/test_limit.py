"""The mean-field limit solver: exact where the limit closes on moments, its error estimate, its
probes. (The m-particle system's m^-1/2 approach to it is the figure mean_field_limit's claims,
checked in quick mode by test_scenarios.)"""
import numpy as np
import pytest

import meanfield as mf
from meanfield.errors import ConfigError
from meanfield.model import twolayer
from meanfield.theory import limits

from . import naive


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_linear_activation_limit_is_the_exact_moment_flow(method):
    """Linear sigma: the limit closes on E theta theta^T; the quadrature (exact for degree 2) run by
    the engine equals the moment recursion of the same Runge–Kutta method to 1e-10."""
    alpha, lam, dt, steps = 1.3, 0.05, 0.05, 40
    cfg = mf.Config(seed=3, network={"m": 10, "d": 3, "activation": "linear", "alpha": alpha},
                    init={"w_law": "gaussian", "w_scale": 0.8, "a_law": "gaussian", "a_scale": 1.2, "tau": 0.9},
                    data={"kind": "teacher", "n": 30, "teacher_activation": "linear", "teacher_m0": 2},
                    flow={"dt": dt, "t_end": dt * steps, "lam": lam, "integrator": method},
                    record={"n_records": 5, "spacing": "linear"})
    limit = limits.mean_field_limit(cfg, level=3)              # and level 2 for the estimate: both exact
    data = mf.run_data(cfg)
    S0 = np.diag([0.8 ** 2] * 3 + [1.2 ** 2]) * 0.9 ** 2
    moments = naive.linear_moment_flow(S0, data.X, data.y, alpha, lam, dt, steps, method)
    for k, t in enumerate(limit.t):
        S = S0 if k == 0 else moments[int(round(t / dt)) - 1]
        theta, omega = limit.snapshots[k], limit.weights
        np.testing.assert_allclose(theta.T @ (omega[:, None] * theta), S, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(twolayer.predict(theta, data.X, cfg.network, weights=omega),
                                   alpha * data.X @ S[:3, 3], rtol=1e-10, atol=1e-12)
    assert limit.stats["limit"]["error"] < 1e-12            # both levels exact


def tanh_config(**changes):
    return mf.Config(seed=0, network={"m": 64, "d": 2, "activation": "tanh"},
                     init={"w_law": "gaussian", "a_law": "gaussian"},
                     data={"kind": "teacher", "n": 100, "teacher_activation": "tanh", "teacher_m0": 2},
                     flow={"dt": 0.05, "t_end": 1.6}, record={"n_records": 3, "spacing": "linear"}).updated(changes)


def test_the_error_estimate_falls_with_the_level_and_bounds_the_true_error():
    cfg = tanh_config()
    runs = {level: limits.mean_field_limit(cfg, level) for level in (4, 8, 16)}
    estimates = [runs[level].stats["limit"]["error"] for level in (4, 8, 16)]
    assert estimates[0] > estimates[1] > estimates[2]
    X = mf.run_data(cfg).X
    best = twolayer.predict(runs[16].theta, X, cfg.network, weights=runs[16].weights)
    true_8 = np.sqrt(np.mean((twolayer.predict(runs[8].theta, X, cfg.network, weights=runs[8].weights) - best) ** 2))
    assert true_8 < estimates[1]            # the estimate is the coarser level's gap: conservative


def test_probes_follow_the_limit_flow_map_without_changing_it(rng):
    cfg = tanh_config()
    probes = rng.standard_normal((5, 3))
    alone = limits.mean_field_limit(cfg, 6)
    probed = limits.mean_field_limit(cfg, 6, probes=probes)
    K = alone.stats["limit"]["nodes"]
    np.testing.assert_allclose(probed.snapshots[:, :K], alone.snapshots, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(probed.weights[K:], 0.0)
    assert probed.stats["limit"]["probes"] == 5


def test_one_limit_serves_several_runs_through_their_rows_of_probes():
    """Two runs' initial particles as the probes of one limit: each run's distances equal those
    against a limit probed by that run alone; rows that are not the run's are refused."""
    small, large = (mf.simulate(tanh_config(**{"network.m": m})) for m in (8, 16))
    X = mf.run_data(tanh_config()).X
    both = limits.mean_field_limit(tanh_config(), 4, probes=np.vstack([small.theta0, large.theta0]), estimate=False)
    for run, rows in ((small, (0, 8)), (large, (8, 24))):
        alone = limits.mean_field_limit(tanh_config(), 4, probes=run.theta0, estimate=False)
        shared = limits.compare(run, both, X, w2_at="last", probes=rows)
        once = limits.compare(run, both, X, w2_at="last", probes=rows,
                              predictions=limits.reference_predictions(both, X))
        own = limits.compare(run, alone, X, w2_at="last")
        for key in ("w2", "coupled_distance", "predictor_distance"):
            np.testing.assert_allclose(shared[key], own[key], rtol=1e-12)
            np.testing.assert_array_equal(once[key], shared[key])
    with pytest.raises(ValueError, match="probes"):
        limits.compare(small, both, X, probes=(0, 16))
    with pytest.raises(ValueError, match="probes"):
        limits.compare(small, both, X)


def test_where_the_limit_is_not_a_push_forward_it_is_refused_or_approximated_by_a_wide_run():
    for changes in ({"flow.temperature": 0.1}, {"flow.batch_size": 10}, {"network.scaling": "lazy"}):
        with pytest.raises(ConfigError, match="noiseless full-batch mean-field") as info:
            limits.mean_field_limit(tanh_config(**changes))
        assert info.value.parameter == next(iter(changes))
    with pytest.raises(ConfigError, match="record.snapshots"):
        limits.mean_field_limit(tanh_config(**{"record.snapshots": False}))
    with pytest.warns(UserWarning, match="wide run"):
        wide = limits.reference(tanh_config(**{"flow.temperature": 0.01, "network.m": 8}), M=32)
    assert wide.theta.shape == (32, 3)
    high = tanh_config(**{"network.d": 6, "network.m": 4, "flow.t_end": 0.1})   # level 16: 16^6 x 16 nodes
    with pytest.warns(UserWarning, match="network.d = 6"):
        wide = limits.reference(high, M=8)
    assert wide.theta.shape == (8, 7)
    assert wide.weights is None


@pytest.mark.parametrize("activation,a_law,order", [("tanh", "gaussian", 2), ("sigmoid", "gaussian", 2),
                                                   ("sigmoid", "constant", 1)])
def test_at_large_alpha_the_limit_follows_the_kernel_flow_of_its_tangent_kernel(activation, a_law, order):
    """The limit (centered: zero initial predictor) against u(t) = y + expm(-t H / n)(u0 - y), H =
    sum_k omega_k grad phi(theta_k, x_j) . grad phi(theta_k, x_l) at initialisation (the limit's
    tangent kernel, in the same quadrature): the gap at T falls like 1 / alpha, and like 1 / alpha^2
    when the first-order term cancels: on a law symmetric under a -> -a (Gaussian a), for which
    phi(w, -a) = -phi(w, a) pairs the particles (as in alpha_rescaling's symmetric init)."""
    from scipy.linalg import expm

    act = {"tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
           "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2)}[activation]
    alphas, gaps = [4.0, 8.0, 16.0, 32.0], []
    for alpha in alphas:
        cfg = tanh_config(**{"network.alpha": alpha, "network.activation": activation, "network.centered": True,
                             "init.a_law": a_law,
                             "data.n": 20, "flow.t_end": 2.0, "flow.integrator": "rk4"})
        limit = limits.mean_field_limit(cfg, 6)
        theta0, omega, X, y = limit.theta0, limit.weights, limit.data.X, limit.data.y
        z = X @ theta0[:, :2].T                                                       # (n, K)
        features = np.concatenate([(theta0[:, 2] * act[1](z))[:, :, None] * X[:, None, :],
                                   act[0](z)[:, :, None]], axis=2)                    # grad_theta phi (n, K, 3)
        H = np.einsum("jkp,k,lkp->jl", features, omega, features)
        f0 = twolayer.predict(theta0, X, cfg.network, weights=omega)
        kernel = y + expm(-limit.t[-1] * H / len(y)) @ (0.0 - y)
        gaps.append(np.sqrt(np.mean((twolayer.predict(limit.theta, X, cfg.network, weights=omega) - f0 - kernel) ** 2)))
    slope = np.polyfit(np.log(alphas), np.log(gaps), 1)[0]
    assert slope == pytest.approx(-order, abs=0.1)
    assert gaps[-1] < 0.01 * np.sqrt(np.mean(y ** 2))


def test_the_population_limit_estimates_its_error_by_the_exact_l2_gap_and_particles_approach_it():
    """data.kind = "population": the error estimate is the exact L2(N(0, I)) gap between the two
    levels' predictors (checked against Monte Carlo), and m-particle population runs approach the
    limit's risk as m grows."""
    cfg = mf.Config(seed=1, network={"m": 8, "d": 2, "activation": "relu"},
                    init={"w_law": "gaussian", "a_law": "gaussian", "tau": 0.5},
                    data={"kind": "population", "teacher_m0": 2, "teacher_activation": "relu"},
                    flow={"dt": 0.05, "t_end": 2.0}, record={"n_records": 3, "spacing": "linear"})
    fine = limits.mean_field_limit(cfg, 10)
    coarse = limits.mean_field_limit(cfg, 7, estimate=False)
    x = np.random.default_rng(0).standard_normal((40_000, 2))
    gaps = [np.sqrt(np.mean((twolayer.predict(fine.snapshots[k], x, cfg.network, weights=fine.weights)
                             - twolayer.predict(coarse.snapshots[k], x, cfg.network, weights=coarse.weights)) ** 2))
            for k in range(len(fine.t))]
    np.testing.assert_allclose(fine.stats["limit"]["error"], max(gaps), rtol=0.03)   # Monte Carlo: 40 000 inputs
    risk = fine.observables["train_risk"][-1]
    errors = [np.mean([abs(mf.simulate(cfg.updated({"network.m": m, "seed": s})).observables["train_risk"][-1] - risk)
                       for s in range(4)]) for m in (16, 256)]
    assert errors[1] < errors[0] / 2


def test_the_estimate_says_what_it_is_and_when_it_is_not_resolved():
    """Smooth (tanh): an estimate from two levels, no warning. ReLU on finite data: a warning that the
    limit is not smooth, with the measured algebraic rate of the gaps between levels. Level 1 has no
    coarser level: no number is printed as an estimate."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = limits.mean_field_limit(tanh_config(), 8)
    assert smooth.stats["limit"]["smooth"] is True
    assert smooth.stats["limit"]["resolved"] is True
    assert "(levels 8 and 5: an estimate, not a bound)" in limits.describe_error(smooth.stats["limit"])
    relu = tanh_config(**{"network.activation": "relu", "data.teacher_activation": "relu", "data.n": 30})
    with pytest.warns(UserWarning, match=r"not smooth .* converges algebraically.* K\^-"):
        kinked = limits.mean_field_limit(relu, 12)
    assert kinked.stats["limit"]["smooth"] is False
    assert -2.0 < kinked.stats["limit"]["rate"] < -0.2
    assert "not smooth, gaps fall like K^-" in limits.describe_error(kinked.stats["limit"])
    lowest = limits.mean_field_limit(tanh_config(), 1)
    assert lowest.stats["limit"]["error"] is None
    assert "raise the level" in limits.describe_error(lowest.stats["limit"])


def test_a_limit_says_its_cost_before_it_starts_and_routes_rotation_invariant_problems(tmp_path, capsys):
    """d = 10: the plan (nodes per level, steps, CPU time) is printed before any work; a long plan
    warns; a rule past MAX_NODES is refused naming the reduced solver where it applies."""
    from meanfield.tools.cli import main
    cfg = mf.Config(network={"m": 100, "d": 10}, data={"kind": "teacher", "n": 100}, flow={"dt": 0.05, "t_end": 20.0})
    found = limits.plan(cfg, 3)
    assert found["nodes"][:2] == [177_147, 2_048]
    assert found["reduced"] is False                    # finite samples: not rotation invariant
    population = cfg.updated({"data.kind": "population"})
    long = limits.plan(population, 3)
    assert long["reduced"] is True
    assert long["seconds"] > limits.LONG_SECONDS
    assert "meanfield.theory.reduced.reduced_limit" in limits.describe_plan(population, long)
    with pytest.raises(ConfigError, match=r"level 16 has 17,592,186,044,416\).*symmetry-reduced solver"):
        limits.mean_field_limit(population, 16)
    with pytest.raises(ConfigError, match="lower the level"):
        limits.mean_field_limit(cfg, 16)
    config = tmp_path / "small.toml"
    config.write_text(tanh_config(**{"flow.t_end": 0.2}).to_toml())
    assert main(["limit", str(config), "--level", "4", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "meanfield limit: the limit in d = 2: 128 nodes at level 4, " in err
