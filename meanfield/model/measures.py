"""Particle measures and their projections.

The mean-field measure of a run is mu = (1/m) sum_i delta_{theta_i}. For a positively
1-homogeneous activation (ReLU), a_i sigma(w_i . x) = sign(a_i) |a_i| |w_i| sigma(w_i/|w_i| . x),
so the predictor depends on the particles only through their 2-homogeneous projection: mass
|a_i| |w_i| (signed by a_i) at the direction w_i / |w_i| on the sphere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParticleMeasure:
    """sum_i weights_i delta_{points_i}: points (N, k), weights (N,) non-negative, summing to 1."""

    points: np.ndarray
    weights: np.ndarray

    @classmethod
    def uniform(cls, points) -> "ParticleMeasure":
        points = np.asarray(points, dtype=float)
        points = points[:, None] if points.ndim == 1 else points
        return cls(points, np.full(len(points), 1.0 / len(points)))

    def marginal(self, coordinates) -> "ParticleMeasure":
        """The image under the projection on the given coordinates (a list of column indices)."""
        return ParticleMeasure(self.points[:, list(coordinates)], self.weights)


def lifted(theta: np.ndarray) -> ParticleMeasure:
    """The mean-field measure (1/m) sum_i delta_{theta_i} on R^(d + 1)."""
    return ParticleMeasure.uniform(theta)


def sphere_measure(theta: np.ndarray) -> ParticleMeasure:
    """The 2-homogeneous projection as a probability measure on the sphere: directions w_i/|w_i|
    weighted by |a_i| |w_i| (normalised). Particles with no mass are dropped."""
    directions, masses = homogeneous_projection(theta)
    keep = np.abs(masses) > 0
    return ParticleMeasure(directions[keep], np.abs(masses[keep]) / np.sum(np.abs(masses[keep])))


def teacher_measure(teacher: np.ndarray) -> ParticleMeasure:
    """The teacher [u | c] on the sphere: directions u_j/|u_j| weighted by |c_j| |u_j| (normalised)."""
    return sphere_measure(teacher)


def gaussian_measure(mean, cov, size: int, rng: np.random.Generator) -> ParticleMeasure:
    """``size`` samples of N(mean, cov) as a uniform particle measure."""
    return ParticleMeasure.uniform(rng.multivariate_normal(np.atleast_1d(mean), np.atleast_2d(cov), size))


def homogeneous_projection(theta: np.ndarray, scale: float = 1.0):
    """(directions (m, d), signed masses (m,)): w_i/|w_i| and scale * a_i |w_i|.

    With scale = alpha s(m) (the output scale) the masses sum, per direction, to the output
    weights of an equivalent network: a teacher neuron c sigma(u . x) is mass c at u / |u|.
    """
    W, a = theta[:, :-1], theta[:, -1]
    norms = np.linalg.norm(W, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        directions = np.where(norms[:, None] > 0, W / norms[:, None], 0.0)
    return directions, scale * a * norms


def cone_masses(theta: np.ndarray, centres: np.ndarray, angle_degrees: float, scale: float = 1.0) -> np.ndarray:
    """Signed mass of the projection within ``angle_degrees`` of each centre direction, shape (k,).

    centres: (k, d) directions (normalised here); a particle within the angle of several centres
    counts for each.
    """
    directions, masses = homogeneous_projection(theta, scale)
    centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    inside = directions @ centres.T >= np.cos(np.radians(angle_degrees))        # (m, k)
    return masses @ inside


def mass_summary(theta: np.ndarray, teacher: np.ndarray, angle_degrees: float, scale: float) -> dict:
    """total_mass = sum |mass_i|, negative_mass = sum of |mass_i| over a_i < 0, cone_mass = signed
    mass within the angle of some teacher direction (-> sum_j c_j at a sparse fit of a positive teacher)."""
    directions, masses = homogeneous_projection(theta, scale)
    centres = teacher[:, :-1] / np.linalg.norm(teacher[:, :-1], axis=1, keepdims=True)
    inside = np.any(directions @ centres.T >= np.cos(np.radians(angle_degrees)), axis=1)
    return {"total_mass": float(np.sum(np.abs(masses))),
            "negative_mass": float(np.sum(np.abs(masses[masses < 0]))),
            "cone_mass": float(np.sum(masses[inside]))}
