"""Tangent kernels: closed forms against Monte Carlo, the empirical kernel's exact fluctuation,
the deep recursion's exact properties, and the tangent model against the kernel flow."""
import numpy as np
import pytest
from scipy.linalg import expm

import meanfield as mf
from meanfield.config import NetworkConfig
from meanfield.model import ntk, twolayer

from . import naive


@pytest.fixture
def X(rng):
    Z = rng.standard_normal((6, 4))
    Z[:3] /= np.linalg.norm(Z[:3], axis=1, keepdims=True)      # some unit-norm, some not
    return Z


def test_closed_forms_match_monte_carlo_within_five_standard_errors(X, rng):
    W = rng.standard_normal((200_000, X.shape[1]))
    Z = X @ W.T                                              # (n, S)
    step, relu = (Z > 0).astype(float), np.maximum(Z, 0.0)
    checks = {
        "arccos0": (2 * step[:, None, :] * step[None, :, :], ntk.arccos_kernel(X, degree=0)),
        "arccos1": (2 * relu[:, None, :] * relu[None, :, :], ntk.arccos_kernel(X, degree=1)),
        "h_inf": ((X @ X.T)[:, :, None] * step[:, None, :] * step[None, :, :], ntk.h_infinity(X)),
        "nngp": (relu[:, None, :] * relu[None, :, :], ntk.relu_nngp(X)),
    }
    for name, (samples, exact) in checks.items():
        mean, se = naive.monte_carlo(np.moveaxis(samples, 2, 0))
        assert np.all(np.abs(mean - exact) <= 5 * se + 1e-12), name


def test_two_layer_ntk_is_the_infinite_width_tangent_kernel(X, rng):
    m = 400_000
    theta = np.hstack([0.7 * rng.standard_normal((m, X.shape[1])), rng.choice([-1.0, 1.0], (m, 1))])
    for train in ("both", "hidden", "output"):
        H = ntk.tangent_kernel(theta, X, NetworkConfig(m=m, d=X.shape[1], train=train))
        exact = ntk.two_layer_ntk(X, a_second_moment=1.0, w_scale=0.7, train=train)
        np.testing.assert_allclose(H, exact, atol=6 * np.max(np.abs(exact)) / np.sqrt(m))


