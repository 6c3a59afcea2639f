"""Exact population risk: closed forms against Monte Carlo, quadrature and finite differences;
the population engine against the empirical engine with a very large sample; invariances."""
import warnings

import numpy as np
import pytest

import meanfield as mf
from meanfield.config import NetworkConfig
from meanfield.model import activations, population, twolayer
from meanfield.model.measures import cone_masses, homogeneous_projection

from . import naive

D = 4


@pytest.fixture
def pair(rng):
    theta = rng.standard_normal((5, D + 1)) * 0.8
    teacher = rng.standard_normal((3, D + 1))
    return theta, teacher


SUPPORTED = population.SUPPORTED


@pytest.mark.parametrize("activation", SUPPORTED)
def test_population_risk_matches_monte_carlo(pair, rng, activation):
    theta, teacher = pair
    net = NetworkConfig(m=5, d=D, activation=activation, scaling="lazy", alpha=1.3)
    exact = population.population_risk(theta, teacher, net, activation)
    X = rng.standard_normal((400_000, D))
    target = twolayer.activation(activation, X @ teacher[:, :D].T) @ teacher[:, D]
    samples = 0.5 * (twolayer.predict(theta, X, net) - target) ** 2
    assert abs(samples.mean() - exact) < 5 * samples.std() / np.sqrt(len(samples))


@pytest.mark.parametrize("student,teacher_activation", [("tanh", "erf"), ("relu", "tanh"), ("erf", "quadratic")])
def test_a_teacher_of_another_activation_by_quadrature(pair, rng, student, teacher_activation):
    """Student and teacher activations differ: the cross kernel is a 2-D Gauss–Hermite quadrature.
    The risk agrees with Monte Carlo within 5 standard errors, and the gradient with central
    differences of the risk."""
    theta, teacher = pair
    net = NetworkConfig(m=5, d=D, activation=student, scaling="mean_field", alpha=1.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", population.QuadratureWarning)          # ReLU's kink, by design
        exact = population.population_risk(theta, teacher, net, teacher_activation)
        grad = population.population_gradient(theta, teacher, net, teacher_activation)
        numeric = naive.central_gradient(lambda th: population.population_risk(th, teacher, net, teacher_activation),
                                         theta)
    X = rng.standard_normal((400_000, D))
    target = twolayer.activation(teacher_activation, X @ teacher[:, :D].T) @ teacher[:, D]
    samples = 0.5 * (twolayer.predict(theta, X, net) - target) ** 2
    assert abs(samples.mean() - exact) < 5 * samples.std() / np.sqrt(len(samples))
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "linear", "quadratic"])
def test_the_population_risk_on_the_sphere_matches_monte_carlo(pair, rng, activation):
    """x uniform on the unit sphere: homogeneous activations of degree k give the Gaussian kernels
    divided by E|g|^(2k) (d for k = 1, d (d + 2) for k = 2)."""
    theta, teacher = pair
    net = NetworkConfig(m=5, d=D, activation=activation, scaling="mean_field")
    exact = population.population_risk(theta, teacher, net, activation, inputs="sphere")
    X = rng.standard_normal((400_000, D))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    target = twolayer.activation(activation, X @ teacher[:, :D].T) @ teacher[:, D]
    samples = 0.5 * (twolayer.predict(theta, X, net) - target) ** 2
    assert abs(samples.mean() - exact) < 5 * samples.std() / np.sqrt(len(samples))
    gaussian = population.population_gradient(theta, teacher, net, activation)
    k = {"quadratic": 2}.get(activation, 1)
    np.testing.assert_allclose(population.population_gradient(theta, teacher, net, activation, inputs="sphere"),
                               gaussian / (D if k == 1 else D * (D + 2)), rtol=1e-12)
    norm = np.sqrt(np.mean(twolayer.predict(theta, X, net) ** 2))
    np.testing.assert_allclose(population.predictor_norm(theta, net, inputs="sphere"), norm, rtol=0.01)


