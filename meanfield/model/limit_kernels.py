"""The lazy limit's two kernels for any registered activation: the prior (NNGP) and the tangent kernel.

For the network of a config, as m -> infinity with its initial law:

- ``prior(x, x')``: the covariance of the initial outputs f_0(x), f_0(x') (a Gaussian process);
  zero where u_0 = 0 by construction (``init.symmetric`` or ``network.centered``).
- ``ntk(x, x')``: the tangent kernel H in the library's flow time (du/dt = -(1/n) H r,
  ``ntk.tangent_kernel``), over the coordinates ``network.train`` moves.

Two-layer (depth 1), w ~ N(0, s_w^2 I), a with second moment E a^2 (s_w = tau w_scale, ``init``):
kappa(x, x') = E[sigma(w.x) sigma(w.x')], beta(x, x') = E[sigma'(w.x) sigma'(w.x')], both
functions of q = s_w^2 |x|^2, q' = s_w^2 |x'|^2 and rho = s_w^2 x.x' (the activation's kernel);
prior = alpha^2 m s(m)^2 E[a^2] kappa (width-free in the lazy scaling), ntk = E[a^2] (x.x') beta
(hidden layer) + kappa (output layer). Deep (``network.depth`` L >= 2, NTK parameterisation,
``deep.py``): Sigma^(0) = x.x', Sigma^(h) = c_sigma kappa(Sigma^(h-1)), Theta^(h) = Theta^(h-1)
c_sigma beta(Sigma^(h-1)) + Sigma^(h); prior = Sigma^(L), ntk = Theta^(L); residual networks by
the recursion of ``ntk.deep_resnet_relu_kernels`` with kappa, beta and the features' mean of the
activation (``LimitKernel._resnet``).

How kappa and beta are computed, by the activation's ``population`` entry: closed forms (relu,
leaky_relu, linear, quadratic, erf); exact orthant formulas (piecewise_linear); for smooth ones
a 2-D product of graded trapezoidal rules (``gaussian_pairs``: the trapezoidal rule under a
sinh map, nodes gathered where the activation turns; spectral for these analytic integrands, and
nearly free of the input's norm, where Gauss–Hermite or a uniform rule need nodes like sqrt(q)
because tanh(sqrt(q) z) has poles pi / (2 sqrt(q)) from the real line) whose node count is chosen
from the arguments: raised by LADDER from MIN_NODES until the rule agrees with the next to
QUADRATURE_TOL on the hardest pairs (the largest norms and the most nearly parallel pair), that
gap kept as ``error`` (an estimate, not a bound; a QuadratureWarning above QUADRATURE_TOL at
MAX_NODES). The ReLU family's angles come from ``ntk._geometry`` (no cancellation near parallel
inputs); deep ReLU networks follow the angle recursion of ``ntk.deep_relu_kernels``.

Shapes: A (a, d), B (b, d); kernels (a, b); diagonals (a,).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..config import Config
from ..rules import LAZY, refuse
from . import deep, ntk
from .activations import ACTIVATIONS
from .population import QuadratureWarning
from .scaling import time_factor
from .twolayer import activation, activation_derivative

MIN_NODES = 16          # per axis, the first rule tried
LADDER = 1.5            # each rule tried has this many times the nodes of the last
MAX_NODES = 512         # per axis, the last
GRADE = 2.0             # the graded rule's scale, in units of the activation's turn (best of 0.5-4, measured)
HALF_WIDTH = 8.5        # the rule's nodes span [-8.5, 8.5]: the Gaussian mass beyond is 2e-17
QUADRATURE_TOL = 1e-11  # relative agreement of a rule with the next one on the hardest pairs
CHUNK_VALUES = 2 ** 21  # pair-node values evaluated at once (16 MiB per array)
MEAN_NODES = 4096       # the 1-D rule of E sigma(sqrt(q) z) for activations without a closed-form mean
NODE_SECONDS = 6e-8     # CPU per pair and node of the graded rule (map, sigma, sigma' in NumPy: 42-71 ns measured)
PAIR_SECONDS = 2e-7     # CPU per pair of a closed form (ReLU, 10,000 x 1,000: 1.8 s for the whole prediction)

A_SECOND_MOMENT = {"gaussian": 1.0, "rademacher": 1.0, "constant": 1.0, "zero": 0.0}   # E a^2 / a_scale^2


def _probe_pairs(q1, q2, rho):
    """Indices of the hardest pairs for a quadrature: the largest q1 q2, the most nearly parallel."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.abs(rho) / np.sqrt(q1 * q2)
    cosine = np.where(np.isfinite(cosine), cosine, 0.0)
    return {int(np.argmax(q1 * q2)), int(np.argmax(np.where(cosine < 1.0, cosine, 0.0)))}


