"""Deep fully connected networks in the NTK parameterisation, in plain NumPy: the readable twin
that the deep engine (issue #20) will be checked against, and the empirical tangent kernels.

    h^(1) = W_1 x,    h^(l+1) = sqrt(c_sigma / m) W_{l+1} sigma(h^(l))  (l = 1 .. L - 1),
    f(x) = sqrt(c_sigma / m) a . sigma(h^(L)),

every entry of W_1 (m, d), W_l (m, m) and a (m,) standard normal at initialisation (Jacot et al.;
Arora et al. 2019 with c_sigma = 2 for ReLU). Training is gradient flow on these parameters, so
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


def _layers(params, X, act, c_sigma):
    """Pre-activations h^(l) (n, m) for l = 1..L, and the scale sqrt(c_sigma / m)."""
    scale = math.sqrt(c_sigma / params[-1].shape[0])
    h = [X @ params[0].T]
    for W in params[1:-1]:
        h.append(scale * activation(act, h[-1]) @ W.T)
    return h, scale


def predict(params, X, act: str = "relu", c_sigma: float = 2.0) -> np.ndarray:
    """f(x_j) for every row of X, (n,)."""
    h, scale = _layers(params, X, act, c_sigma)
    return scale * activation(act, h[-1]) @ params[-1]


def _backward(params, X, act, c_sigma) -> list:
    """Per weight layer l (W_1 .. W_L) the pair (delta_l, below_l): d f / d h^(l) (n, m) and the
    layer's input (n, fan_in), so that d f(x_j) / d W_l = delta_l[j] outer below_l[j]; last, the
    read-out's features (n, m) (d f / d a)."""
    h, scale = _layers(params, X, act, c_sigma)
    features = scale * activation(act, h[-1])
    delta = scale * activation_derivative(act, h[-1]) * params[-1][None, :]
    pairs = [None] * len(h)
    for l in range(len(h) - 1, -1, -1):
        pairs[l] = (delta, X if l == 0 else scale * activation(act, h[l - 1]))
        if l > 0:
            delta = (delta @ params[l]) * scale * activation_derivative(act, h[l - 1])
    return pairs + [features]


def jacobians(params, X, act: str = "relu", c_sigma: float = 2.0) -> list:
    """d f(x_j) / d (each layer's parameters): a list of (n, *shape) arrays (small sizes: tests)."""
    *pairs, features = _backward(params, X, act, c_sigma)
    return [delta[:, :, None] * below[:, None, :] for delta, below in pairs] + [features]


def layer_kernels(params, X, act: str = "relu", c_sigma: float = 2.0) -> list:
    """The per-layer Gram matrices J_l J_l^T (n, n), without forming J: (delta delta^T) * (below
    below^T) for a weight layer, F F^T for the read-out. Their sum is the tangent kernel H."""
    *pairs, features = _backward(params, X, act, c_sigma)
    return [(delta @ delta.T) * (below @ below.T) for delta, below in pairs] + [features @ features.T]


def tangent_kernel(params, X, act: str = "relu", c_sigma: float = 2.0) -> np.ndarray:
    """H = sum_l J_l J_l^T, (n, n)."""
    return sum(layer_kernels(params, X, act, c_sigma))


def velocity(params, X, y, act: str = "relu", c_sigma: float = 2.0) -> list:
    """Gradient flow of the squared risk R = mean_j (f(x_j) - y_j)^2 / 2: -dR/d(each layer)."""
    r = predict(params, X, act, c_sigma) - y
    *pairs, features = _backward(params, X, act, c_sigma)
    return [-(delta * r[:, None]).T @ below / len(y) for delta, below in pairs] + [-features.T @ r / len(y)]