def test_a_population_run_with_another_teacher_activation_learns():
    cfg = mf.Config(seed=1, network={"m": 20, "d": 3, "activation": "erf"},
                    data={"kind": "population", "teacher_activation": "tanh", "teacher_m0": 2},
                    flow={"dt": 0.1, "t_end": 10.0}, record={"n_records": 5})
    risk = mf.simulate(cfg).observables["train_risk"]
    assert risk[-1] < 0.2 * risk[0]


@pytest.mark.parametrize("activation", SUPPORTED)
def test_population_gradient_equals_finite_differences_and_compiled_pass(pair, activation):
    theta, teacher = pair
    net = NetworkConfig(m=5, d=D, activation=activation, scaling="mean_field", alpha=0.7)
    grad = population.population_gradient(theta, teacher, net, activation)
    numeric = naive.central_gradient(lambda th: population.population_risk(th, teacher, net, activation), theta)
    # quadrature activations: the gradient's and the risk's quadrature errors (~1e-6) differ
    tol = 1e-5 if activation in population.EXACT else 1e-4
    np.testing.assert_allclose(grad, numeric, rtol=tol, atol=tol / 100)
    compiled = population.population_gradient(theta, teacher, net, activation, compiled=True)
    np.testing.assert_allclose(compiled, grad, rtol=1e-12, atol=1e-14)


@pytest.fixture
def pairs(rng):
    q1, q2 = rng.uniform(0.3, 2.0, 20), rng.uniform(0.3, 2.0, 20)
    return q1, q2, rng.uniform(-0.95, 0.95, 20) * np.sqrt(q1 * q2)


