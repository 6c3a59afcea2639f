"""meanfield.reduced: the infinite-width limit of the population flow reduced by the rotations that
fix the teacher's span, checked against the full velocity averaged over the orbits, the compiled
twin, the exact moment flow of linear networks, and its refusals."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.errors import ConfigError
from meanfield.model import population, quadrature
from meanfield.theory import reduced as RD

from . import naive
from .conftest import resumed_after_interrupt


def population_config(activation="relu", d=4, m0=2, **changes):
    return mf.Config(seed=1, network={"m": 6, "d": d, "activation": activation},
                     data={"kind": "population", "teacher_m0": m0, "teacher_activation": activation},
                     flow={"dt": 0.1, "t_end": 1.0, "lam": 0.05}).updated(changes)


def reduced_cloud(rng, N, k):
    Z = np.column_stack([0.7 * rng.standard_normal((N, k)), np.abs(rng.standard_normal(N)), rng.standard_normal(N)])
    omega = rng.random(N)
    return Z, omega / omega.sum()


@pytest.mark.parametrize("activation, cosines, L, tol", [("erf", 40, 64, 1e-14), ("quadratic", 40, 64, 1e-14),
                                                         ("linear", 40, 64, 1e-14), ("relu", 160, 256, 1e-9),
                                                         ("leaky_relu", 160, 256, 1e-9)])
def test_the_reduced_velocity_is_the_full_velocity_averaged_over_the_orbits(activation, cosines, L, tol):
    """d - k = 2: each reduced particle lifted to L equally spaced directions of S^perp (a rule on
    the circle, spectrally accurate for smooth kernels) has the full weighted-particle velocity
    whose S part, radial part and a part are the reduced velocity's, and no tangential part; the
    risks agree. ReLU kernels have a sqrt kink where a particle meets its own orbit (c = 1), so
    both rules converge algebraically there (measured, relative: 7e-8 at L = 64, 3e-10 at L = 256)."""
    rng = np.random.default_rng(0)
    cfg = population_config(activation)
    teacher = np.column_stack([rng.standard_normal((2, 2)), np.zeros((2, 2)), [1.0, -0.7]])
    problem, Q = RD.ReducedFlow.of(cfg, teacher, cosines=cosines)
    Z, omega = reduced_cloud(rng, 6, 2)
    perp = np.linalg.svd(Q.T)[2][2:]                                        # (2, d): S^perp
    angles = rng.random(6)[:, None] * 2 * np.pi + 2 * np.pi * np.arange(L) / L
    e = (np.cos(angles)[..., None] * perp[0] + np.sin(angles)[..., None] * perp[1]).reshape(-1, 4)
    theta, weights = RD.lift(np.repeat(Z, L, axis=0), Q, e), np.repeat(omega / L, L)
    v = population.population_velocity(theta, teacher, cfg.network, cfg.flow, activation, weights=weights)
    reduced = np.repeat(RD.velocity(problem, Z, omega), L, axis=0)
    radial = np.sum(v[:, :4] * e, axis=1)
    scale = np.max(np.abs(reduced))
    np.testing.assert_allclose(v[:, :4] @ Q, reduced[:, :2], rtol=0, atol=tol * scale)
    np.testing.assert_allclose(radial, reduced[:, 2], rtol=0, atol=tol * scale)
    np.testing.assert_allclose(v[:, 4], reduced[:, 3], rtol=0, atol=tol * scale)
    np.testing.assert_allclose(v[:, :4] - (v[:, :4] @ Q) @ Q.T - radial[:, None] * e, 0.0, atol=tol * scale)
    np.testing.assert_allclose(RD.risk(problem, Z, omega),
                               population.population_risk(theta, teacher, cfg.network, activation, weights=weights),
                               rtol=10 * tol)


def class_config(d=2, **changes):
    """Mei, Montanari & Nguyen's isotropic Gaussian classes, piecewise-linear sigma, online SGD."""
    return mf.Config(seed=1, network={"m": 6, "d": d, "activation": "piecewise_linear", "alpha": 1.3},
                     data={"kind": "isotropic_gaussians", "delta": 0.4},
                     flow={"dt": 0.1, "t_end": 1.0, "lam": 0.05, "online": True, "batch_size": 10}).updated(changes)


