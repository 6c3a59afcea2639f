"""The registries of activations and losses: one entry per function, found by name.

Each entry has a ``code``, an integer fixed forever: the compiled kernels (``_kernels``) switch
on these codes, written there as literals, so neither reordering nor extending a registry can
make a cached kernel compute another function; a test checks that the kernels' codes are these.
``value`` and ``derivative`` are the readable NumPy twins of the kernels' scalar functions, on
arrays of any shape; ``params`` is ``network.activation_params`` = [leaky_slope, t1, t2, s1, s2].
``population`` says how the exact population risk (Gaussian inputs) is computed: "closed form"
(compiled, with second partials), "orthant" (exact through bivariate normal orthant
probabilities, NumPy only), "quadrature" (Gauss–Hermite, smooth activations) or None (not offered).

Adding an activation: an entry here, its scalar twin in ``_kernels._act`` / ``_dact`` (all
Numba code lives there, where the cache can see it), and a parameter of the tests.
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
    the kinks of piecewise-linear ones, where it is a Dirac)."""

    name: str
    code: int
    value: Callable
    derivative: Callable
    population: str | None
    homogeneity: int | None = None         # k with sigma(c z) = c^k sigma(z) for c > 0 (k = 1: a^2 - |w|^2 is conserved)
    second: Callable = lambda z, p: np.zeros_like(z, dtype=float)


@dataclass(frozen=True)
class Loss:
    """Pointwise loss of the prediction f against the label y, and its first two derivatives in f."""

    name: str
    code: int
    value: Callable
    derivative: Callable
    second: Callable


ACTIVATIONS = {a.name: a for a in (
    Activation("relu", 0, lambda z, p: np.maximum(z, 0.0), lambda z, p: (z > 0).astype(float), "closed form", 1),
    Activation("leaky_relu", 1, lambda z, p: np.where(z > 0, z, p[0] * z), lambda z, p: np.where(z > 0, 1.0, p[0]),
               "closed form", 1),
    Activation("tanh", 2, lambda z, p: np.tanh(z), lambda z, p: 1.0 - np.tanh(z) ** 2, "quadrature",
               second=lambda z, p: -2.0 * np.tanh(z) * (1.0 - np.tanh(z) ** 2)),
    Activation("sigmoid", 3, lambda z, p: expit(z), lambda z, p: expit(z) * (1.0 - expit(z)), "quadrature",
               second=lambda z, p: expit(z) * (1.0 - expit(z)) * (1.0 - 2.0 * expit(z))),
    Activation("erf", 4, lambda z, p: _erf(z), lambda z, p: 2.0 / np.sqrt(np.pi) * np.exp(-z * z), "closed form",
               second=lambda z, p: -4.0 / np.sqrt(np.pi) * z * np.exp(-z * z)),
    Activation("softplus", 5, lambda z, p: np.logaddexp(0.0, z), lambda z, p: expit(z), "quadrature",
               second=lambda z, p: expit(z) * (1.0 - expit(z))),
    Activation("quadratic", 6, lambda z, p: z * z, lambda z, p: 2.0 * z, "closed form", 2,
               second=lambda z, p: np.full_like(z, 2.0, dtype=float)),
    Activation("linear", 7, lambda z, p: np.asarray(z, dtype=float).copy(), lambda z, p: np.ones_like(z, dtype=float),
               "closed form", 1),
    Activation("piecewise_linear", 8, _pwl, _pwl_derivative, "orthant"),
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