@pytest.mark.parametrize("activation", ["erf", "quadratic", "linear"])
def test_smooth_closed_forms_agree_with_gauss_hermite_quadrature(pairs, activation):
    closed = population.pair_terms(activation, *pairs)
    quadrature = population._quadrature_terms(activation, *pairs, 0.01)
    for c, q in zip(closed, quadrature):
        np.testing.assert_allclose(c, q, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("activation", SUPPORTED)
def test_pair_terms_a_and_b_are_the_derivatives_of_kappa(pairs, activation):
    q1, q2, rho = pairs
    kappa, A, B = population.pair_terms(activation, q1, q2, rho)
    h = 1e-5
    dq = (population.pair_terms(activation, q1 + h, q2, rho)[0] - population.pair_terms(activation, q1 - h, q2,
                                                                                        rho)[0]) / (2 * h)
    drho = (population.pair_terms(activation, q1, q2, rho + h)[0] - population.pair_terms(activation, q1, q2,
                                                                                          rho - h)[0]) / (2 * h)
    tol = 1e-6 if activation in population.EXACT else 1e-4
    np.testing.assert_allclose(A, 2 * dq, rtol=tol, atol=tol)
    np.testing.assert_allclose(B, drho, rtol=tol, atol=tol)


def test_population_engine_follows_the_empirical_engine_with_a_large_sample():
    cfg = mf.Config(seed=5, network={"m": 20, "d": D, "activation": "erf"}, init={"tau": 0.5},
                    data={"kind": "population", "teacher_m0": 2, "teacher_activation": "erf"},
                    flow={"dt": 0.05, "t_end": 3.0}, record={"n_records": 4})
    exact = mf.simulate(cfg)
    rng = np.random.default_rng(0)
    teacher = mf.run_data(cfg).teacher
    X = rng.standard_normal((200_000, D))
    y = twolayer.activation("erf", X @ teacher[:, :D].T) @ teacher[:, D]
    sampled = mf.simulate(cfg.updated({"data.kind": "arrays"}), data=(X, y))
    np.testing.assert_array_equal(sampled.theta0, exact.theta0)
    np.testing.assert_allclose(sampled.observables["train_risk"], exact.observables["train_risk"], rtol=0.02)
    move = np.linalg.norm(exact.theta - exact.theta0)
    assert np.linalg.norm(sampled.theta - exact.theta) < 0.03 * move


def test_exact_risk_is_invariant_to_permuting_and_duplicating_particles(pair, rng):
    theta, teacher = pair
    net = NetworkConfig(m=5, d=D)
    R = population.population_risk(theta, teacher, net)
    assert population.population_risk(theta[rng.permutation(5)], teacher, net) == pytest.approx(R, rel=1e-12)
    doubled = NetworkConfig(m=10, d=D)
    assert population.population_risk(np.repeat(theta, 2, axis=0), teacher, doubled) == pytest.approx(R, rel=1e-12)


def test_population_config_is_checked():
    base = {"data": {"kind": "population"}}
    with pytest.raises(mf.ConfigError, match="data.inputs"):
        mf.Config.from_dict({"data": {"kind": "population", "inputs": "sphere", "teacher_activation": "tanh"},
                             "network": {"activation": "tanh"}})
    with pytest.raises(mf.ConfigError, match="data.inputs"):
        mf.Config.from_dict({"data": {"kind": "population", "inputs": "sphere", "teacher_activation": "quadratic"}})
    assert mf.Config.from_dict({"data": {"kind": "population", "inputs": "sphere"}}).data.inputs == "sphere"
    assert mf.Config.from_dict({**base, "network": {"activation": "tanh"}}).data.teacher_activation == "relu"
    with pytest.raises(mf.ConfigError, match="record.diagnostics"):
        mf.Config.from_dict({**base, "record": {"diagnostics": ["lambda_min"]}})
    with pytest.raises(mf.ConfigError, match="network.bias"):
        mf.Config.from_dict({**base, "network": {"bias": True, "d": 3}})


def test_homogeneous_projection_and_cone_masses_on_a_hand_made_configuration():
    theta = np.array([[2.0, 0.0, 1.5],      # direction (1, 0), mass 3
                      [0.0, -1.0, -2.0],    # direction (0, -1), mass -2
                      [1.0, 0.01, 1.0],     # ~ (1, 0), mass ~1
                      [0.0, 0.0, 5.0]])     # w = 0: no mass
    directions, masses = homogeneous_projection(theta, scale=0.5)
    np.testing.assert_allclose(masses, [1.5, -1.0, 0.5 * np.hypot(1, 0.01), 0.0])
    np.testing.assert_allclose(directions[0], [1.0, 0.0])
    np.testing.assert_allclose(cone_masses(theta, np.array([[1.0, 0.0], [0.0, -3.0]]), 5.0, scale=0.5),
                               [1.5 + 0.5 * np.hypot(1, 0.01), -1.0])


def test_mean_field_student_recovers_the_teacher_masses():
    cfg = mf.Config(seed=0, network={"m": 40, "d": 10}, init={"tau": 0.1},
                    data={"kind": "population", "teacher_m0": 4}, flow={"dt": 0.1, "t_end": 300.0},
                    record={"n_records": 10, "diagnostics": ["masses"]})
    res = mf.simulate(cfg)
    obs = res.observables
    assert obs["train_risk"][-1] < 1e-3 * obs["train_risk"][0]
    np.testing.assert_array_equal(obs["train_risk"], obs["test_risk"])
    assert obs["negative_mass"][-1] < 1e-3
    assert obs["cone_mass"][-1] > 0.85 * 4.0


def test_polynomial_atan2_equals_the_library_one(rng):
    import math

    from meanfield import _kernels
    y = np.concatenate([rng.uniform(0, 3, 20000), np.exp(rng.uniform(-40, 5, 2000)), [0.0, 0.0, 1.0, 2.0, 1e-300]])
    x = np.concatenate([rng.uniform(-3, 3, 20000), rng.standard_normal(2000), [1.0, -1.0, 0.0, 2.0, -1.0]])
    ours = np.array([_kernels._atan2_upper(a, b) for a, b in zip(y, x)])
    exact = np.array([math.atan2(a, b) for a, b in zip(y, x)])
    np.testing.assert_allclose(ours, exact, rtol=4e-16, atol=0)


@pytest.mark.parametrize("activation", population.CLOSED_FORMS)
def test_compiled_pair_sums_equal_the_numpy_twin_at_scale(rng, activation):
    """m = 400, d = 10, with duplicated, opposite and zero neurons (the kernel's edge cases); any
    thread count.

    Compared: K c and sum_j c_j grad_w kappa(w_i, v_j) = (A c)_i w_i + (B c V)_i. A and B alone
    are ill-conditioned for near-parallel pairs (sqrt(q q' - rho^2) cancels) while this sum is not."""
    W = rng.standard_normal((400, 10))
    W[1], W[2], W[3], W[4] = W[0], -W[0], 0.0, 1e-3 * W[0] + 1e-9
    from meanfield import _kernels

    V, c = rng.standard_normal((7, 10)), rng.standard_normal(7)
    params = NetworkConfig(activation="leaky_relu").activation_params
    for other, weights in ((W, rng.standard_normal(400)), (V, c)):
        ours = population.pair_sums(activation, W, other, weights, params, compiled=True)
        twin = population.pair_sums(activation, W, other, weights, params)
        for got, want in ((ours[0], twin[0]), (ours[1][:, None] * W + ours[2], twin[1][:, None] * W + twin[2])):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
        _kernels.set_threads(1)                   # one lane takes every block: the same bits
        try:
            for got, again in zip(ours, population.pair_sums(activation, W, other, weights, params, compiled=True)):
                np.testing.assert_array_equal(again, got)
        finally:
            _kernels.set_threads(0)


def test_the_tanh_quadrature_estimates_its_error_and_warns_past_the_tolerance():
    """At |w|^2 = 10 the 96-node rule is off by about 3e-3; the estimate (against twice the nodes)
    agrees with the error against a 300-node rule, and a kernel evaluation there warns."""
    def terms(q, rho, nodes):
        return [t[0, 0] for t in population._quadrature_terms("tanh", *(np.array([[v]]) for v in (q, q, rho)),
                                                             None, check=False, nodes=nodes)]

    for q in (1.0, 10.0):
        (k, A, B), (kr, Ar, Br) = terms(q, 0.3 * q, 96), terms(q, 0.3 * q, 300)
        w = np.sqrt(q)
        error = max(abs(k - kr) / abs(kr), (abs(A - Ar) + abs(B - Br)) * w / ((abs(Ar) + abs(Br)) * w))
        np.testing.assert_allclose(population.quadrature_error("tanh", q, q, 0.3 * q), error, rtol=0.05)
    population._checked.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        population.pair_terms("tanh", np.ones((3, 1)), np.ones((1, 3)), np.full((3, 3), 0.3))    # |w|^2 = 1: quiet
    with pytest.warns(population.QuadratureWarning, match=r"accurate to about 0.03 .* at \|w\|\^2 = 10"):
        population.pair_terms("tanh", np.full((2, 1), 10.0), np.full((1, 2), 10.0), np.full((2, 2), 3.0))


def test_orthant_probabilities_agree_with_scipy_on_a_grid_with_their_limits():
    """P(X > h, Y > k) by Owen's T against scipy's multivariate normal CDF (Genz's method), at
    thresholds including 0 and correlations including +-1 (where it is Phi(-max(h, k)) and
    max(0, Phi(-h) - Phi(k)))."""
    from scipy.special import ndtr
    from scipy.stats import multivariate_normal

    for h in (-1.3, 0.0, 0.7):
        for k in (-0.4, 0.0, 2.1):
            for r in (-0.9, -0.3, 0.0, 0.5, 0.99):
                genz = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, r], [r, 1.0]]).cdf([-h, -k])
                np.testing.assert_allclose(activations.orthant(h, k, r), genz, rtol=0, atol=1e-12)
            np.testing.assert_allclose(activations.orthant(h, k, 1.0), ndtr(-max(h, k)), rtol=1e-15)
            np.testing.assert_allclose(activations.orthant(h, k, -1.0), max(0.0, ndtr(-h) - ndtr(k)), rtol=0,
                                       atol=1e-16)
            np.testing.assert_allclose(activations.orthant(h, k, 1 - 1e-14), activations.orthant(h, k, 1.0), atol=1e-6)