def test_empirical_kernel_fluctuation_matches_its_exact_value(rng):
    X = rng.standard_normal((5, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    G = np.clip(X @ X.T, -1, 1)
    p = (np.pi - np.arccos(G)) / (2 * np.pi)
    exact = np.sum(G ** 2 * p * (1 - p))                     # m E||H(0) - H_inf||_F^2
    m, reps = 200, 3000
    net = NetworkConfig(m=m, d=3, train="hidden")
    values = []
    for _ in range(reps):
        theta = np.hstack([rng.standard_normal((m, 3)), rng.choice([-1.0, 1.0], (m, 1))])
        values.append(m * np.sum((ntk.tangent_kernel(theta, X, net) - ntk.h_infinity(X)) ** 2))
    mean, se = naive.monte_carlo(np.array(values))
    assert abs(mean - exact) < 4 * se, (mean, exact, se)


def test_tangent_kernel_equals_the_jacobian_gram_matrix(X, rng):
    m, d = 9, X.shape[1]
    theta = rng.standard_normal((m, d + 1))
    for scaling, alpha, train in (("mean_field", 1.0, "both"), ("lazy", 2.5, "hidden"), ("mean_field", 0.3, "output")):
        net = NetworkConfig(m=m, d=d, activation="tanh", scaling=scaling, alpha=alpha, train=train)
        mask = twolayer.train_mask(train, d)
        h, J = 1e-6, np.zeros((len(X), m, d + 1))
        for idx in np.ndindex(theta.shape):
            e = np.zeros_like(theta)
            e[idx] = h
            J[(slice(None),) + idx] = (twolayer.predict(theta + e, X, net)
                                       - twolayer.predict(theta - e, X, net)) / (2 * h)
        J = (J * mask).reshape(len(X), -1)
        np.testing.assert_allclose(ntk.tangent_kernel(theta, X, net, raw=True), J @ J.T, rtol=1e-6, atol=1e-9)
        factor = mf.time_factor(m, scaling, alpha)
        np.testing.assert_allclose(ntk.tangent_kernel(theta, X, net), factor * J @ J.T, rtol=1e-6, atol=1e-9)


def test_deep_recursion_depth_one_is_the_two_layer_kernel_and_keeps_norms(X):
    sigma, theta = ntk.deep_relu_kernels(X, depth=1, c_sigma=1.0)
    np.testing.assert_allclose(sigma, ntk.relu_nngp(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(theta, ntk.two_layer_ntk(X), rtol=1e-12, atol=1e-14)
    norms2 = np.sum(X ** 2, axis=1)
    for depth in (1, 2, 5):
        sigma, theta = ntk.deep_relu_kernels(X, depth=depth)      # c_sigma = 2 (He): norms kept
        np.testing.assert_allclose(np.diag(sigma), norms2, rtol=1e-12)
        np.testing.assert_allclose(np.diag(theta), (depth + 1) * norms2, rtol=1e-12)
        assert np.linalg.eigvalsh(theta)[0] > 0
    with pytest.raises(ValueError, match="depth"):
        ntk.deep_relu_kernels(X, depth=0)


def test_deep_nngp_matches_a_wide_random_network(rng):
    # Arora et al.'s parameterisation: h1 = W1 x (so Sigma^(0) = x.x'), h_{l+1} = sqrt(c / width) W g_l,
    # g = relu(h); the NNGP kernel at depth L is the covariance of the output pre-activation.
    X = rng.standard_normal((4, 3))
    width, c = 4000, 2.0           # observed max error over 10 seeds: 6 % of the largest entry
    g = np.maximum(rng.standard_normal((width, 3)) @ X.T, 0.0)
    g = np.maximum(np.sqrt(c / width) * rng.standard_normal((width, width)) @ g, 0.0)
    empirical = c / width * g.T @ g
    sigma, _ = ntk.deep_relu_kernels(X, depth=2, c_sigma=c)
    np.testing.assert_allclose(empirical, sigma, atol=0.15 * np.max(np.abs(sigma)))


def test_kernel_flow_and_its_gradient_descent_are_exact(rng):
    n = 7
    A = rng.standard_normal((n, n))
    H, y, u0 = A @ A.T / n, rng.standard_normal(n), rng.standard_normal(n)
    times = np.array([0.0, 0.5, 3.0])
    for t, u in zip(times, ntk.kernel_flow(H, y, u0, times)):
        np.testing.assert_allclose(u, y + expm(-t * H / n) @ (u0 - y), rtol=1e-10, atol=1e-12)
    dt, u = 0.1, u0.copy()
    expected = []
    for k in range(6):
        expected.append(u.copy())
        u = u - dt / n * H @ (u - y)
    np.testing.assert_allclose(ntk.kernel_gradient_descent(H, y, u0, np.arange(6), dt), expected, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("scaling,alpha", [("lazy", 1.0), ("mean_field", 3.0)])
def test_tangent_model_run_equals_the_kernel_gradient_descent_formula(scaling, alpha):
    dt = 0.05
    cfg = mf.Config(seed=2, network={"m": 30, "d": 3, "activation": "tanh", "scaling": scaling, "alpha": alpha,
                                     "linearized": True},
                    data={"n": 12}, flow={"dt": dt, "t_end": 5.0}, record={"n_records": 6, "spacing": "linear"})
    res = mf.simulate(cfg)
    data = mf.run_data(cfg)
    H0 = ntk.tangent_kernel(res.theta0, data.X, cfg.network)
    u0 = twolayer.predict(res.theta0, data.X, cfg.network, theta0=res.theta0)
    expected = ntk.kernel_gradient_descent(H0, data.y, u0, np.round(res.t / dt), dt)
    got = np.array([twolayer.predict(th, data.X, cfg.network, theta0=res.theta0) for th in res.snapshots])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)


def test_diagnostics_equal_independent_computations():
    diagnostics = ["lambda_min", "lambda_max", "kernel_change", "pattern_flips", "tangent_gap"]
    cfg = mf.Config(seed=4, network={"m": 50, "d": 3, "scaling": "lazy"}, data={"n": 15},
                    flow={"dt": 0.05, "t_end": 4.0, "temperature": 0.001, "batch_size": 10},
                    record={"n_records": 5, "diagnostics": diagnostics})
    res = mf.simulate(cfg)
    lin = mf.simulate(cfg.updated({"network.linearized": True, "record.diagnostics": []}))
    X = mf.run_data(cfg).X
    H0 = ntk.tangent_kernel(res.theta0, X, cfg.network)
    obs = res.observables
    for k, (th, th_lin) in enumerate(zip(res.snapshots, lin.snapshots)):
        H = ntk.tangent_kernel(th, X, cfg.network)
        assert obs["lambda_min"][k] == pytest.approx(np.linalg.eigvalsh(H)[0], rel=1e-10)
        assert obs["lambda_max"][k] == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-12)
        assert obs["kernel_change"][k] == pytest.approx(np.linalg.norm(H - H0) / np.linalg.norm(H0), rel=1e-10,
                                                        abs=1e-15)
        flips = np.mean(np.sign(X @ th[:, :3].T) != np.sign(X @ res.theta0[:, :3].T))
        assert obs["pattern_flips"][k] == pytest.approx(flips, abs=1e-15)
        gap = twolayer.predict(th, X, cfg.network) - twolayer.predict(th_lin, X, lin.config.network, theta0=res.theta0)
        assert obs["tangent_gap"][k] == pytest.approx(np.sqrt(np.mean(gap ** 2)), rel=1e-8, abs=1e-14)
    assert obs["kernel_change"][0] == obs["pattern_flips"][0] == obs["tangent_gap"][0] == 0.0
    assert obs["tangent_gap"][-1] > 0


def test_empirical_nngp_is_the_output_layer_kernel_and_converges_to_its_closed_form(X, rng):
    m = 200_000
    theta = np.hstack([rng.standard_normal((m, X.shape[1])), rng.standard_normal((m, 1))])
    K = ntk.nngp(theta, X, NetworkConfig(m=m, d=X.shape[1]))
    np.testing.assert_allclose(K, ntk.tangent_kernel(theta, X, NetworkConfig(m=m, d=X.shape[1], train="output")),
                               rtol=1e-12)
    np.testing.assert_allclose(K, ntk.relu_nngp(X), atol=6 * np.max(ntk.relu_nngp(X)) / np.sqrt(m))


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-9, 1e-12])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_step_kernels_keep_every_digit_at_nearly_collinear_inputs(rng, eps, sign):
    """Near-duplicate and near-opposite inputs: H_inf, the arc-cosine kernel and the deep NNGP
    and NTK (3 hidden layers) agree with 50-digit values to 1e-14 of the kernel's scale |x||y|
    (the Gram-formula angle is off by sqrt(eps_machine) there: 1e-8 of the scale)."""
    x = rng.standard_normal(5)
    y = sign * x + eps * rng.standard_normal(5)
    X = np.array([x, y])
    scale = np.linalg.norm(x) * np.linalg.norm(y)
    h_inf, k1, sig, theta = naive.precise_kernels(x, y, depth=3)
    deep_sigma, deep_theta = ntk.deep_relu_kernels(X, depth=3)
    for found, exact in ((ntk.h_infinity(X)[0, 1], h_inf), (ntk.arccos_kernel(X, degree=1)[0, 1], k1),
                         (deep_sigma[0, 1], sig), (deep_theta[0, 1], theta)):
        np.testing.assert_allclose(found, exact, rtol=1e-13, atol=1e-14 * scale)


def test_a_copy_of_the_inputs_gives_the_same_kernel_bits(X):
    for kernel in (ntk.h_infinity, ntk.relu_nngp, lambda A, B=None: ntk.arccos_kernel(A, B, 0)):
        np.testing.assert_array_equal(kernel(X, X.copy()), kernel(X))
