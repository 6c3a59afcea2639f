"""The finite-width band of the population risk, on the reduced limit (theory/fluctuations.py,
theory/reduced_reverse.py)."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.errors import ConfigError
from meanfield.model import quadrature
from meanfield.theory import fluctuations as fl, reduced, reduced_reverse as rr


def config(activation="erf", d=12, m0=2, tau=0.5, **flow):
    return mf.Config(seed=0, network={"m": 10, "d": d, "activation": activation, "scaling": "mean_field",
                                      "alpha": 1.3},
                     init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(d), "a_law": "gaussian", "tau": tau},
                     data={"kind": "population", "teacher_m0": m0, "teacher_activation": activation},
                     flow={"dt": 0.1, "t_end": 1.0, **flow})


def _nodes(cfg, level=5):
    problem, _ = reduced.ReducedFlow.of(cfg)
    Z, omega = quadrature.reduced_sobol(cfg.network, cfg.init, level, problem.k)
    return problem, Z, omega


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_the_reduced_gradient_is_the_velocity_and_its_directional_derivative_a_difference(activation):
    cfg = config(activation, lam=0.05)
    problem, Z, omega = _nodes(cfg)
    rng = np.random.default_rng(1)
    Z = Z + 0.1 * rng.standard_normal(Z.shape)
    g, phi = rr.gradient(problem, Z, omega)
    np.testing.assert_allclose(problem.mask * (-g / problem.alpha ** 2 - problem.lam * Z),
                               reduced.velocity(problem, Z, omega, compiled=True), rtol=1e-12, atol=1e-14)
    h, j = 1e-6, 5
    e = np.zeros_like(omega)
    e[j] = h
    np.testing.assert_allclose(phi[j], (reduced.risk(problem, Z, omega + e) - reduced.risk(problem, Z, omega - e))
                               / (2 * h), rtol=1e-7)
    V = rng.standard_normal((1,) + Z.shape)
    dg, dphi = rr.directional(problem, Z, omega, V)
    eps = 1e-6
    (gp, pp), (gm, pm) = (rr.gradient(problem, Z + s * eps * V[0], omega) for s in (1, -1))
    np.testing.assert_allclose(dg[0], (gp - gm) / (2 * eps), rtol=1e-6, atol=1e-7 * np.max(np.abs(dg)))
    np.testing.assert_allclose(dphi[0], (pp - pm) / (2 * eps), rtol=1e-6, atol=1e-7 * np.max(np.abs(dphi)))


@pytest.mark.parametrize("activation, integrator, train", [("relu", "euler", "both"), ("erf", "rk4", "both"),
                                                           ("erf", "heun", "hidden")])
def test_population_first_variations_equal_finite_differences_of_the_weighted_flow(activation, integrator, train):
    """d(risk, displacement)(t) / d omega_k by the reverse sweep against central differences of the
    reduced flow run with the node's weight moved, at two times."""
    cfg = config(activation, lam=0.05, integrator=integrator).updated({"network.train": train})
    problem, Z0, omega = _nodes(cfg)
    steps = fl.step_indices(cfg, [0.5, 1.0])
    psi, values = fl.first_variations(fl.PopulationFlow(cfg, problem, omega), Z0, np.zeros((0, cfg.network.d)), steps)

    def observed(w):
        flow, Z, out = fl.PopulationFlow(cfg, problem, w), Z0, []
        for i in range(int(steps[-1])):
            Z = flow.step(Z)[0]
            if i + 1 in steps:
                out.append(flow.observables(Z, Z0, None)[0])
        return np.array(out)
    np.testing.assert_allclose(values, observed(omega), rtol=1e-12)
    eps = 1e-6
    for k in (0, 7, 19):
        e = np.zeros_like(omega)
        e[k] = eps
        np.testing.assert_allclose(psi[:, :, k], (observed(omega + e) - observed(omega - e)) / (2 * eps), rtol=1e-6,
                                   atol=1e-8)


def test_the_population_band_converges_in_the_level_and_keeps_its_estimate():
    cfg = config("erf", m0=1, tau=1.0, t_end=0.6)            # k = 1: the Gauss rule
    found = {level: fl.fluctuations(cfg, level, times=[0.3, 0.6], estimate=False) for level in (3, 5, 8)}
    gaps = [np.max(np.abs(found[level].risk / found[8].risk - 1)) for level in (3, 5)]
    assert gaps[1] < gaps[0] / 3, gaps
    assert gaps[1] < 0.02, gaps
    band = fl.fluctuations(cfg, 5, times=[0.3, 0.6])
    assert band.stats["coarse_level"] == 3
    np.testing.assert_allclose(band.error["risk"], np.abs(found[5].risk - found[3].risk), rtol=1e-12)
    assert band.x.shape == (0, cfg.network.d)


@pytest.mark.parametrize("change, field", [({"network.bias": True}, "network.bias"),
                                           ({"network.activation": "tanh", "data.teacher_activation": "tanh"},
                                            "network.activation"),
                                           ({"flow.integrator": "dopri5"}, "flow.integrator"),
                                           ({"data.inputs": "sphere"}, "data.inputs")])
