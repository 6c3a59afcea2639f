"""Initial particle laws.

Particle i is built from row i of one standard-normal block of shape (m, d + 1), so the first m
particles of a wider run (same seed) are the particles of the m-particle run: runs of different
widths are coupled. With ``symmetric``, particle 2i + 1 is the mirror (w_{2i}, -a_{2i}).
"""
from __future__ import annotations

import numpy as np

from ..config import InitConfig, NetworkConfig


def initial_particles(network: NetworkConfig, init: InitConfig, rng: np.random.Generator) -> np.ndarray:
    """Draw theta_0, shape (m, d + 1), columns [w | a], scaled overall by init.tau."""
    m, d = network.m, network.d
    count = m // 2 if init.symmetric else m
    z = rng.standard_normal((count, d + 1))
    w = z[:, :d]
    if init.w_law == "sphere":
        w = w / np.linalg.norm(w, axis=1, keepdims=True)
    w = init.w_scale * w
    sign = np.where(z[:, d] >= 0.0, 1.0, -1.0)
    if init.a_law == "gaussian":
        a = init.a_scale * z[:, d]
    elif init.a_law == "rademacher":
        a = init.a_scale * sign
    elif init.a_law == "zero":
        a = np.zeros(count)
    elif init.a_law == "constant":
        a = np.full(count, init.a_scale)
    else:  # balanced: |a| = |w|
        a = np.linalg.norm(w, axis=1) * sign
    theta = init.tau * np.hstack([w, a[:, None]])
    if init.symmetric:
        mirror = theta.copy()
        mirror[:, d] *= -1.0
        theta = np.stack([theta, mirror], axis=1).reshape(m, d + 1)
    return np.ascontiguousarray(theta)
