"""The lazy limit's predictions and kernels: the kernel flow, an independent matrix exponential of the
joint train-test system, kernel ridge regression, the Gaussian-process posterior, the ensemble's
covariance from its linear map, an independent ODE solve for the logistic loss, quadrature
kernels against closed forms and adaptive references, deep kernels against the ReLU recursion,
and the faults: singular kernels, memory, refused configs, tampered files."""
import warnings

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.linalg import expm

import meanfield as mf
from meanfield.errors import ConfigError, CorruptedResultError
from meanfield.model import deep, ntk
from meanfield.model.limit_kernels import NODE_SECONDS, LimitKernel, gaussian_pairs, moments
from meanfield.theory import lazy


@pytest.fixture
def problem(rng):
    X, Z = rng.standard_normal((12, 3)), rng.standard_normal((5, 3))
    return X, Z, np.sin(2 * X[:, 0]) + 0.3 * X[:, 1]


def lazy_config(activation="relu", train="both", **network):
    return mf.Config(network={"m": 100, "d": 3, "activation": activation, "scaling": "lazy", "train": train,
                              **network})


def joint_flow(H_all, n, y, u0_all, t, lam):
    """The affine system d/dt [u; u_Z] = -(1/n) H_all (u - y) - lam ([u; u_Z] - u0_all), by one matrix
    exponential of the augmented (n + n_test + 1)-dimensional linear system."""
    size = len(u0_all)
    A = np.zeros((size + 1, size + 1))
    A[:size, :n] = -H_all / n
    A[:size, :size] -= lam * np.eye(size)
    A[:size, size] = H_all @ y / n + lam * u0_all
    return (expm(t * A) @ np.append(u0_all, 1.0))[:size]


