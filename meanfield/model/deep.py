"""Deep fully connected and residual networks: parameterisations, forward and backward passes as
matrix products over the layers (BLAS, no per-sample Python), tangent kernels and the risk's
gradient. Training them is ``engine/deep_net.py``; their infinite-width kernels are ``ntk.py``.

Raw parameters ``[w_1 (m, d), w_2 .. w_L (m, m), a (m,)]``, each layer used through its
multiplier mult_l (``DeepNet.scales``):

    h^(1) = mult_1 w_1 x,          u^(1) = sigma(h^(1)),
    h^(l) = mult_l w_l u^(l-1),     u^(l) = sigma(h^(l))  (mlp)  or  u^(l-1) + b sigma(h^(l))  (resnet),
    f(x) = mult_out a . u^(L).

Parameterisations (Yang & Hu's abc-parameterisations, with gain g = sqrt(c_sigma) on the hidden
and output layers): the multiplier is m^-A and the initial standard deviation m^-B,

    ntk:      A = (0, 1/2, 1/2),   B = (0, 0, 0)         (Jacot et al.: the kernel regime)
    standard: A = (0, 0, 0),       B = (0, 1/2, 1/2)     (He initialisation, no multipliers)
    mup:      A = (-1/2, 0, 1/2),  B = (1/2, 1/2, 1/2)   (maximal update: features learn)

for (input, hidden, output) layers; g multiplies the multiplier where B = 0, else the standard
deviation. At initialisation ntk and standard give the same function; mup's read-out starts
m^-1/2 smaller. Training is gradient flow (or descent) on the raw parameters,
d w_l / dt = -dR/dw_l - lam w_l with R = mean_j loss(f(x_j), y_j), so the predictions obey
du/dt = -(1/n) H(t) loss'(u) with H = sum_l J_l J_l^T (J_l: the Jacobian in layer l's raw
parameters): the two-layer engine's time convention. With depth 1, c_sigma = 1 and ntk this is
the two-layer network under lazy scaling with alpha = 1 (f = m^-1/2 sum_i a_i sigma(w_i . x)).

``res_scale`` b: Du et al.'s residual network has b mult = c_res / (L sqrt(m)), i.e.
b = c_res / (L sqrt(c_sigma)) under ntk (``resnet_scale``). Shapes: X (n, d); predictions (n,);
kernels (n, n).
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np

from .parameterizations import ARCHITECTURES, PARAMETERIZATIONS, parameter_count
from .twolayer import DEFAULT_PARAMS, activation, activation_derivative, loss_derivative

ROW_BLOCK = 128             # rows per block of every product: fixed, so that no result depends on the threads
_pool = threading.local()


@contextmanager
def parallel(threads: int):
    """Products inside run their row blocks on ``threads`` threads (BLAS itself held at one)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), (ThreadPoolExecutor(threads) if threads > 1 else nullcontext()) as pool:
        _pool.executor = pool
        try:
            yield
        finally:
            _pool.executor = None


def _each_block(rows: int, block) -> None:
    """Call ``block(lo)`` for every block of ROW_BLOCK rows, on the threads of ``parallel`` if any."""
    blocks = range(0, rows, ROW_BLOCK)
    executor = getattr(_pool, "executor", None)
    if executor is None or len(blocks) < 2:
        for lo in blocks:
            block(lo)
    else:
        list(executor.map(block, blocks))


def matmul(A, B, out=None):
    """A @ B with A (r, k), B (k, c) or (k,), computed in blocks of ROW_BLOCK rows of A, each one
    BLAS call: the same bits whether the blocks run one after another or on several threads
    (``parallel``). Into ``out`` if given (r, c), else a new array."""
    out = np.empty((A.shape[0],) + B.shape[1:]) if out is None else out
    _each_block(A.shape[0], lambda lo: np.matmul(A[lo:lo + ROW_BLOCK], B, out=out[lo:lo + ROW_BLOCK]))
    return out


def _lower_mirrored(S):
    """S's lower triangle mirrored onto its upper: exactly symmetric."""
    return np.tril(S) + np.tril(S, -1).T


