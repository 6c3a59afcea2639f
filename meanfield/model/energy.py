"""The flow's energy beyond the risk: external potentials V and pair interactions W.

The particles follow the Wasserstein gradient flow of

    F(mu) = R(mu) + lam E_mu |theta|^2 / 2 + E_mu V + (1/2) E_{mu x mu} W - T H(mu),

so particle i moves with drift -grad V(theta_i) - (1/m) sum_j grad_1 W(theta_i, theta_j) besides
the risk's (only its trained coordinates move: the drift is masked). Weight decay is ``flow.lam``
(its drift is fused into the network's kernels); ``[flow.potential]`` and ``[flow.interaction]``
add one term each. Every term is an entry of a registry with a code fixed forever (the kernels in
``_kernels.energy_drift`` switch on it), its value and its gradient in plain NumPy (the kernels'
readable twins, written from the definition: the interaction's over all pairs, m x m x p).

Potentials (``flow.potential.kind``), theta in R^p with p = d + 1:
- ``quadratic``: V = theta . A theta / 2, A = ``matrix`` (p x p, symmetric): anisotropic
  confinement, an Ornstein–Uhlenbeck process with noise;
- ``quartic``: V = c |theta|^4 / 4, c = ``strength``;
- ``double_well``: V = h sum_k ((theta_k / c)^2 - 1)^2, h = ``depth`` (the barrier height of each
  coordinate), c = ``center`` (the wells at theta_k = ±c).
Interactions (``flow.interaction.kind``), J = ``strength``:
- ``inner``: W = -J theta . theta' (Curie–Weiss: J > 0 aligns the particles);
- ``quadratic``: W = J |theta - theta'|^2 / 2 (aggregation: drift -J (theta_i - mean theta));
- ``gaussian``: W = J exp(-|theta - theta'|^2 / (2 h^2)), h = ``bandwidth`` (J > 0 repels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Term:
    """One kind of potential or interaction: ``value`` and ``gradient`` in NumPy (the readable
    twins: the interaction's forms the m x m x p pair array), ``code`` fixed forever."""

    name: str
    code: int
    value: Callable        # potential: (theta (m, p), cfg) -> V (m,); interaction: (theta, theta', cfg) -> W (m, m')
    # potential: (theta, cfg) -> grad V (m, p); interaction: -> grad_1 W(theta_i, theta_j) (m, m, p)
    gradient: Callable


def _differences(theta):
    return theta[:, None, :] - theta[None, :, :]                         # (m, m, p): theta_i - theta_j


def _squared_distances(theta, other):
    return np.sum((theta[:, None, :] - other[None, :, :]) ** 2, axis=2)


def _double_well_gradient(theta, cfg):
    u = theta / cfg.center
    return 4.0 * cfg.depth * u * (u * u - 1.0) / cfg.center


def _gaussian_gradient(theta, cfg):
    diff = _differences(theta)
    weight = np.exp(-np.sum(diff ** 2, axis=2) / (2 * cfg.bandwidth ** 2))
    return -cfg.strength / cfg.bandwidth ** 2 * diff * weight[:, :, None]


POTENTIALS = {t.name: t for t in (
    Term("none", 0, lambda theta, cfg: np.zeros(len(theta)), lambda theta, cfg: np.zeros_like(theta)),
    Term("quadratic", 1,
         lambda theta, cfg: 0.5 * np.einsum("ik,kl,il->i", theta, np.asarray(cfg.matrix), theta),
         lambda theta, cfg: theta @ np.asarray(cfg.matrix).T),
    Term("quartic", 2, lambda theta, cfg: cfg.strength * np.sum(theta ** 2, axis=1) ** 2 / 4,
         lambda theta, cfg: cfg.strength * np.sum(theta ** 2, axis=1, keepdims=True) * theta),
    Term("double_well", 3,
         lambda theta, cfg: cfg.depth * np.sum(((theta / cfg.center) ** 2 - 1.0) ** 2, axis=1), _double_well_gradient),
)}

INTERACTIONS = {t.name: t for t in (
    Term("none", 0, lambda theta, other, cfg: np.zeros((len(theta), len(other))),
         lambda theta, cfg: np.zeros((len(theta), len(theta), theta.shape[1]))),
    Term("inner", 1, lambda theta, other, cfg: -cfg.strength * theta @ other.T,
         lambda theta, cfg: np.broadcast_to(-cfg.strength * theta[None, :, :], (len(theta),) + theta.shape)),
    Term("quadratic", 2, lambda theta, other, cfg: cfg.strength * _squared_distances(theta, other) / 2,
         lambda theta, cfg: cfg.strength * _differences(theta)),
    Term("gaussian", 3,
         lambda theta, other, cfg: cfg.strength * np.exp(-_squared_distances(theta, other) / (2 * cfg.bandwidth ** 2)),
         _gaussian_gradient),
)}


def active(flow) -> bool:
    """True when the flow has a potential or an interaction term."""
    return flow.potential.kind != "none" or flow.interaction.kind != "none"


def kernel_form(flow, p: int) -> tuple:
    """The terms as ``_kernels.energy_drift`` takes them: (potential code, coefficients, matrix
    (p, p) or (0, 0), interaction code, [J, h])."""
    pot, inter = flow.potential, flow.interaction
    coef = {"quartic": [pot.strength], "double_well": [pot.depth, pot.center]}.get(pot.kind, [0.0])
    matrix = np.ascontiguousarray(pot.matrix, dtype=np.float64) if pot.kind == "quadratic" else np.zeros((0, 0))
    return (POTENTIALS[pot.kind].code, np.array(coef, dtype=np.float64), matrix,
            INTERACTIONS[inter.kind].code, np.array([inter.strength, inter.bandwidth], dtype=np.float64))


def _mean(values, weights, axis):
    """The mean over ``axis`` (particles), weighted by omega when given."""
    return np.mean(values, axis=axis) if weights is None else np.tensordot(values, weights, axes=([axis], [0]))


def drift(theta: np.ndarray, flow, mask: np.ndarray, weights=None) -> np.ndarray:
    """The terms' drift, mask * (-grad V(theta_i) - (1/m) sum_j grad_1 W(theta_i, theta_j)), (m, p)
    (1/m is omega_j for weighted particles): the NumPy twin of ``_kernels.energy_drift``."""
    pair = INTERACTIONS[flow.interaction.kind].gradient(theta, flow.interaction)          # (m, m, p)
    return -mask * (POTENTIALS[flow.potential.kind].gradient(theta, flow.potential) + _mean(pair, weights, 1))


ROWS = 512        # rows of the m x m interaction matrix formed at once


def interaction_energy(theta: np.ndarray, flow, weights=None) -> float:
    """(1 / (2 m^2)) sum_ij W(theta_i, theta_j) (omega_i omega_j for 1/m^2 with weights): through the
    mean for inner (-J |E theta|^2 / 2) and quadratic (J (E|theta|^2 - |E theta|^2) / 2), else by
    pair sums in blocks of ROWS rows."""
    term, m = INTERACTIONS[flow.interaction.kind], len(theta)
    if term.name == "none":
        return 0.0
    w = np.full(m, 1.0 / m) if weights is None else weights
    J, mean = flow.interaction.strength, w @ theta
    if term.name == "inner":
        return float(-0.5 * J * mean @ mean)
    if term.name == "quadratic":
        return float(0.5 * J * (w @ np.sum(theta ** 2, axis=1) - mean @ mean))
    return 0.5 * sum(float(w[lo:lo + ROWS] @ term.value(theta[lo:lo + ROWS], theta, flow.interaction) @ w)
                     for lo in range(0, m, ROWS))


def mean_energy(theta: np.ndarray, flow, weights=None) -> float:
    """E_mu V + (1/2) E_{mu x mu} W of the particles' (weighted) empirical measure."""
    return float(_mean(POTENTIALS[flow.potential.kind].value(theta, flow.potential), weights, 0)) \
        + interaction_energy(theta, flow, weights)


def first_variation(points: np.ndarray, theta: np.ndarray, flow) -> np.ndarray:
    """V(x) + (1/m) sum_j W(x, theta_j) at the points x (S, p), the terms' part of the first variation of F."""
    term = INTERACTIONS[flow.interaction.kind]
    out = POTENTIALS[flow.potential.kind].value(points, flow.potential)
    if term.name != "none":
        out = out + np.concatenate([np.mean(term.value(points[lo:lo + ROWS], theta, flow.interaction), axis=1)
                                    for lo in range(0, len(points), ROWS)])
    return out