def test_train_points_follow_the_kernel_flow_and_t_zero_and_infinity_are_exact(problem, rng):
    X, Z, y = problem
    u0 = 0.3 * rng.standard_normal(len(y))
    found = lazy.predict("relu", y, [0.0, 0.7, 5.0, np.inf], X, Z, u0=u0, u0_test=np.ones(len(Z)))
    H = ntk.two_layer_ntk(X)
    np.testing.assert_allclose(found.train[:3], ntk.kernel_flow(H, y, u0, [0.0, 0.7, 5.0]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(found.train[0], u0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(found.test[0], np.ones(len(Z)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(found.train[-1], y, rtol=0, atol=1e-11)           # interpolation, H well conditioned
    assert found.condition < 1e4


@pytest.mark.parametrize("lam", [0.0, 0.05])
def test_test_points_match_the_joint_system_by_matrix_exponential(problem, rng, lam):
    X, Z, y = problem
    u0, u0_test = 0.2 * rng.standard_normal(len(X)), 0.2 * rng.standard_normal(len(Z))
    cfg = lazy_config("erf")
    found = lazy.predict(cfg, y, [0.3, 2.0, 9.0], X, Z, u0=u0, u0_test=u0_test, lam=lam)
    H_all = LimitKernel(cfg).pair(np.vstack([X, Z]), X)[1]
    for i, t in enumerate(found.t):
        exact = joint_flow(H_all, len(X), y, np.concatenate([u0, u0_test]), t, lam)
        np.testing.assert_allclose(np.concatenate([found.train[i], found.test[i]]), exact, rtol=0, atol=1e-11)


def test_a_ridge_at_infinite_time_is_kernel_ridge_regression(problem, rng):
    X, Z, y = problem
    lam, u0 = 0.02, 0.1 * rng.standard_normal(len(X))
    found = lazy.predict("tanh", y, [np.inf], X, Z, u0=u0, lam=lam)
    K = LimitKernel(lazy_config("tanh"))
    H, H_zx = K.pair(X)[1], K.pair(Z, X)[1]
    krr = H_zx @ np.linalg.solve(H + len(X) * lam * np.eye(len(X)), y - u0)
    np.testing.assert_allclose(found.test[0], krr, rtol=0, atol=1e-12)


def test_the_ensemble_starts_at_the_nngp_and_ends_at_the_gp_posterior_with_the_output_layer_trained(problem):
    X, Z, y = problem
    cfg = lazy_config("relu", train="output")
    found = lazy.predict(cfg, y, [0.0, np.inf], X, Z, ensemble=True, covariance=True)
    K = ntk.relu_nngp(np.vstack([X, Z]))
    Kxx, Kzx, Kzz = K[:12, :12], K[12:, :12], K[12:, 12:]
    np.testing.assert_allclose(found.covariance[0], Kzz, rtol=0, atol=1e-14)
    np.testing.assert_allclose(found.test[0], 0.0, rtol=0, atol=1e-15)
    posterior = Kzz - Kzx @ np.linalg.solve(Kxx, Kzx.T)
    np.testing.assert_allclose(found.covariance[1], posterior, rtol=0, atol=1e-10)
    np.testing.assert_allclose(found.test[1], Kzx @ np.linalg.solve(Kxx, y), rtol=0, atol=1e-10)
    np.testing.assert_allclose(found.variance[1], np.diag(found.covariance[1]), rtol=0, atol=0)


def test_the_ensemble_variance_is_that_of_the_linear_map_of_the_initial_outputs(problem):
    """u_Z = f_0(Z) + T (y - f_0(X)): T's columns from single predictions with u0 = e_j, then the
    covariance of the Gaussian f_0 pushed through the map, against the blocked eigen-computation."""
    X, Z, y = problem
    cfg, t = lazy_config("tanh"), 1.5
    n = len(X)
    T = np.column_stack([-lazy.predict(cfg, np.zeros(n), [t], X, Z, u0=np.eye(n)[j]).test[0] for j in range(n)])
    P = LimitKernel(cfg).pair(np.vstack([X, Z]))[0]
    Pxx, Pzx, Pzz = P[:n, :n], P[n:, :n], P[n:, n:]
    covariance = Pzz - T @ Pzx.T - Pzx @ T.T + T @ Pxx @ T.T
    found = lazy.predict(cfg, y, [t], X, Z, ensemble=True)
    np.testing.assert_allclose(found.variance[0], np.diag(covariance), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(found.test[0], T @ y, rtol=0, atol=1e-12)


def test_logistic_loss_matches_an_independent_ode_solve_of_the_joint_outputs(problem, rng):
    X, Z, y = problem
    labels = np.sign(y)
    u0, lam = 0.1 * rng.standard_normal(len(X)), 0.01
    found = lazy.predict("relu", labels, [0.0, 1.0, 4.0], X, Z, u0=u0, lam=lam, loss="logistic")
    H_all = ntk.two_layer_ntk(np.vstack([X, Z]), X)
    n = len(X)
    start = np.concatenate([u0, np.zeros(len(Z))])

    def rhs(t, u):
        r = -labels / (1 + np.exp(labels * u[:n]))
        return -H_all @ r / n - lam * (u - start)

    ref = solve_ivp(rhs, (0, 4.0), start, method="Radau", t_eval=[0.0, 1.0, 4.0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.hstack([found.train, found.test]), ref.y.T, rtol=0, atol=1e-8)
    with pytest.raises(ConfigError, match="times"):
        lazy.predict("relu", labels, [np.inf], X, Z, loss="logistic")


def test_duplicated_inputs_give_finite_predictions_and_a_warning_not_nan(problem):
    X, Z, y = problem
    X2, y2 = np.vstack([X, X[:3]]), np.concatenate([y, y[:3]])
    with pytest.warns(lazy.SingularKernelWarning, match="lam > 0"):
        found = lazy.predict("relu", y2, [1.0, np.inf], X2, Z, ensemble=True)
    assert np.all(np.isfinite(found.test))
    assert np.all(found.variance >= 0)
    assert found.condition == np.inf
    np.testing.assert_allclose(found.train[-1], y2, rtol=0, atol=1e-9)           # consistent labels: still fitted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ridge = lazy.predict("relu", y2, [np.inf], X2, Z, lam=1e-3)
    assert np.isfinite(ridge.condition)


def test_user_matrices_give_the_configs_predictions(problem):
    X, Z, y = problem
    cfg = lazy_config("erf")
    K = LimitKernel(cfg)
    (P, H), (Pzx, Hzx) = K.pair(X), K.pair(Z, X)
    matrices = lazy.Matrices(H, Hzx, P, Pzx, prior_diag=K.diagonal(Z)[0])
    a = lazy.predict(matrices, y, [0.5, np.inf], ensemble=True)
    b = lazy.predict(cfg, y, [0.5, np.inf], X, Z, ensemble=True)
    np.testing.assert_allclose(a.test, b.test, rtol=0, atol=1e-14)
    np.testing.assert_allclose(a.variance, b.variance, rtol=0, atol=1e-14)


def test_blocks_of_test_rows_change_nothing(problem, rng, monkeypatch):
    X, _, y = problem
    Z = rng.standard_normal((40, 3))
    whole = lazy.predict("relu", y, [1.0, np.inf], X, Z, ensemble=True)
    monkeypatch.setattr(lazy, "BLOCK_BYTES", lazy.BLOCK_ARRAYS * 8 * len(X) * 7)          # blocks of 7 rows
    assert lazy.plan(len(X), 40, 2, True)["block"] == 7
    blocked = lazy.predict("relu", y, [1.0, np.inf], X, Z, ensemble=True)
    np.testing.assert_allclose(blocked.test, whole.test, rtol=0, atol=1e-14)
    np.testing.assert_allclose(blocked.variance, whole.variance, rtol=0, atol=1e-14)


# --- kernels ----------------------------------------------------------------------------------

def test_relu_family_kernels_equal_the_arc_cosine_closed_forms(problem):
    X, Z, _ = problem
    for train, expected in (("both", ntk.two_layer_ntk(Z, X)), ("hidden", ntk.two_layer_ntk(Z, X, train="hidden")),
                            ("output", ntk.relu_nngp(Z, X))):
        prior, H = LimitKernel(lazy_config("relu", train)).pair(Z, X)
        np.testing.assert_allclose(H, expected, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(prior, ntk.relu_nngp(Z, X), rtol=1e-14, atol=1e-15)
    # leaky ReLU with slope s: s^2 x.y + (1 - s)^2 relu part + s (1 - s) x.y, by E[u relu(v)] = rho / 2
    s = 0.2
    prior = LimitKernel(lazy_config("leaky_relu", leaky_slope=s)).pair(Z, X)[0]
    np.testing.assert_allclose(prior, (s * s + s * (1 - s)) * Z @ X.T + (1 - s) ** 2 * ntk.relu_nngp(Z, X),
                               rtol=1e-13, atol=1e-15)


def test_quadrature_converges_spectrally_to_erf_closed_form():
    q1, q2, rho = np.array([0.5, 3.0, 7.0]), np.array([1.0, 2.0, 7.0]), np.array([0.3, -1.0, 6.99])
    exact = moments("erf", None, q1, q2, rho)[:2]
    errors = [max(np.max(np.abs(a - b)) for a, b in zip(gaussian_pairs("erf", None, q1, q2, rho, n), exact))
              for n in (16, 32, 64)]
    assert errors[1] < 1e-3 * errors[0]                 # spectral: each doubling gains orders of magnitude
    assert errors[2] < 1e-14


def test_the_quadrature_on_relu_approaches_the_arc_cosine_closed_form_algebraically():
    """The rule itself is right where the answer is known exactly; ReLU's kink makes it algebraic
    (kappa about N^-2), which is why kinked activations use their closed forms and orthants."""
    q1, q2, rho = np.array([0.5, 3.0, 7.0]), np.array([1.0, 2.0, 7.0]), np.array([0.3, -1.0, 6.9])
    exact = moments("relu", None, q1, q2, rho)[0]
    errors = [np.max(np.abs(gaussian_pairs("relu", None, q1, q2, rho, n)[0] - exact)) for n in (16, 64, 256)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-5
    assert errors[2] > 1e-8                      # not spectral: the kink is felt


def test_tanh_quadrature_matches_an_adaptive_reference_to_1e_12():
    q1, q2, rho = 4.0, 2.5, 1.7
    kappa, beta, error = moments("tanh", None, np.array(q1), np.array(q2), np.array(rho))
    p, r = rho / np.sqrt(q1), np.sqrt(q2 - rho * rho / q1)
    g = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    inner = lambda f, x: quad(lambda z: f(p * x + r * z) * g(z), -12, 12, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    dtanh = lambda z: 1 - np.tanh(z) ** 2
    ref = [quad(lambda x: f(np.sqrt(q1) * x) * inner(f, x) * g(x), -12, 12, epsabs=1e-14, epsrel=1e-13,
                limit=200)[0] for f in (np.tanh, dtanh)]
    np.testing.assert_allclose([float(kappa), float(beta)], ref, rtol=1e-12, atol=1e-15)
    assert error < 1e-11


def test_deep_kernels_of_any_activation_follow_the_relu_recursion_and_wide_networks(problem, rng):
    X, Z, _ = problem
    # leaky ReLU of slope 0 is ReLU, but goes through the generic recursion in (q, rho)
    generic = LimitKernel(mf.Config(network={"d": 3, "depth": 3, "activation": "leaky_relu", "leaky_slope": 0.0}))
    sigma, theta = ntk.deep_relu_kernels(Z, 3, generic.c_sigma, Y=X)
    prior, H = generic.pair(Z, X)
    np.testing.assert_allclose(prior, sigma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(H, theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(generic.diagonal(Z)[1], np.diag(ntk.deep_relu_kernels(Z, 3, generic.c_sigma)[1]),
                               rtol=1e-12)
    # tanh, L = 2: the empirical tangent kernel of wide networks (the average over 4 draws at m = 3000)
    cfg = mf.Config(network={"d": 3, "depth": 2, "activation": "tanh", "m": 3000})
    net = deep.of(cfg.network)
    U = X[:4] / np.linalg.norm(X[:4], axis=1, keepdims=True)
    empirical = np.mean([deep.tangent_kernel(net, net.init(np.random.default_rng(s)), U) for s in range(4)], axis=0)
    limit = LimitKernel(cfg).pair(U)[1]
    np.testing.assert_allclose(empirical, limit, rtol=0, atol=0.03 * np.max(np.abs(limit)))


def test_residual_kernels_of_any_activation_follow_the_relu_recursion_and_wide_networks(problem):
    X, Z, _ = problem
    relu = LimitKernel(mf.Config(network={"d": 3, "depth": 4, "architecture": "resnet"}))
    sigma, theta = ntk.deep_resnet_relu_kernels(np.vstack([Z, X]), 4, relu.res_scale, relu.c_sigma)
    prior, H = relu.pair(Z, X)
    np.testing.assert_allclose(prior, sigma[:5, 5:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, theta[:5, 5:], rtol=1e-12, atol=1e-14)
    # softplus features have a mean, carried along the stream: without it the kernel is 40 % off
    cfg = mf.Config(network={"d": 3, "depth": 3, "architecture": "resnet", "activation": "softplus", "m": 4000})
    net = deep.of(cfg.network)
    U = X[:4] / np.linalg.norm(X[:4], axis=1, keepdims=True)
    empirical = np.mean([deep.tangent_kernel(net, net.init(np.random.default_rng(s)), U) for s in range(4)], axis=0)
    K = LimitKernel(cfg)
    limit = K.pair(U)[1]
    np.testing.assert_allclose(empirical, limit, rtol=0, atol=0.03 * np.max(np.abs(limit)))
    np.testing.assert_allclose(K.diagonal(U)[1], np.diag(limit), rtol=1e-13)


def test_refusals_name_the_parameter(problem):
    X, Z, y = problem
    with pytest.raises(ConfigError, match="network.scaling"):
        LimitKernel(mf.Config(network={"d": 3, "scaling": "mean_field"}))
    with pytest.raises(ConfigError, match="init.a_law"):
        LimitKernel(mf.Config(network={"d": 3, "scaling": "lazy"}, init={"a_law": "balanced"}))
    with pytest.raises(ConfigError, match="network.parameterization"):
        LimitKernel(mf.Config(network={"d": 3, "depth": 2, "parameterization": "mup"}))
    with pytest.raises(ConfigError, match="ensemble"):
        lazy.predict("relu", y, [1.0], X, Z, u0=np.zeros(len(X)), ensemble=True)
    with pytest.raises(ConfigError, match="times"):
        lazy.predict("relu", y, [-1.0], X, Z)
    with pytest.raises(ConfigError, match="covariance"):
        lazy.check_plan(lazy.plan(100, 10 ** 6, 10, True, True))


def test_a_saved_prediction_loads_and_an_edit_is_detected(problem, tmp_path):
    X, Z, y = problem
    found = lazy.predict(lazy_config("erf"), y, [0.0, 2.0, np.inf], X, Z, ensemble=True)
    folder = found.save(tmp_path / "p")
    back = lazy.Prediction.load(folder)
    np.testing.assert_array_equal(back.variance, found.variance)
    assert back.describe() == found.describe()
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"squared"', '"logistic"'))
    with pytest.raises(CorruptedResultError):
        lazy.Prediction.load(folder)


def test_shapes_are_checked_before_any_work_and_test_points_are_optional(problem):
    X, Z, y = problem
    for kwargs, name in (({"u0": np.zeros(3)}, "u0.shape"), ({"u0_test": np.zeros(2)}, "u0_test.shape")):
        with pytest.raises(ConfigError, match=name):
            lazy.predict("relu", y, [1.0], X, Z, **kwargs)
    with pytest.raises(ConfigError, match="X_test.shape"):
        lazy.predict("relu", y, [1.0], X, Z[:, :2])
    with pytest.raises(ConfigError, match="y.shape"):
        lazy.predict("relu", y[:-1], [1.0], X, Z)
    alone = lazy.predict("relu", y, [1.0], X)
    assert alone.test.shape == (1, 0)
    np.testing.assert_array_equal(alone.train, lazy.predict("relu", y, [1.0], X, Z).train)


def test_matrices_without_a_prior_are_refused_for_an_ensemble_by_name(problem):
    X, Z, y = problem
    K = LimitKernel(lazy_config("relu"))
    matrices = lazy.Matrices(K.pair(X)[1], K.pair(Z, X)[1])
    assert lazy.predict(matrices, y, [1.0]).kernel == "user matrices"
    with pytest.raises(ConfigError, match="prior"):
        lazy.predict(matrices, y, [1.0], ensemble=True)


def test_the_plan_estimates_the_kernels_cost_from_the_node_count_the_kernels_use(rng):
    X, Z = 3 * rng.standard_normal((30, 4)), rng.standard_normal((3, 4))
    K = LimitKernel(lazy_config("tanh", d=4))
    seconds, nodes = K.seconds(X, Z)
    assert nodes >= 16
    np.testing.assert_allclose(seconds, 30 * 3 * nodes ** 2 * NODE_SECONDS, rtol=1e-12)
    assert K.seconds(X)[1] == nodes              # the largest norm of X against itself sets the count here
    K.pair(X, Z)
    assert K.error < 1e-11                       # the count the plan chose resolves the kernels it prices
