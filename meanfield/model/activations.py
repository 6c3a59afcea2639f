"""The registries of activations and losses: one entry per function, found by name.

Each entry has a ``code``, an integer fixed forever: the compiled kernels (``_kernels``) switch
on these codes, written there as literals, so neither reordering nor extending a registry can
make a cached kernel compute another function; a test checks that the kernels' codes are these.
``value`` and ``derivative`` are the readable NumPy twins of the kernels' scalar functions, on
arrays of any shape; ``params`` is ``network.activation_params`` = [leaky_slope, t1, t2, s1, s2].
``population`` says how the exact population risk (Gaussian inputs) is computed: "closed form"
(compiled, with second partials), "orthant" (exact through bivariate normal orthant
probabilities, NumPy only), "quadrature" (Gauss–Hermite, smooth activations) or None (not offered);
an activation owns its kernel kappa(w, v) = E sigma(w.x) sigma(v.x) (with A, B: the gradient's
coefficients), its mean E sigma(w.x) and its kernel's second partials, written here beside it.

Adding an activation: an entry here (with its kernels if it has closed forms) and its scalar twin
in ``_kernels._act`` / ``_dact`` (all Numba code lives there, where the cache can see it; and its
compiled pair kernel in ``_kernels._pair`` for the compiled population step): two files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def expit(z):
    """The logistic function 1 / (1 + exp(-z)), overflow-free."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def _erf(z):
    from scipy.special import erf  # scipy.special only when erf is used

    return erf(z)


def _pwl(z, params):
    t1, t2, s1, s2 = params[1:5]
    return s1 + (s2 - s1) * np.clip((z - t1) / (t2 - t1), 0.0, 1.0)


def _pwl_derivative(z, params):
    t1, t2, s1, s2 = params[1:5]
    return np.where((z > t1) & (z <= t2), (s2 - s1) / (t2 - t1), 0.0)


@dataclass(frozen=True)
class Activation:
    """sigma, sigma' (at a kink: the left derivative, e.g. 0 for ReLU at 0) and sigma'' (0 between
    the kinks of piecewise-linear ones, where it is a Dirac), and what the exact population risk
    needs of it: ``kernel(q1, q2, rho, params) -> (kappa, A, B)``, ``mean(q, params)`` and the
    second partials ``kernel_second`` (or None), ``kinked``: its kernel is not twice
    differentiable at parallel pairs; ``transcendental``: evaluated by exp, tanh or erf;
    ``linear_relu(params) -> (l, r)`` when sigma(z) = l z + r relu(z), which gives exact kernels
    between two such activations of different parameters (``cross_terms``)."""

    name: str
    code: int
    value: Callable
    derivative: Callable
    population: str | None
    # k with sigma(c z) = c^k sigma(z) for c > 0 (k = 1: a^2 - |w|^2 is conserved)
    homogeneity: int | None = None
    second: Callable = lambda z, p: np.zeros_like(z, dtype=float)
    kernel: Callable | None = None
    mean: Callable | None = None
    kernel_second: Callable | None = None
    kinked: bool = False
    transcendental: bool = False          # evaluated by exp, tanh or erf (a step's cost: model.diagnostics)
    linear_relu: Callable | None = None   # (l, r) with sigma(z) = l z + r relu(z): relu, leaky_relu, linear


@dataclass(frozen=True)
class Loss:
    """Pointwise loss of the prediction f against the label y, and its first two derivatives in f."""

    name: str
    code: int
    value: Callable
    derivative: Callable
    second: Callable



# --- population kernels: kappa(w, v) = E sigma(w.x) sigma(v.x) for x ~ N(0, I) as F(q1, q2, rho) ---
# Each returns (kappa, A, B) elementwise, A = 2 dF/dq1 and B = dF/drho; ``mean`` (E sigma(w.x), the
# coefficient of w in its gradient) in q = |w|^2; ``second`` (F11, F12, F13, F33). See
# ``population.py`` for how the risk is built from them.