def test_out_of_scope_population_flows_are_refused_by_name(change, field):
    with pytest.raises(ConfigError) as caught:
        fl.fluctuations(config().updated(change), 3)
    assert caught.value.parameter == field


def test_points_and_arrays_are_refused_on_the_population_risk():
    for name, given in (("x", {"x": np.zeros((2, 12))}), ("data", {"data": (np.zeros((2, 12)), np.zeros(2))})):
        with pytest.raises(ConfigError) as caught:
            fl.fluctuations(config(), 3, **given)
        assert caught.value.parameter == name


def test_nearly_parallel_relu_pairs_are_refused_by_name_or_dropped_and_said():
    """Chizat & Bach's setting (d = 100, m0 = 10, small init): the reduced nodes leave the teacher's
    orthogonal complement (r -> 0) and meet themselves nearly parallel, where relu's kernel has no
    second derivative."""
    cfg = mf.Config(seed=0, network={"m": 10, "d": 100, "activation": "relu", "scaling": "mean_field"},
                    init={"w_law": "gaussian", "w_scale": 0.1, "a_law": "gaussian", "tau": 0.1},
                    data={"kind": "population", "teacher_m0": 10}, flow={"dt": 0.2, "t_end": 4.2})
    with pytest.raises(ConfigError) as caught:
        fl.fluctuations(cfg, 5, times=[4.2], estimate=False)
    assert caught.value.parameter == "parallel"
    early = fl.fluctuations(cfg, 5, times=[0.6], estimate=False)
    assert early.stats["dropped"] == 0
    with pytest.warns(UserWarning, match="parallel='refuse'"):
        late = fl.fluctuations(cfg, 5, times=[0.6, 4.2], estimate=False, parallel="drop")
    assert 0 < late.stats["dropped"] < 0.05
    assert "dropped the second derivatives" in late.describe()
    np.testing.assert_allclose(late.risk[0], early.risk[0], rtol=1e-12)
    with pytest.raises(ConfigError) as caught:
        fl.fluctuations(cfg, 5, times=[0.6], parallel="smooth")
    assert caught.value.parameter == "parallel"


@pytest.mark.slow
def test_particles_in_d_100_spread_as_the_population_band_predicts():
    """Chizat & Bach's setting (relu, d = 100, m0 = 10, small init) before the escape from the
    saddle at 0: m Var R_m(t) / C_R(t) within the sampling error of a variance over 300 seeds
    (3.29 sqrt(2 / 299) = 27 %, a 99.9 % band for 3 times x 2 widths) at m = 160 and 640."""
    def particles(m, seed, teacher=None):
        cfg = mf.Config(seed=seed, network={"m": m, "d": 100, "activation": "relu", "scaling": "mean_field"},
                        init={"w_law": "gaussian", "w_scale": 0.1, "a_law": "gaussian", "tau": 0.1},
                        data={"kind": "population", "teacher_m0": 10}, flow={"dt": 0.2, "t_end": 2.0, "threads": 1},
                        record={"n_records": 10, "spacing": "linear", "snapshots": False})
        return cfg if teacher is None else cfg.updated({"data.teacher_weights": teacher.tolist()})
    base = particles(160, 0)
    teacher, times, seeds = mf.run_data(base).teacher, [0.6, 1.2, 2.0], 300
    band = fl.fluctuations(base, 8, times=times, parallel="drop")
    assert np.max(band.error["risk"] / band.risk) < 0.05
    for m in (160, 640):
        runs = [mf.simulate(particles(m, seed, teacher)) for seed in range(1, seeds + 1)]
        at = [int(np.argmin(np.abs(runs[0].t - t))) for t in times]
        risk = np.array([run.observables["train_risk"][at] for run in runs])
        ratio = m * risk.var(axis=0, ddof=1) / band.risk
        assert np.all(np.abs(ratio - 1) < 3.29 * np.sqrt(2 / (seeds - 1))), (m, ratio)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "erf", "quadratic", "linear"])
def test_the_compiled_reverse_sums_are_their_numpy_twin_with_the_same_bits_on_two_threads(activation):
    import numba

    cfg = config(activation)
    problem, Z, omega = _nodes(cfg, 6)
    rng = np.random.default_rng(2)
    Z = Z + 0.1 * rng.standard_normal(Z.shape)
    Z[3] = Z[4]                                     # a parallel pair: counted and dropped by both
    Z[3, problem.k] = Z[4, problem.k] = 0.0
    V = rng.standard_normal((3,) + Z.shape)
    twin = rr._student_sums(problem, Z, omega, V, "drop", compiled=False)
    found = rr._student_sums(problem, Z, omega, V, "drop", compiled=True)
    assert found["dropped"] == twin["dropped"]
    for key, value in twin.items():                 # rtol: the parallel pair's q q' - rho^2 cancels
        np.testing.assert_allclose(found[key], value, rtol=1e-9, atol=1e-12 * np.max(np.abs(value), initial=1.0))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = rr._student_sums(problem, Z, omega, V, "drop", compiled=True)
    finally:
        numba.set_num_threads(threads)
    for key in found:
        np.testing.assert_array_equal(one[key], found[key])
