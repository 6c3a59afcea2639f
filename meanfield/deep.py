"""Deep fully connected networks in the NTK parameterisation, in plain NumPy: the readable twin
that the deep engine (issue #20) will be checked against, and the empirical tangent kernels.

    h^(1) = W_1 x,    h^(l+1) = sqrt(c_sigma / m) W_{l+1} sigma(h^(l))  (l = 1 .. L - 1),
    f(x) = sqrt(c_sigma / m) a . sigma(h^(L)),

every entry of W_1 (m, d), W_l (m, m) and a (m,) standard normal at initialisation (Jacot et al.;
Arora et al. 2019 with c_sigma = 2 for ReLU). With ``res_scale`` = b the hidden layers are
residual: x^(l) = x^(l-1) + b sqrt(c_sigma / m) sigma(W_l x^(l-1)), f = a . x^(L) (Du et al.'s
form with b = c_res / (L sqrt(c_sigma))); its kernels are ``ntk.deep_resnet_relu_kernels``. Training is gradient flow on these parameters, so
the predictions obey du/dt = -(1/n) H(t) r with H = sum_l J_l J_l^T, J_l the Jacobian of the
predictions in layer l's weights: the time convention of the two-layer engine. With L = 1 and
c_sigma = 1 this is the two-layer network under lazy scaling with alpha = 1
(f = m^-1/2 sum_i a_i sigma(w_i . x)), the same function and the same flow.

Parameters are a list ``[W_1, ..., W_L, a]``. Shapes: X (n, d); predictions (n,); kernels (n, n).
The infinite-width kernels are ``ntk.deep_relu_kernels`` (ReLU): H(0) -> Theta^(L) as m grows.
"""
from __future__ import annotations

import math

import numpy as np

from .model import activation, activation_derivative


def init_params(d: int, m: int, depth: int, rng: np.random.Generator) -> list:
    """Standard normal weights: [W_1 (m, d), W_2 .. W_L (m, m), a (m,)]."""
    if depth < 1:
        raise ValueError(f"depth = {depth!r} is invalid: allowed is an integer >= 1")
    return [rng.standard_normal((m, d))] + [rng.standard_normal((m, m)) for _ in range(depth - 1)] \
        + [rng.standard_normal(m)]


def _forward(params, X, act, c_sigma, res_scale):
    """Pre-activations h^(l) and features x^(l) (n, m), l = 1..L: x^(1) = s sigma(h^(1)),
    h^(1) = W_1 x; then h^(l) = W_l x^(l-1) and x^(l) = s sigma(h^(l)) (mlp) or
    x^(l - 1) + res_scale s sigma(h^(l)) (resnet), s = sqrt(c_sigma / m)."""
    s = math.sqrt(c_sigma / params[-1].shape[0])
    h = [X @ params[0].T]
    x = [s * activation(act, h[0])]
    for W in params[1:-1]:
        h.append(x[-1] @ W.T)
        branch = s * activation(act, h[-1])
        x.append(branch if res_scale is None else x[-1] + res_scale * branch)
    return h, x, s


def predict(params, X, act: str = "relu", c_sigma: float = 2.0, res_scale=None) -> np.ndarray:
    """f(x_j) = a . x^(L)(x_j) for every row of X, (n,)."""
    return _forward(params, X, act, c_sigma, res_scale)[1][-1] @ params[-1]


def _backward(params, X, act, c_sigma, res_scale=None) -> list:
    """Per weight layer l (W_1 .. W_L) the pair (delta_l, below_l): d f / d h^(l) (n, m) and the
    layer's input (n, fan_in), so that d f(x_j) / d W_l = delta_l[j] outer below_l[j]; last, the
    read-out's features x^(L) (n, m) (d f / d a)."""
    h, x, s = _forward(params, X, act, c_sigma, res_scale)
    grad_x = np.broadcast_to(params[-1], x[-1].shape)                  # d f / d x^(L)
    pairs = [None] * len(h)
    for l in range(len(h) - 1, -1, -1):
        gain = s if (l == 0 or res_scale is None) else res_scale * s    # d x^(l) / d sigma(h^(l))
        delta = grad_x * gain * activation_derivative(act, h[l])
        pairs[l] = (delta, X if l == 0 else x[l - 1])
        if l > 0:
            grad_x = delta @ params[l] + (0.0 if res_scale is None else grad_x)
    return pairs + [x[-1]]


def jacobians(params, X, act: str = "relu", c_sigma: float = 2.0, res_scale=None) -> list:
    """d f(x_j) / d (each layer's parameters): a list of (n, *shape) arrays (small sizes: tests)."""
    *pairs, features = _backward(params, X, act, c_sigma, res_scale)
    return [delta[:, :, None] * below[:, None, :] for delta, below in pairs] + [features]


def layer_kernels(params, X, act: str = "relu", c_sigma: float = 2.0, res_scale=None) -> list:
    """The per-layer Gram matrices J_l J_l^T (n, n), without forming J: (delta delta^T) * (below
    below^T) for a weight layer, F F^T for the read-out. Their sum is the tangent kernel H."""
    *pairs, features = _backward(params, X, act, c_sigma, res_scale)
    return [(delta @ delta.T) * (below @ below.T) for delta, below in pairs] + [features @ features.T]


def tangent_kernel(params, X, act: str = "relu", c_sigma: float = 2.0, res_scale=None) -> np.ndarray:
    """H = sum_l J_l J_l^T, (n, n)."""
    return sum(layer_kernels(params, X, act, c_sigma, res_scale))


def velocity(params, X, y, act: str = "relu", c_sigma: float = 2.0, res_scale=None) -> list:
    """Gradient flow of the squared risk R = mean_j (f(x_j) - y_j)^2 / 2: -dR/d(each layer)."""
    r = predict(params, X, act, c_sigma, res_scale) - y
    *pairs, features = _backward(params, X, act, c_sigma, res_scale)
    return [-(delta * r[:, None]).T @ below / len(y) for delta, below in pairs] + [-features.T @ r / len(y)]