def test_the_class_law_is_the_mixture_of_its_gaussian_laws_averaged_over_the_orbits():
    """Isotropic Gaussian classes (k = 0, d = 2): particles lifted to L directions of the plane move
    by the full-space weighted velocity of the mixture, written independently: for each class y,
    p_y times the population gradient of tau_y w (no teacher) and the label term
    -alpha y grad E[a sigma(w.x)] (``population.mean_terms``). Radial and a parts agree (measured
    up to 6e-9 relative at L = 128: the kernel's kink where a particle meets its own orbit), and the risks."""
    rng = np.random.default_rng(0)
    cfg = class_config()
    problem, Q = RD.ReducedFlow.of(cfg, cosines=100)
    N, L, d, net = 3, 128, 2, cfg.network
    Z = np.column_stack([np.abs(rng.standard_normal(N)) + 0.2, rng.standard_normal(N)])
    omega = rng.random(N)
    omega /= omega.sum()
    angles = rng.random(N)[:, None] * 2 * np.pi + 2 * np.pi * np.arange(L) / L
    e = np.stack([np.cos(angles), np.sin(angles)], axis=-1).reshape(-1, d)
    theta, weights = RD.lift(np.repeat(Z, L, axis=0), Q, e), np.repeat(omega / L, L)
    grad, risk, q = np.zeros_like(theta), 0.0, np.sum(theta[:, :d] ** 2, axis=1)
    for p, tau2, y in ((0.5, 1.4 ** 2, 1.0), (0.5, 0.6 ** 2, -1.0)):
        scale = np.append(np.full(d, np.sqrt(tau2)), 1.0)
        mean, slope = population.mean_terms("piecewise_linear", tau2 * q, net.activation_params)
        label = np.column_stack([theta[:, d:] * (tau2 * slope)[:, None] * theta[:, :d], mean])
        grad += p * (population.population_gradient(theta * scale, np.zeros((0, d + 1)), net, weights=weights) * scale
                     - y * net.alpha * label)
        risk += p * (population.population_risk(theta * scale, np.zeros((0, d + 1)), net, weights=weights)
                     - y * net.alpha * (weights * theta[:, d]) @ mean + y * y / 2)
    v = -grad / net.alpha ** 2 - cfg.flow.lam * theta
    reduced = np.repeat(RD.velocity(problem, Z, omega), L, axis=0)
    radial = np.sum(v[:, :d] * e, axis=1)
    scale = np.max(np.abs(reduced))
    np.testing.assert_allclose(radial, reduced[:, 0], rtol=0, atol=2e-8 * scale)
    np.testing.assert_allclose(v[:, d], reduced[:, 1], rtol=0, atol=2e-8 * scale)
    np.testing.assert_allclose(v[:, :d] - radial[:, None] * e, 0.0, atol=2e-8 * scale)
    np.testing.assert_allclose(RD.risk(problem, Z, omega), risk, rtol=1e-8)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "erf", "quadratic", "linear"])
def test_the_compiled_reduced_sums_are_their_numpy_twin(activation):
    """In d = 100 with a teacher of 10 neurons; the same bits on 1 and 2 threads."""
    import numba

    cfg = population_config(activation, d=100, m0=10)
    problem, _ = RD.ReducedFlow.of(cfg, mf.run_data(cfg).teacher)
    Z, omega = reduced_cloud(np.random.default_rng(1), 40, 10)
    twin = RD.sums(problem, Z, omega)
    compiled = RD.sums(problem, Z, omega, compiled=True)
    scale = np.max(np.abs(omega * Z[:, -1])) * len(Z) * (1 + np.max(Z[:, :-1] ** 2))
    for a, b in zip(twin, compiled):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-13 * scale)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = RD.sums(problem, Z, omega, compiled=True)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(serial, compiled):
        np.testing.assert_array_equal(a, b)