@pytest.mark.parametrize("knots,values",
                         [((0.5, 1.5), (-2.5, 7.5)), ((0.0, 1.0), (0.0, 1.0)), ((-0.3, 1.2), (-1.0, 2.0))])
def test_piecewise_linear_kernel_equals_the_integral_it_stands_for(knots, values):
    """kappa = E[sigma(U) E[sigma(V) | U]] as one adaptive 1-D integral split at the kinks, with the
    inner mean in closed form; at random pairs, the self pair, the opposite pair and a zero
    neuron (relative 1e-11); A and B are its derivatives (test above); Mei, Montanari & Nguyen's
    sigma, a capped ReLU (a knot at 0) and a knot on each side of 0."""
    from scipy import integrate
    from scipy.special import ndtr

    params = NetworkConfig(pwl_knots=knots, pwl_values=values).activation_params
    sigma = lambda z: twolayer.activation("piecewise_linear", z, params)
    (t1, t2), (s1, s2) = knots, values
    slope = (s2 - s1) / (t2 - t1)

    def given(mu, sd):                     # E sigma(mu + sd G)
        if sd == 0:
            return sigma(np.array(mu))
        ramp = lambda t: (mu - t) * ndtr((mu - t) / sd) + sd * np.exp(-0.5 * ((mu - t) / sd) ** 2) / np.sqrt(2 * np.pi)
        return s1 + slope * (ramp(t1) - ramp(t2))

    def integral(q1, q2, rho):
        if q1 == 0:
            return float(sigma(np.zeros(1))[0] * given(0.0, np.sqrt(q2)))
        sd1 = np.sqrt(q1)
        inner = np.sqrt(max(q2 - rho * rho / q1, 0.0))
        f = lambda x: np.exp(-x * x / 2) / np.sqrt(2 * np.pi) * sigma(np.array(sd1 * x)) * given(rho / sd1 * x, inner)
        cuts = sorted({t1 / sd1, t2 / sd1} | ({t1 * sd1 / rho, t2 * sd1 / rho} if inner == 0 and rho else set()))
        return sum(integrate.quad(f, a, b, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
                   for a, b in zip([-np.inf] + cuts, cuts + [np.inf]))

    rng = np.random.default_rng(3)
    cases = [(q1, q2, r * np.sqrt(q1 * q2)) for q1, q2, r in zip(rng.uniform(0.1, 4, 6), rng.uniform(0.1, 4, 6),
                                                                  rng.uniform(-0.97, 0.97, 6))]
    cases += [(1.3, 1.3, 1.3), (0.7, 0.7, -0.7), (0.0, 1.1, 0.0), (2.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    for q1, q2, rho in cases:
        kappa = population.pair_terms("piecewise_linear", q1, q2, rho, params)[0]
        np.testing.assert_allclose(kappa, integral(q1, q2, rho), rtol=1e-11, atol=1e-13)
    q = rng.uniform(0.05, 5, 8)
    mean, A1 = activations._pwl_mean(q, params)
    np.testing.assert_allclose(mean, [given(0.0, np.sqrt(v)) for v in q], rtol=1e-13)
    h = 1e-6
    np.testing.assert_allclose(A1,
                               (activations._pwl_mean(q + h, params)[0] - activations._pwl_mean(q - h, params)[0]) / h,
                               rtol=1e-6)


@pytest.mark.parametrize("student,teacher,slopes", [("relu", "leaky_relu", (0.01, 0.2)),
                                                     ("leaky_relu", "leaky_relu", (0.1, -0.3)),
                                                     ("leaky_relu", "relu", (0.3, 0.01)), ("linear", "relu",
                                                                                           (0.0, 0.0))])
def test_kinked_pairs_of_different_activations_or_slopes_are_exact(student, teacher, slopes):
    """sigma = l z + r relu(z) against another such sigma (a teacher with its own leaky slope): kappa
    equals the adaptive 1-D integral E[sigma_1(U) E[sigma_2(V) | U]] split at the kink (the inner mean
    in closed form) to 1e-11, and A, B are its derivatives; no quadrature (which missed by 0.75 %)."""
    import warnings

    from scipy import integrate
    from scipy.special import ndtr

    ps, pt = (NetworkConfig(leaky_slope=s).activation_params for s in slopes)
    sigma = lambda z: twolayer.activation(student, z, ps)
    l2, r2 = activations.ACTIVATIONS[teacher].linear_relu(pt)

    def given(mu, sd):                     # E sigma_2(mu + sd G)
        if sd == 0:
            return l2 * mu + r2 * max(mu, 0.0)
        return l2 * mu + r2 * (mu * ndtr(mu / sd) + sd * np.exp(-0.5 * (mu / sd) ** 2) / np.sqrt(2 * np.pi))

    def integral(q1, q2, rho):
        sd1 = np.sqrt(q1)
        inner = np.sqrt(max(q2 - rho * rho / q1, 0.0))
        f = lambda x: np.exp(-x * x / 2) / np.sqrt(2 * np.pi) * sigma(np.array(sd1 * x)) * given(rho / sd1 * x, inner)
        return sum(integrate.quad(f, a, b, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
                   for a, b in ((-np.inf, 0.0), (0.0, np.inf)))

    rng = np.random.default_rng(5)
    cases = [(q1, q2, r * np.sqrt(q1 * q2)) for q1, q2, r in zip(rng.uniform(0.1, 4, 6), rng.uniform(0.1, 4, 6),
                                                                  rng.uniform(-0.97, 0.97, 6))] + [(1.3, 0.8, 0.2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # exact: no quadrature warning
        for q1, q2, rho in cases:
            kappa, A, B = population.pair_terms(student, q1, q2, rho, ps, teacher, pt)
            np.testing.assert_allclose(kappa, integral(q1, q2, rho), rtol=1e-11, atol=1e-13)
            h = 1e-6
            k = lambda a, b, c: population.pair_terms(student, a, b, c, ps, teacher, pt)[0]
            np.testing.assert_allclose(A, 2 * (k(q1 + h, q2, rho) - k(q1 - h, q2, rho)) / (2 * h), rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(B, (k(q1, q2, rho + h) - k(q1, q2, rho - h)) / (2 * h), rtol=1e-6, atol=1e-8)


def test_the_teacher_has_its_own_leaky_slope():
    """data.teacher_leaky_slope labels the data and enters the exact population risk, whatever the
    student's network.leaky_slope: the risk equals its Monte Carlo value on 400 000 samples."""
    cfg = mf.Config(seed=1, network={"m": 6, "d": 3, "activation": "relu", "leaky_slope": 0.01},
                    data={"kind": "teacher", "n": 400_000, "teacher_activation": "leaky_relu",
                          "teacher_leaky_slope": 0.3, "teacher_m0": 2})
    data = mf.run_data(cfg)
    U = data.teacher[:, :3]
    np.testing.assert_allclose(data.y, twolayer.activation("leaky_relu", data.X @ U.T, cfg.teacher_params)
                               @ data.teacher[:, 3], rtol=1e-13)
    assert not np.allclose(data.y, twolayer.activation("leaky_relu", data.X @ U.T, cfg.network.activation_params)
                           @ data.teacher[:, 3])
    theta = np.random.default_rng(2).standard_normal((6, 4))
    exact = population.population_risk(theta, data.teacher, cfg.network, "leaky_relu",
                                       teacher_params=cfg.teacher_params)
    sampled = twolayer.risk(theta, data.X, data.y, cfg.network, "squared")
    np.testing.assert_allclose(exact, sampled, rtol=0.01)