def _relu_terms(q1, q2, rho):
    """kappa = (sqrt(q1 q2 - rho^2) + (pi - t) rho) / (2 pi), t the angle;
    A = sqrt(q1 q2 - rho^2) / (2 pi q1), B = (pi - t) / (2 pi)."""
    cross = np.sqrt(np.clip(q1 * q2 - rho * rho, 0.0, None))
    t = np.arctan2(cross, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        A = np.where(q1 > 0, cross / (2 * np.pi * q1), 0.0)
    return (cross + (np.pi - t) * rho) / (2 * np.pi), A, (np.pi - t) / (2 * np.pi)


def _leaky_terms(q1, q2, rho, params):
    """sigma = s z + (1 - s) relu(z): kappa = s^2 rho + s (1 - s) rho + (1 - s)^2 kappa_relu, using
    E[z relu(z')] = rho / 2."""
    s = params[0]
    k, A, B = _relu_terms(q1, q2, rho)
    return (s * rho + (1 - s) ** 2 * k, (1 - s) ** 2 * A, s + (1 - s) ** 2 * B)


def cross_terms(first: tuple, second: tuple, q1, q2, rho):
    """(kappa, A, B) of sigma_1(z) = l1 z + r1 relu(z) against sigma_2 = l2 z + r2 relu(z) (``first``,
    ``second``: (l, r)): kappa = l1 l2 rho + (l1 r2 + r1 l2) rho / 2 + r1 r2 kappa_relu, using
    E[u relu(v)] = rho / 2; A = r1 r2 A_relu, B = l1 l2 + (l1 r2 + r1 l2) / 2 + r1 r2 B_relu."""
    (l1, r1), (l2, r2) = first, second
    k, A, B = _relu_terms(q1, q2, rho)
    mixed = l1 * r2 + r1 * l2
    return l1 * l2 * rho + mixed * rho / 2 + r1 * r2 * k, r1 * r2 * A, l1 * l2 + mixed / 2 + r1 * r2 * B


def _erf_terms(q1, q2, rho, params):
    g1, g2 = 1 + 2 * q1, 1 + 2 * q2
    u = np.clip(2 * rho / np.sqrt(g1 * g2), -1.0, 1.0)
    inv = 2 / (np.pi * np.sqrt(np.clip(1 - u * u, 1e-300, None)))
    return 2 / np.pi * np.arcsin(u), inv * (-2 * u / g1), inv * 2 / np.sqrt(g1 * g2)


def _phi(z):
    """The standard normal density."""
    return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def _ratio(num, den):
    """num / den elementwise, the limit sign(num) inf where den = 0 (0 where both are 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.where(num != 0, np.sign(num) * np.inf, 0.0))


def _minus_r(y, x, r):
    """y - r x, written (y - x) + (1 - r) x for r >= 0 and (y + x) - (1 + r) x below, so that no
    rounding of r x cancels near r = +-1 (1 - r and 1 + r are exact there)."""
    return np.where(r >= 0, (y - x) + (1 - r) * x, (y + x) - (1 + r) * x)


def orthant(h, k, r):
    """P(X > h, Y > k) for standard normals X, Y of correlation r, elementwise: Owen's formula
    Phi2(x, y; r) = (Phi(x) + Phi(y)) / 2 - T(x, (y - r x) / (x s)) - T(y, (x - r y) / (y s)) - b / 2
    at (x, y) = (-h, -k), s = sqrt(1 - r^2), b = 1 where xy < 0 or (xy = 0 and x + y < 0), with the
    limits at x = y = 0 and |r| = 1 written out."""
    from scipy.special import ndtr, owens_t

    x, y, r = np.broadcast_arrays(-np.asarray(h, dtype=float), -np.asarray(k, dtype=float), np.asarray(r, dtype=float))
    s = np.sqrt(np.clip((1 - r) * (1 + r), 0.0, None))
    lower = (0.5 * (ndtr(x) + ndtr(y)) - owens_t(x, _ratio(_minus_r(y, x, r), x * s))
             - owens_t(y, _ratio(_minus_r(x, y, r), y * s)) - 0.5 * ((x * y < 0) | ((x * y == 0) & (x + y < 0))))
    lower = np.where((x == 0) & (y == 0), 0.25 + np.arcsin(np.clip(r, -1.0, 1.0)) / (2 * np.pi), lower)
    return np.where(r >= 1, ndtr(np.minimum(x, y)), np.where(r <= -1, np.clip(ndtr(x) - ndtr(-y), 0.0, None), lower))


def _pwl_terms(q1, q2, rho, params):
    """kappa, A, B of sigma = s1 + slope [(z - t1)_+ - (z - t2)_+]: with U = w.x, V = w'.x of
    standard deviations sd1, sd2 and correlation r, E[(U - a)_+ (V - b)_+] = sd1 sd2 g(a / sd1,
    b / sd2) and g(al, be) = (r + al be) L - be phi(al) Phi(za) - al phi(be) Phi(zb)
    + s^2 phi2(al, be; r), L = P(X > al, Y > be) (``orthant``), s = sqrt(1 - r^2),
    za = (r al - be) / s, zb = (r be - al) / s; B = slope^2 sum +-L (Price's theorem) and
    A = 2 d kappa / dq1 = slope^2 sum +-(sd2 / sd1) phi(al) [s phi(za) + (r al - be) Phi(za)]
    (the heat equation d/dq1 = (1/2) d^2/dU^2), plus the one-point terms of s1. A neuron w = 0
    has U = 0: kappa = sigma(0) E sigma(V), A = 0 (A w = 0), B = sigma'(0) E sigma'(V)."""
    from scipy.special import ndtr

    t1, t2, s1, s2 = params[1:5]
    slope = (s2 - s1) / (t2 - t1)
    phi = _phi
    live = (q1 > 0) & (q2 > 0)
    sd1, sd2 = np.sqrt(np.where(live, q1, 1.0)), np.sqrt(np.where(live, q2, 1.0))
    r = np.clip(np.where(live, rho, 0.0) / (sd1 * sd2), -1.0, 1.0)
    s = np.sqrt((1 - r) * (1 + r))
    (m1, A1), (m2, _) = _pwl_mean(q1, params), _pwl_mean(q2, params)
    # the four knot pairs (t_i, t_j) at once, along a leading axis, with signs +, -, -, +
    sign = (slope * slope * np.array([1.0, -1.0, -1.0, 1.0])).reshape((4,) + (1,) * r.ndim)
    al = np.array([t1, t1, t2, t2]).reshape(sign.shape) / sd1
    be = np.array([t1, t2, t1, t2]).reshape(sign.shape) / sd2
    L = orthant(al, be, r)
    ra, rb = -_minus_r(be, al, r), -_minus_r(al, be, r)                   # r al - be, r be - al
    za, zb = _ratio(ra, s), _ratio(rb, s)
    spread = np.where(r >= 0, (al - be) ** 2 + 2 * (1 - r) * al * be, (al + be) ** 2 - 2 * (1 + r) * al * be)
    with np.errstate(divide="ignore", invalid="ignore"):
        quad = np.where(s > 0, s * np.exp(-spread / (2 * s * s)) / (2 * np.pi), 0.0)
    g = (r + al * be) * L - be * phi(al) * ndtr(za) - al * phi(be) * ndtr(zb) + quad
    kappa = s1 * s1 + s1 * (m1 - s1 + m2 - s1) + np.sum(sign * sd1 * sd2 * g, axis=0)
    A = s1 * A1 + np.sum(sign * sd2 / sd1 * phi(al) * (s * phi(za) + ra * ndtr(za)), axis=0)
    B = np.sum(sign * L, axis=0)
    slope0 = float(_pwl_derivative(np.zeros(1), params)[0])

    def mean_slope(q):                      # E sigma'(sqrt(q) G); sigma'(0) at q = 0
        sd = np.sqrt(np.where(q > 0, q, 1.0))
        return np.where(q > 0, slope * (ndtr(-t1 / sd) - ndtr(-t2 / sd)), slope0)
    # a zero neuron's U = 0 is independent of V: kappa = sigma(0) E sigma(V) = m1 m2
    return np.where(live, kappa, m1 * m2), np.where(live, A, 0.0), np.where(live, B, mean_slope(q1) * mean_slope(q2))


def _pwl_mean(q, params):
    """(E sigma(sqrt(q) G), 2 d/dq of it) for the piecewise-linear sigma: E (sqrt(q) G - t)_+ =
    sd phi(t / sd) - t Phi(-t / sd), whose q-derivative is phi(t / sd) / (2 sd)."""
    from scipy.special import ndtr

    t1, t2, s1, s2 = params[1:5]
    slope = (s2 - s1) / (t2 - t1)
    live = q > 0
    sd = np.sqrt(np.where(live, q, 1.0))
    phi = _phi
    ramp = lambda t: sd * phi(t / sd) - t * ndtr(-t / sd)
    value0 = float(_pwl(np.zeros(1), params)[0])
    return (np.where(live, s1 + slope * (ramp(t1) - ramp(t2)), value0),
            np.where(live, slope * (phi(t1 / sd) - phi(t2 / sd)) / sd, 0.0))


def _relu_mean(q):
    live = q > 0
    return np.sqrt(q / (2 * np.pi)), np.where(live, 1 / np.sqrt(2 * np.pi * np.where(live, q, 1.0)), 0.0)



PARALLEL_SIN2 = 1e-6       # kinked kernels: second partials only where sin^2(angle) of a pair is above this


def _kinked_second(q1, q2, rho, params, slope):
    """relu (slope 0) and leaky_relu: nan where the pair's sin^2(angle) = 1 - rho^2 / (q1 q2) is
    below PARALLEL_SIN2 (the kernel is not twice differentiable at parallel pairs, and q1 q2 - rho^2
    cancels to a relative error eps / sin^2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sin2 = np.where((q1 > 0) & (q2 > 0), 1 - rho * rho / (q1 * q2), 0.0)
        cross = np.where(sin2 >= PARALLEL_SIN2, np.sqrt(np.clip(q1 * q2 - rho * rho, 0.0, None)), np.nan)
        scale = (1 - slope) ** 2 / (2 * np.pi * cross)
        return (scale * (2 * rho * rho - q1 * q2) / (4 * q1 * q1), scale / 4, -scale * rho / (2 * q1), scale)


def _erf_second(q1, q2, rho, params):
    """F = h(u), h = (2/pi) arcsin, u = 2 rho / sqrt(g1 g2), g = 1 + 2 q: F_ab = h'' u_a u_b + h' u_ab."""
    g1, g2 = 1 + 2 * q1, 1 + 2 * q2
    u3 = 2 / np.sqrt(g1 * g2)
    u = u3 * rho
    h1 = 2 / (np.pi * np.sqrt(1 - u * u))
    h2 = h1 * u / (1 - u * u)
    u1 = -u / g1
    return (h2 * u1 * u1 + h1 * 3 * u / g1 ** 2, h2 * u1 * (-u / g2) + h1 * u / (g1 * g2),
            h2 * u1 * u3 - h1 * u3 / g1, h2 * u3 * u3)


def _zeros2(q, params):
    return np.zeros_like(q), np.zeros_like(q)


def _constant_second(rho, *values):
    """Second partials that are constants (linear and quadratic kernels), shaped like rho."""
    zero = np.zeros_like(rho)
    return tuple(zero + v for v in values)


ACTIVATIONS = {a.name: a for a in (
    Activation("relu", 0, lambda z, p: np.maximum(z, 0.0), lambda z, p: (z > 0).astype(float), "closed form", 1,
               kernel=lambda q1, q2, rho, p: _relu_terms(q1, q2, rho), mean=lambda q, p: _relu_mean(q),
               kernel_second=lambda q1, q2, rho, p: _kinked_second(q1, q2, rho, p, 0.0), kinked=True,
               linear_relu=lambda p: (0.0, 1.0)),
    Activation("leaky_relu", 1, lambda z, p: np.where(z > 0, z, p[0] * z), lambda z, p: np.where(z > 0, 1.0, p[0]),
               "closed form", 1, kernel=_leaky_terms, mean=lambda q, p: tuple((1 - p[0]) * t for t in _relu_mean(q)),
               kernel_second=lambda q1, q2, rho, p: _kinked_second(q1, q2, rho, p, p[0]), kinked=True,
               linear_relu=lambda p: (p[0], 1.0 - p[0])),
    Activation("tanh", 2, lambda z, p: np.tanh(z), lambda z, p: 1.0 - np.tanh(z) ** 2, "quadrature",
               second=lambda z, p: -2.0 * np.tanh(z) * (1.0 - np.tanh(z) ** 2), transcendental=True),
    Activation("sigmoid", 3, lambda z, p: expit(z), lambda z, p: expit(z) * (1.0 - expit(z)), "quadrature",
               second=lambda z, p: expit(z) * (1.0 - expit(z)) * (1.0 - 2.0 * expit(z)), transcendental=True),
    Activation("erf", 4, lambda z, p: _erf(z), lambda z, p: 2.0 / np.sqrt(np.pi) * np.exp(-z * z), "closed form",
               second=lambda z, p: -4.0 / np.sqrt(np.pi) * z * np.exp(-z * z), kernel=_erf_terms, mean=_zeros2,
               kernel_second=_erf_second, transcendental=True),
    Activation("softplus", 5, lambda z, p: np.logaddexp(0.0, z), lambda z, p: expit(z), "quadrature",
               second=lambda z, p: expit(z) * (1.0 - expit(z)), transcendental=True),
    Activation("quadratic", 6, lambda z, p: z * z, lambda z, p: 2.0 * z, "closed form", 2,
               second=lambda z, p: np.full_like(z, 2.0, dtype=float),
               kernel=lambda q1, q2, rho, p: (q1 * q2 + 2 * rho * rho, 2 * q2, 4 * rho),
               mean=lambda q, p: (q.copy(), np.full_like(q, 2.0)),
               kernel_second=lambda q1, q2, rho, p: _constant_second(rho, 0.0, 1.0, 0.0, 4.0)),
    Activation("linear", 7, lambda z, p: np.asarray(z, dtype=float).copy(), lambda z, p: np.ones_like(z, dtype=float),
               "closed form", 1, kernel=lambda q1, q2, rho, p: (rho.copy(), np.zeros_like(rho), np.ones_like(rho)),
               mean=_zeros2, kernel_second=lambda q1, q2, rho, p: _constant_second(rho, 0.0, 0.0, 0.0, 0.0),
               linear_relu=lambda p: (1.0, 0.0)),
    Activation("piecewise_linear", 8, _pwl, _pwl_derivative, "orthant", kernel=_pwl_terms, mean=_pwl_mean),
)}

LOSSES = {loss.name: loss for loss in (
    Loss("squared", 0, lambda f, y: 0.5 * (f - y) ** 2, lambda f, y: f - y, lambda f, y: np.ones_like(f)),
    Loss("logistic", 1, lambda f, y: np.logaddexp(0.0, -y * f), lambda f, y: -y * expit(-y * f),
         lambda f, y: y * y * expit(y * f) * expit(-y * f)),
)}


def activation(name: str) -> Activation:
    """The registered activation ``name``; ValueError naming the registered ones otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}: registered are {', '.join(ACTIVATIONS)}") from None


def loss(name: str) -> Loss:
    """The registered loss ``name``; ValueError naming the registered ones otherwise."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}: registered are {', '.join(LOSSES)}") from None