def gram(A):
    """A @ A.T (r, r) for A (r, k) with half of ``matmul``'s flops, exactly symmetric: for r >=
    2 ROW_BLOCK, split at h = r // 2 into two symmetric rank-k updates A_1 A_1^T, A_2 A_2^T (BLAS
    syrk, which NumPy calls for a buffer times its own transpose) and one product A_2 A_1^T, the
    two halves of the work on two threads under ``parallel``; the same bits on any number."""
    r = A.shape[0]
    A = np.ascontiguousarray(A)
    if r < 2 * ROW_BLOCK:
        return _lower_mirrored(A @ A.T)
    h = r // 2
    out = np.empty((r, r))
    top, bottom = A[:h], A[h:]

    def part(which):
        if which:
            np.matmul(bottom, top.T, out=out[h:, :h])
            out[:h, h:] = out[h:, :h].T
        else:
            for rows, block in ((slice(0, h), top), (slice(h, r), bottom)):
                out[rows, rows] = _lower_mirrored(block @ block.T)
    executor = getattr(_pool, "executor", None)
    if executor is None:
        part(0), part(1)
    else:
        list(executor.map(part, (1, 0)))
    return out


def c_sigma_of(name: str, params=None) -> float:
    """Du et al.'s c_sigma = 1 / E[sigma(g)^2], g ~ N(0, 1) (2 for ReLU): adaptive quadrature
    between the activation's kinks (0 and the piecewise-linear knots), to about 1e-12."""
    from scipy.integrate import quad

    params = DEFAULT_PARAMS if params is None else np.asarray(params, dtype=float)
    edges = [-np.inf, *sorted({0.0, float(params[1]), float(params[2])}), np.inf]
    density = lambda z: activation(name, np.array([z]), params)[0] ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return 1.0 / sum(quad(density, lo, hi, epsabs=1e-14, epsrel=1e-13)[0] for lo, hi in zip(edges, edges[1:]))


def resnet_scale(depth: int, c_res: float, c_sigma: float) -> float:
    """b for Du et al.'s residual form x^(l) = x^(l-1) + c_res / (L sqrt(m)) sigma(W_l x^(l-1))."""
    return c_res / (depth * math.sqrt(c_sigma))


@dataclass(frozen=True)
class DeepNet:
    """A deep network's shape and rules: ``depth`` L hidden layers of width m on inputs in R^d."""

    d: int
    m: int
    depth: int
    activation: str = "relu"
    architecture: str = "mlp"
    parameterization: str = "ntk"
    c_sigma: float = 2.0
    res_scale: float = 1.0
    act_params: tuple | None = None

    def __post_init__(self):
        if not (isinstance(self.depth, int) and self.depth >= 1):
            raise ValueError(f"depth = {self.depth!r} is invalid: allowed is an integer >= 1")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture = {self.architecture!r} is invalid: allowed are {', '.join(ARCHITECTURES)}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization = {self.parameterization!r} is invalid: allowed are "
                             f"{', '.join(PARAMETERIZATIONS)}")

    @property
    def resnet(self) -> bool:
        return self.architecture == "resnet"

    @property
    def params_array(self):
        return None if self.act_params is None else np.asarray(self.act_params, dtype=float)

    def scales(self) -> list:
        """(multiplier, initial standard deviation) of each layer: input, L - 1 hidden, output."""
        p, g = PARAMETERIZATIONS[self.parameterization], math.sqrt(self.c_sigma)
        out = []
        for kind in [0] + [1] * (self.depth - 1) + [2]:
            mult, std = self.m ** -p.A[kind], self.m ** -p.B[kind]
            if kind:
                mult, std = (mult * g, std) if p.B[kind] == 0 else (mult, std * g)
            out.append((mult, std))
        return out

    def shapes(self) -> list:
        return [(self.m, self.d)] + [(self.m, self.m)] * (self.depth - 1) + [(self.m,)]

    def init(self, rng: np.random.Generator) -> list:
        """Raw parameters at initialisation, each entry N(0, std_l^2)."""
        return [std * rng.standard_normal(shape) for (_, std), shape in zip(self.scales(), self.shapes())]

    def size(self) -> int:
        return parameter_count(self.d, self.m, self.depth)

    def flatten(self, params) -> np.ndarray:
        """One vector (P,) of every raw parameter, layer by layer, row-major."""
        return np.concatenate([np.ravel(w) for w in params])

    def unflatten(self, theta: np.ndarray) -> list:
        """Views of a vector (P,) as the layers' arrays."""
        out, lo = [], 0
        for shape in self.shapes():
            size = math.prod(shape)
            out.append(theta[lo:lo + size].reshape(shape))
            lo += size
        return out