def trapezoid(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """The trapezoidal rule for N(0, 1) on nodes equally spaced over [-HALF_WIDTH, HALF_WIDTH] (1-D means):
    for an integrand analytic in the strip |Im z| < tau its error falls like exp(-2 pi tau / h) in
    the spacing h (Trefethen & Weideman 2014)."""
    x = np.linspace(-HALF_WIDTH, HALF_WIDTH, nodes)
    w = np.exp(-0.5 * x * x)
    return x, w / w.sum()


def graded(center, scale, nodes: int):
    """Nodes and weights (..., nodes) of E g(xi), xi ~ N(0, 1), by the trapezoidal rule in s under
    xi = center + scale sinh(s) over xi in [-HALF_WIDTH, HALF_WIDTH]: nodes ``scale h`` apart near
    ``center``, exponentially farther apart beyond, where the Gaussian and a saturated activation
    vary slowly. ``center``, ``scale``: arrays of one shape."""
    s_lo = np.arcsinh((-HALF_WIDTH - center) / scale)
    s_hi = np.arcsinh((HALF_WIDTH - center) / scale)
    s = s_lo[..., None] + (s_hi - s_lo)[..., None] * np.linspace(0.0, 1.0, nodes)
    sinh = np.sinh(s)
    x = center[..., None] + scale[..., None] * sinh
    w = ((s_hi - s_lo) / (nodes - 1))[..., None] * scale[..., None] * np.sqrt(1.0 + sinh * sinh) * np.exp(-0.5 * x * x)
    return x, w / np.sqrt(2 * np.pi)


def gaussian_pairs(name, params, q1, q2, rho, nodes: int):
    """(kappa, beta) elementwise on xi ~ N(0, I_2), u = sqrt(q1) xi_1, v = p xi_1 + r xi_2 (p = rho / sqrt(q1),
    r = sqrt(q2 - p^2)), by ``graded`` rules of ``nodes`` nodes: in xi_1 about 0, where sigma(u) turns
    (on the scale GRADE / sqrt(q1)), and in xi_2, for each xi_1 node, about the point where v = 0
    (on the scale GRADE / r). The sharp turn of sigma at a large |w.x| then costs nodes like its
    logarithm, where a uniform rule needs them like sqrt(q)."""
    shape = np.broadcast_shapes(np.shape(q1), np.shape(q2), np.shape(rho))
    q1, q2, rho = (np.ravel(v) for v in np.broadcast_arrays(q1, q2, rho))
    norm = np.sqrt(q1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(norm > 0, rho / norm, 0.0)
    r = np.sqrt(np.clip(q2 - p * p, 0.0, None))
    kappa, beta = np.empty(q1.size), np.empty(q1.size)
    chunk = max(1, CHUNK_VALUES // (nodes * nodes))
    for lo in range(0, q1.size, chunk):
        part = slice(lo, lo + chunk)
        n_, p_, r_ = norm[part, None], p[part, None], r[part, None]
        x1, w1 = graded(np.zeros(len(n_)), GRADE / np.maximum(n_[:, 0], 1.0), nodes)       # (c, N)
        with np.errstate(divide="ignore", invalid="ignore"):
            center = np.clip(np.where(r_ > 0, -p_ * x1 / r_, 0.0), -HALF_WIDTH, HALF_WIDTH)
        x2, w2 = graded(center, np.broadcast_to(GRADE / np.maximum(r_, 1.0), center.shape), nodes)   # (c, N, N)
        u, v = n_ * x1, p_[..., None] * x1[..., None] + r_[..., None] * x2
        inner = lambda f: np.einsum("cij,cij->ci", w2, f(name, v, params))                # E over xi_2
        kappa[part] = np.einsum("ci,ci,ci->c", w1, activation(name, u, params), inner(activation))
        beta[part] = np.einsum("ci,ci,ci->c", w1, activation_derivative(name, u, params), inner(activation_derivative))
    return kappa.reshape(shape), beta.reshape(shape)


def choose_nodes(name, params, q1, q2, rho) -> tuple[int, float]:
    """(nodes, error): the first node count from MIN_NODES, up by LADDER, whose rule agrees with the
    next one to QUADRATURE_TOL on the hardest pairs (``_probe_pairs``), and that gap; a
    QuadratureWarning when MAX_NODES does not reach the tolerance."""
    flat = [np.ravel(v) for v in np.broadcast_arrays(q1, q2, rho)]
    at = [v[sorted(_probe_pairs(*flat))] for v in flat]
    nodes, coarse = MIN_NODES, gaussian_pairs(name, params, *at, MIN_NODES)
    while True:
        finer = int(round(LADDER * nodes))
        fine = gaussian_pairs(name, params, *at, finer)
        scale = max(np.max(np.abs(fine[0])), np.max(np.abs(fine[1])), 1e-300)
        error = max(float(np.max(np.abs(c - f))) for c, f in zip(coarse, fine)) / scale
        error = error if np.isfinite(error) else np.inf
        if error <= QUADRATURE_TOL or finer >= MAX_NODES:
            break
        nodes, coarse = finer, fine
    if error > QUADRATURE_TOL:
        warnings.warn(f"{name} kernels: the {nodes}-node rule agrees with the {finer}-node one only to {error:.1g} "
                      f"(relative) at |w.x|^2 up to {max(np.max(flat[0]), np.max(flat[1])):.3g}; smaller inputs (or "
                      "init.w_scale) resolve it", QuadratureWarning, stacklevel=4)
    return nodes, error


def moments(name: str, params, q1, q2, rho):
    """(kappa, beta, error): E[sigma(u) sigma(v)] and E[sigma'(u) sigma'(v)] for (u, v) ~ N(0, [[q1, rho],
    [rho, q2]]) elementwise, and the estimated relative error (0 for closed forms and orthants)."""
    entry = ACTIVATIONS[name]
    if entry.kernel is not None:
        kappa, _, beta = entry.kernel(*np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, rho))),
                                      params)
        return kappa, beta, 0.0
    nodes, error = choose_nodes(name, params, q1, q2, rho)
    return (*gaussian_pairs(name, params, q1, q2, rho, nodes), error)