def test_the_cosine_rule_has_the_law_of_two_random_directions():
    """E c^2 = 1/n and E c^4 = 3 / (n (n + 2)) for independent uniform directions in R^n; in
    n = 90 the default rule gives the pair sums to 1e-12 of a 48-node rule."""
    for n in (1, 2, 3, 90):
        c, w = RD.cosine_rule(n)
        np.testing.assert_allclose([w @ c, w @ c ** 2, w @ c ** 4], [0.0, 1 / n, 3 / (n * (n + 2))], atol=1e-15)
    cfg = population_config("relu", d=100, m0=10)
    teacher = mf.run_data(cfg).teacher
    Z, omega = reduced_cloud(np.random.default_rng(2), 50, 10)
    fine = RD.sums(RD.ReducedFlow.of(cfg, teacher, cosines=48)[0], Z, omega)
    for a, b in zip(RD.sums(RD.ReducedFlow.of(cfg, teacher)[0], Z, omega), fine):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.max(np.abs(b)))


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_the_reduced_limit_of_a_linear_network_is_the_exact_moment_flow(method):
    """Linear sigma in d = 40 with a teacher of 2 neurons: the limit closes on S = E theta theta^T
    (``naive.linear_moment_flow`` with inputs X = sqrt(d) I, for which X^T X / n = I = E x x^T, and
    labels y = X b, b = U^T c); the reduced rule (exact for degree 3) follows it to 1e-10: the risk
    |alpha beta - b|^2 / 2, E[a w_S] = Q^T beta and E[r^2] = tr S_perp."""
    d, alpha, lam, dt, steps = 40, 1.3, 0.05, 0.05, 20
    cfg = population_config("linear", d=d, **{"network.alpha": alpha, "flow.lam": lam, "flow.dt": dt,
                                               "flow.t_end": dt * steps, "flow.integrator": method,
                                               "init.w_scale": 0.8, "init.a_scale": 1.2, "init.a_law": "gaussian",
                                               "record.n_records": 5, "record.spacing": "linear"})
    limit = RD.reduced_limit(cfg, level=3, rule="gauss")          # and level 2 for the estimate: both exact
    teacher = mf.run_data(cfg).teacher
    b = teacher[:, :d].T @ teacher[:, d]
    X = np.sqrt(d) * np.eye(d)
    S0 = np.diag([0.8 ** 2] * d + [1.2 ** 2])
    moments = naive.linear_moment_flow(S0, X, X @ b, alpha, lam, dt, steps, method)
    Q = limit.basis
    for k, t in enumerate(limit.t):
        S = S0 if k == 0 else moments[int(round(t / dt)) - 1]
        beta, Z = S[:d, d], limit.snapshots[k]
        np.testing.assert_allclose(limit.risk[k], 0.5 * np.sum((alpha * beta - b) ** 2), rtol=1e-10)
        np.testing.assert_allclose(limit.weights @ (Z[:, 3:4] * Z[:, :2]), Q.T @ beta, rtol=1e-10, atol=1e-14)
        perp = np.eye(d) - Q @ Q.T
        np.testing.assert_allclose(limit.weights @ Z[:, 2] ** 2, np.trace(perp @ S[:d, :d] @ perp), rtol=1e-10)
    assert limit.error < 1e-12


def test_the_sobol_rule_samples_the_reduced_initial_law():
    """2^12 points in d = 100, k = 10: E r^2 = w_scale^2 (d - k), E a^2 = a_scale^2, E w_S = 0 to QMC accuracy."""
    cfg = population_config("relu", d=100, m0=10,
                            **{"init.w_scale": 0.1, "init.a_scale": 2.0, "init.a_law": "gaussian"})
    Z, omega = quadrature.reduced_sobol(cfg.network, cfg.init, 12, 10)
    np.testing.assert_allclose(omega @ Z[:, 10] ** 2, 0.01 * 90, rtol=1e-3)
    np.testing.assert_allclose(omega @ Z[:, 11] ** 2, 4.0, rtol=1e-2)
    np.testing.assert_allclose(omega @ Z[:, :10], 0.0, atol=1e-3 * 0.1)
    np.testing.assert_array_equal(Z, quadrature.reduced_sobol(cfg.network, cfg.init, 12, 10)[0])