def forward(net: DeepNet, params, X):
    """Pre-activations h^(l) and stream u^(l) (n, m) for l = 1..L, and the predictions f (n,)."""
    mult = [s[0] for s in net.scales()]
    act, ap = net.activation, net.params_array
    h = [mult[0] * matmul(X, params[0].T)]
    u = [activation(act, h[0], ap)]
    for l in range(1, net.depth):
        h.append(mult[l] * matmul(u[-1], params[l].T))
        branch = activation(act, h[-1], ap)
        u.append(u[-1] + net.res_scale * branch if net.resnet else branch)
    return h, u, mult[-1] * matmul(u[-1], params[-1])


def of(network) -> DeepNet:
    """The deep network of a NetworkConfig: c_sigma = 1 / E[sigma(g)^2] (Du et al.), and for resnets
    the branch factor of Du et al.'s c_res / (L sqrt(m))."""
    params = tuple(network.activation_params)
    c_sigma = c_sigma_of(network.activation, params)
    return DeepNet(network.d, network.m, network.depth, network.activation, network.architecture,
                   network.parameterization, c_sigma, resnet_scale(network.depth, network.c_res, c_sigma), params)


def predict(net: DeepNet, params, X) -> np.ndarray:
    """f(x_j) for every row of X, (n,)."""
    return forward(net, params, X)[2]


def _backprop(net: DeepNet, params, X, h, u, weights):
    """Per layer (delta_l, below_l) with d f(x_j) / d w_l = weights_j delta_l[j] outer below_l[j]
    (delta (n, m); below: the layer's input (n, fan_in)); last, (mult_out, weights_j u^(L)[j])."""
    mult = [s[0] for s in net.scales()]
    act, ap = net.activation, net.params_array
    grad_u = np.outer(weights, mult[-1] * params[-1])                              # d f / d u^(L)
    pairs = [None] * net.depth
    for l in range(net.depth - 1, -1, -1):
        gain = net.res_scale if (net.resnet and l > 0) else 1.0                  # d u^(l) / d sigma(h^(l))
        delta = grad_u * (gain * mult[l]) * activation_derivative(act, h[l], ap)
        pairs[l] = (delta, X if l == 0 else u[l - 1])
        if l > 0:
            grad_u = matmul(delta, params[l]) + (grad_u if net.resnet else 0.0)
    return pairs + [(mult[-1], u[-1] * weights[:, None])]


def backward(net: DeepNet, params, X) -> list:
    """``_backprop`` with every weight 1: the Jacobians' factors."""
    h, u, _ = forward(net, params, X)
    return _backprop(net, params, X, h, u, np.ones(len(X)))


def jacobians(net: DeepNet, params, X) -> list:
    """d f(x_j) / d (each layer's raw parameters): (n, *shape) arrays (small sizes: tests)."""
    *pairs, (mult, features) = backward(net, params, X)
    return [delta[:, :, None] * below[:, None, :] for delta, below in pairs] + [mult * features]


def layer_kernels(net: DeepNet, params, X) -> list:
    """The per-layer Gram matrices J_l J_l^T (n, n) without forming J: (delta delta^T) * (below
    below^T), and mult^2 u u^T for the read-out. Their sum is the tangent kernel H."""
    *pairs, (mult, features) = backward(net, params, X)
    return [gram(delta) * gram(below) for delta, below in pairs] + [mult ** 2 * gram(features)]


def tangent_kernel(net: DeepNet, params, X) -> np.ndarray:
    """H = sum_l J_l J_l^T, (n, n)."""
    return sum(layer_kernels(net, params, X))


def velocity(net: DeepNet, params, X, y, loss: str = "squared", lam: float = 0.0, out=None):
    """The gradient flow's drift -dR/dw_l - lam w_l: a list by layer, or written into ``out`` (P,)
    (``DeepNet.flatten``'s order) and returned. The minus sign rides on the loss's weights (negation
    is exact): the products write the drift itself, with no temporary of the parameters' size."""
    h, u, f = forward(net, params, X)
    *pairs, (mult, features) = _backprop(net, params, X, h, u, -loss_derivative(loss, f, y) / len(y))
    layers = net.unflatten(np.empty(net.size()) if out is None else out)
    for (delta, below), v in zip(pairs, layers):
        matmul(delta.T, below, out=v)
    np.multiply(mult, features.sum(axis=0), out=layers[-1])
    if lam:
        for v, w in zip(layers, params):
            v -= lam * w
    return layers if out is None else out