def _relu_family(name, params, A, B, s2):
    """(kappa, beta) of sigma = l z + r relu(z) for w ~ N(0, s2 I), from cancellation-free angles."""
    l, r = ACTIVATIONS[name].linear_relu(params)
    rho = s2 * (A @ (A if B is None else B).T)
    return ((l * l + l * r) * rho + r * r * ntk.relu_nngp(A, B, np.sqrt(s2)),
            l * l + l * r + r * r * ntk.arccos_kernel(A, B, 0) / 2)


class LimitKernel:
    """The lazy limit's kernels of ``cfg``'s network (module docstring): ``pair(A, B)`` -> (prior, ntk),
    ``diagonal(A)`` -> (prior, ntk) on the diagonal; ``error``: the largest estimated relative quadrature
    error so far (0 for exact kernels)."""

    def __init__(self, cfg: Config):
        refuse(cfg, LAZY, " (the lazy limit's kernels)")
        net, init = cfg.network, cfg.init
        self.cfg, self.name, self.params = cfg, net.activation, net.activation_params
        self.error = 0.0
        self.deep = net.depth > 1
        if self.deep:
            self.c_sigma = deep.c_sigma_of(net.activation, tuple(self.params))
            self.res_scale = deep.resnet_scale(net.depth, net.c_res, self.c_sigma)
            return
        self.s2 = (init.tau * init.w_scale) ** 2
        self.a2 = (init.tau * init.a_scale) ** 2 * A_SECOND_MOMENT[init.a_law]
        zero = init.symmetric or net.centered
        self.prior_scale = 0.0 if zero else self.a2 / time_factor(net.m, net.scaling, net.alpha)
        self.hidden, self.output = net.train in ("both", "hidden"), net.train in ("both", "output")

    @property
    def exact(self) -> bool:
        return ACTIVATIONS[self.name].kernel is not None

    def seconds(self, A, B=None) -> tuple[float, int]:
        """(estimated CPU seconds, nodes per axis or 0) of ``pair(A, B)``: closed forms PAIR_SECONDS per pair
        and layer; quadratures the rule ``choose_nodes`` picks on the hardest pairs, NODE_SECONDS per pair
        and node, times the depth."""
        Bm = A if B is None else B
        pairs = len(A) * len(Bm) * (self.cfg.network.depth if self.deep else 1)
        if self.exact or ACTIVATIONS[self.name].linear_relu is not None:
            return pairs * PAIR_SECONDS, 0
        scale = 1.0 if self.deep else self.s2
        q_a, q_b = scale * np.sum(A * A, axis=1), scale * np.sum(Bm * Bm, axis=1)
        i, j = int(np.argmax(q_a)), int(np.argmax(q_b))       # the largest norms: what sets the node count
        nodes, _ = choose_nodes(self.name, self.params, q_a[[i, i]], np.array([q_b[j], q_a[i]]),
                                np.array([scale * float(A[i] @ Bm[j]), q_a[i]]))
        return pairs * nodes * nodes * NODE_SECONDS, nodes

    def _moments(self, q1, q2, rho):
        kappa, beta, error = moments(self.name, self.params, q1, q2, rho)
        self.error = max(self.error, error)
        return kappa, beta

    def pair(self, A, B=None):
        """(prior, ntk), each (a, b), between the rows of A and of B (default A)."""
        if self.deep:
            return self._deep(A, B)
        Bm = A if B is None else B
        if ACTIVATIONS[self.name].linear_relu is not None:
            kappa, beta = _relu_family(self.name, self.params, A, B, self.s2)
        else:
            sq_a, sq_b = np.sum(A * A, axis=1)[:, None], np.sum(Bm * Bm, axis=1)[None, :]
            kappa, beta = self._moments(self.s2 * sq_a, self.s2 * sq_b, self.s2 * (A @ Bm.T))
        return self._combine(kappa, beta, A @ Bm.T)

    def diagonal(self, A):
        """(prior, ntk) at each row of A against itself, each (a,)."""
        sq = np.sum(A * A, axis=1)
        if self.deep:
            return self._deep_diagonal(sq)
        kappa, beta = self._moments(self.s2 * sq, self.s2 * sq, self.s2 * sq)
        return self._combine(kappa, beta, sq)

    def _combine(self, kappa, beta, gram):
        H = np.zeros_like(kappa)
        if self.hidden:
            H += self.a2 * gram * beta
        if self.output:
            H += kappa
        return self.prior_scale * kappa, H

    def _mean(self, q):
        """E sigma(sqrt(q) z), z ~ N(0, 1), elementwise: the closed form, or the 1-D rule of MEAN_NODES."""
        entry = ACTIVATIONS[self.name]
        if entry.mean is not None:
            return entry.mean(np.asarray(q, dtype=float), self.params)[0]
        x, w = trapezoid(MEAN_NODES)
        return activation(self.name, np.sqrt(np.asarray(q, dtype=float))[..., None] * x, self.params) @ w

    def _deep(self, A, B):
        net = self.cfg.network
        Bm = A if B is None else B
        sq_a, sq_b, gram = np.sum(A * A, axis=1)[:, None], np.sum(Bm * Bm, axis=1)[None, :], A @ Bm.T
        if net.architecture == "resnet":
            return self._resnet(sq_a, sq_b, gram)
        if self.name == "relu":
            return ntk.deep_relu_kernels(A, net.depth, self.c_sigma, Y=B)
        return self._mlp(sq_a, sq_b, gram)

    def _deep_diagonal(self, sq):
        recursion = self._resnet if self.cfg.network.architecture == "resnet" else self._mlp
        return recursion(sq, sq, sq)

    def _mlp(self, qa, qb, sigma):
        """(Sigma^(L), Theta^(L)) of the fully connected network from the input Gram (broadcast shapes)."""
        c, theta = self.c_sigma, sigma
        for _ in range(self.cfg.network.depth):
            kappa, beta = self._moments(qa, qb, sigma)
            sigma, theta = c * kappa, theta * c * beta + c * kappa
            qa, qb = (c * self._moments(q, q, q)[0] for q in (qa, qb))
        return sigma, theta

    def _resnet(self, qa, qb, gram):
        """(K^(L), Theta^(L)) of the residual network (``ntk.deep_resnet_relu_kernels``' recursion for any
        activation: E[relu relu] -> kappa, E[step step] -> beta, and the features' mean r = sqrt(c_sigma)
        E sigma(sqrt(K(x, x)) z) carried along the stream), from the input Gram (broadcast shapes)."""
        c, b = self.c_sigma, self.res_scale
        r = lambda q: np.sqrt(c) * self._mean(q)
        diagonal = lambda q: c * self._moments(q, q, q)[0]
        kappa, beta = self._moments(qa, qb, gram)
        K, Ka, Kb, mu_a, mu_b = c * kappa, diagonal(qa), diagonal(qb), r(qa), r(qb)
        stream, dots = [K], [beta]
        for _ in range(self.cfg.network.depth - 1):
            kappa, beta = self._moments(Ka, Kb, K)
            ra, rb = r(Ka), r(Kb)
            K = K + b * (mu_a * rb + ra * mu_b) + b * b * c * kappa
            Ka, Kb = (Kx + 2 * b * mu * rx + b * b * diagonal(Kx) for Kx, mu, rx in ((Ka, mu_a, ra), (Kb, mu_b, rb)))
            mu_a, mu_b = mu_a + b * ra, mu_b + b * rb
            stream.append(K)
            dots.append(beta)
        theta, P = K.copy(), np.ones_like(K)
        for layer in range(len(stream) - 1, 0, -1):       # the residual layers, top down
            theta = theta + b * b * c * P * dots[layer] * stream[layer - 1]
            P = P * (1 + b * b * c * dots[layer])
        return K, theta + c * P * dots[0] * gram