def test_the_reduced_limit_resumes_bit_for_bit_diverges_by_name_and_takes_adaptive_steps(tmp_path, monkeypatch):
    """Run by the controller: interrupted at its 4th record of the finer level and resumed from the
    checkpoint, it ends where the uninterrupted computation does; its divergence is caught with the
    step named; error-controlled steps (dopri5) follow the flow that RK4 with a small dt gives."""
    cfg = population_config("erf", **{"record.n_records": 8, "record.spacing": "linear",
                                      "record.checkpoint_seconds": 0.0})
    whole = RD.reduced_limit(cfg, level=4)
    resumed = resumed_after_interrupt(monkeypatch, 4, lambda **kw: RD.reduced_limit(cfg, level=4, **kw), tmp_path)
    np.testing.assert_array_equal(resumed.snapshots, whole.snapshots)
    np.testing.assert_array_equal(resumed.risk, whole.risk)
    np.testing.assert_array_equal(resumed.coarse_risk, whole.coarse_risk)
    with pytest.raises(mf.DivergenceError, match=r"\(step \d+\)"):
        RD.reduced_limit(cfg.updated({"flow.dt": 40.0, "flow.t_end": 4000.0, "network.alpha": 30.0}), level=2)
    fine = RD.reduced_limit(cfg.updated({"flow.integrator": "rk4", "flow.dt": 0.01}), level=3, estimate=False)
    adaptive = RD.reduced_limit(cfg.updated({"flow.integrator": "dopri5", "flow.rtol": 1e-9, "flow.dt": 0.01}), level=3,
                                estimate=False)
    np.testing.assert_allclose(adaptive.risk, fine.risk, rtol=1e-9)          # measured 3e-12 at t = 1


@pytest.mark.parametrize("change, parameter", [({"data.kind": "teacher"}, "data.kind"),
                                               ({"network.activation": "tanh", "data.teacher_activation": "tanh"},
                                                "network.activation"),
                                               ({"data.teacher_activation": "erf"}, "data.teacher_activation"),
                                               ({"network.activation": "leaky_relu", "data.teacher_activation":
                                                 "leaky_relu", "data.teacher_leaky_slope": 0.2},
                                                "data.teacher_leaky_slope"),
                                               ({"init.w_law": "sphere"}, "init.w_law"),
                                               ({"flow.temperature": 0.1}, "flow.temperature"),
                                               ({"network.scaling": "lazy"}, "network.scaling")])
def test_what_the_reduction_does_not_cover_is_refused_by_name(change, parameter):
    with pytest.raises(ConfigError, match=parameter.replace(".", r"\.")):
        RD.reduced_limit(population_config().updated(change), level=2)
    with pytest.raises(ConfigError, match="rule"):
        RD.reduced_limit(population_config(), level=2, rule="monte carlo")


@pytest.mark.parametrize("change, parameter", [({"flow.online": False, "flow.batch_size": 0}, "data.kind"),
                                               ({"network.bias": True}, "network.bias"),
                                               ({"flow.loss": "logistic"}, "flow.loss"),
                                               ({"data.inputs": "sphere"}, "data.inputs"),
                                               ({"flow.temperature": 0.1}, "flow.temperature")])
def test_the_class_law_needs_online_sgd_on_its_gaussian_mixture(change, parameter):
    """Full-batch runs on n samples of the classes have another limit; the rest breaks the invariance."""
    assert RD.applies(class_config(d=3)) == ()
    with pytest.raises(ConfigError, match=parameter.replace(".", r"\.")):
        RD.reduced_limit(class_config(d=3).updated(change), level=2)
    with pytest.raises(ConfigError, match="teacher"):
        RD.reduced_limit(class_config(d=3), level=2, teacher=np.ones((1, 4)))


