"""The deep NumPy twin (NTK parameterisation): finite differences, the two-layer network it
extends, and the infinite-width kernels it converges to."""
import numpy as np
import pytest

import meanfield as mf
from meanfield import deep, model, ntk

from . import naive
from .conftest import fitted_slope


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("res_scale", [None, 0.7])
def test_jacobians_and_velocity_equal_central_differences(depth, act, res_scale, rng):
    """Fully connected (res_scale None) and residual networks."""
    d, m, n = 3, 7, 5
    params = deep.init_params(d, m, depth, rng)
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    jac = deep.jacobians(params, X, act, res_scale=res_scale)
    vel = deep.velocity(params, X, y, act, res_scale=res_scale)
    for l, W in enumerate(params):
        def f_of(Wl, j):
            changed = list(params)
            changed[l] = Wl
            return deep.predict(changed, X, act, res_scale=res_scale)[j]
        for j in range(n):
            np.testing.assert_allclose(jac[l][j], naive.central_gradient(lambda Wl: f_of(Wl, j), W),
                                       rtol=1e-6, atol=1e-8)

        def risk(Wl):
            changed = list(params)
            changed[l] = Wl
            return 0.5 * np.mean((deep.predict(changed, X, act, res_scale=res_scale) - y) ** 2)
        np.testing.assert_allclose(vel[l], -naive.central_gradient(risk, W), rtol=1e-6, atol=1e-8)


def test_the_kernels_are_the_jacobians_gram_matrices(rng):
    params = deep.init_params(3, 6, 3, rng)
    X = rng.standard_normal((4, 3))
    for J, K in zip(deep.jacobians(params, X, "tanh"), deep.layer_kernels(params, X, "tanh")):
        flat = J.reshape(len(X), -1)
        np.testing.assert_allclose(K, flat @ flat.T, rtol=1e-13)


def test_depth_one_with_c_sigma_one_is_the_lazy_two_layer_network(rng):
    """Same predictor, same velocity field, same tangent kernel as the two-layer engine's twin."""
    d, m, n = 4, 50, 12
    params = deep.init_params(d, m, 1, rng)
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    theta = np.column_stack([params[0], params[1]])
    net = mf.Config(network={"m": m, "d": d, "activation": "tanh", "scaling": "lazy"}).network
    np.testing.assert_allclose(deep.predict(params, X, "tanh", 1.0), model.predict(theta, X, net), rtol=1e-13)
    v = deep.velocity(params, X, y, "tanh", 1.0)
    flow = mf.Config().flow
    np.testing.assert_allclose(np.column_stack([v[0], v[1]]), model.velocity(theta, X, y, net, flow), rtol=1e-12)
    np.testing.assert_allclose(deep.tangent_kernel(params, X, "tanh", 1.0), ntk.tangent_kernel(theta, X, net),
                               rtol=1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_the_empirical_kernel_converges_to_the_deep_relu_recursion_like_m_to_minus_half(depth):
    """H(0) -> Theta^(L) and the output layer's Gram matrix -> Sigma^(L) (ntk.deep_relu_kernels,
    c_sigma = 2): relative Frobenius error over 6 seeds, fitted slope near -1/2."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    sigma, theta = ntk.deep_relu_kernels(X, depth)
    widths, errors = [64, 256, 1024], []
    for m in widths:
        errs = []
        for seed in range(6):
            layers = deep.layer_kernels(deep.init_params(4, m, depth, np.random.default_rng(seed)), X)
            errs.append(np.linalg.norm(sum(layers) - theta) / np.linalg.norm(theta))
            np.testing.assert_allclose(np.linalg.norm(layers[-1] - sigma) / np.linalg.norm(sigma), 0.0,
                                       atol=8 / np.sqrt(m))
        errors.append(np.mean(errs))
    assert fitted_slope(widths, errors) == pytest.approx(-0.5, abs=0.15)
    assert errors[-1] < 0.15


@pytest.mark.parametrize("depth,res_scale", [(2, 1.0), (4, 0.5)])
def test_the_residual_kernels_meet_their_recursion_like_m_to_minus_half(depth, res_scale):
    """ntk.deep_resnet_relu_kernels (derived with the ReLU features' mean, which the residual
    stream carries: without it the NNGP is off by 57 % at depth 3): the empirical NNGP and NTK
    approach it like m^-1/2 over 6 seeds; at depth 1 it is the fully connected recursion."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(ntk.deep_resnet_relu_kernels(X, 1, res_scale), ntk.deep_relu_kernels(X, 1),
                               rtol=1e-14, atol=1e-15)
    K, theta = ntk.deep_resnet_relu_kernels(X, depth, res_scale)
    widths, nngp, tangent = [64, 256, 1024], [], []
    for m in widths:
        layers = [deep.layer_kernels(deep.init_params(4, m, depth, np.random.default_rng(seed)), X,
                                     res_scale=res_scale) for seed in range(6)]
        nngp.append(np.mean([np.linalg.norm(L[-1] - K) / np.linalg.norm(K) for L in layers]))
        tangent.append(np.mean([np.linalg.norm(sum(L) - theta) / np.linalg.norm(theta) for L in layers]))
    for errors in (nngp, tangent):
        assert fitted_slope(widths, errors) == pytest.approx(-0.5, abs=0.15)
        assert errors[-1] < 0.1