def test_the_predictor_distance_to_the_limit_is_the_l2_norm_of_the_difference():
    """d - k = 2: against the lifted limit (L = 64 directions per particle) as a weighted network
    beside the m particles, the exact L2 norm of f_m - f_inf."""
    rng = np.random.default_rng(3)
    cfg = population_config("erf")
    teacher = np.column_stack([rng.standard_normal((2, 2)), np.zeros((2, 2)), [1.0, -0.7]])
    problem, Q = RD.ReducedFlow.of(cfg, teacher, cosines=40)
    Z, omega = reduced_cloud(rng, 5, 2)
    theta = rng.standard_normal((6, 5))
    L = 64
    perp = np.linalg.svd(Q.T)[2][2:]
    angles = rng.random(5)[:, None] * 2 * np.pi + 2 * np.pi * np.arange(L) / L
    e = (np.cos(angles)[..., None] * perp[0] + np.sin(angles)[..., None] * perp[1]).reshape(-1, 4)
    lifted = RD.lift(np.repeat(Z, L, axis=0), Q, e)
    both = np.vstack([theta, lifted * np.array([1, 1, 1, 1, -1])])
    weights = np.concatenate([np.full(6, 1 / 6), np.repeat(omega / L, L)])
    exact = population.predictor_norm(both, cfg.network, weights=weights)
    np.testing.assert_allclose(RD.predictor_distance(problem, Q, theta, cfg.network, Z, omega), exact, rtol=1e-12)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_the_ray_rule_integrates_the_second_moments_of_the_initial_law(k):
    """Unit rays whose weights integrate |z|^2 along them: sum_j omega_j z_j z_j^T = E z z^T =
    diag(w_scale^2 I_k, (d - k) w_scale^2, a_scale^2) tau^2, a 2-homogeneous integrand (measured
    1e-13 relative at level 10: the angle rule converges spectrally)."""
    cfg = population_config("relu", d=30, m0=max(k, 1), **{"init.w_scale": 0.4, "init.a_scale": 1.7,
                                                           "init.tau": 0.9, "init.a_law": "gaussian"})
    Z, omega = quadrature.reduced_rays(cfg.network, cfg.init, 10, k)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-15)
    expected = 0.81 * np.diag([0.16] * k + [0.16 * (30 - k), 1.7 ** 2])
    np.testing.assert_allclose((omega[:, None] * Z).T @ Z, expected, rtol=0, atol=1e-12 * expected.max())


def test_the_rays_reach_the_limit_the_gauss_rule_approaches_with_a_quarter_of_its_nodes():
    """ReLU, both layers trained, d = 20, one teacher neuron: the population risk along the flow
    with rays at levels 4, 6, 8 (32, 72, 128 nodes) against level 10 falls spectrally (measured
    3.8e-7, 2.7e-9, 1.1e-10); the Cartesian gauss rule, whose nodes meet the integrand's kink at
    z = 0, reaches 5e-9 of the same value with 512 nodes (level 8)."""
    cfg = population_config("relu", d=20, m0=1, **{"flow.t_end": 2.0, "record.n_records": 5,
                                                   "record.spacing": "linear"})
    rays = {L: RD.reduced_limit(cfg, L, "rays", estimate=False).risk for L in (4, 6, 8, 10)}
    gaps = [np.max(np.abs(rays[L] - rays[10])) for L in (4, 6, 8)]
    np.testing.assert_array_less(gaps, [1e-6, 1e-8, 5e-10])
    gauss = RD.reduced_limit(cfg, 8, "gauss", estimate=False).risk
    np.testing.assert_allclose(gauss, rays[10], rtol=0, atol=2e-8)
    assert RD.reduced_limit(cfg, 4, estimate=False).risk.tobytes() == rays[4].tobytes()   # the default rule


@pytest.mark.parametrize("change, parameter", [({"network.activation": "erf", "data.teacher_activation": "erf"},
                                                "network.activation"),
                                               ({"network.train": "hidden"}, "network.train"),
                                               ({"init.a_law": "rademacher"}, "init.a_law")])
def test_the_ray_rule_is_refused_where_the_flow_does_not_carry_rays_to_rays(change, parameter):
    cfg = population_config().updated(change)
    with pytest.raises(ConfigError, match=parameter.replace(".", r"\.")):
        RD.reduced_limit(cfg, 3, "rays")
    assert RD.default_rule(cfg, 2) == "gauss"
