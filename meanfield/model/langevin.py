"""Mean-field Langevin dynamics: temperature schedules, entropy, free energy, the Gibbs fixed point.

With noise, particle i moves as d theta_i = -grad V_mu(theta_i) dt + sqrt(2 T) dB_i, where
V_mu(theta) = (1 / (alpha m s(m))) mean_j r_j phi(theta, x_j) + lam |theta|^2 / 2 is the first
variation of the regularised risk (r_j the loss derivative at f(x_j), phi(theta, x) = a sigma(w.x)),
plus V(theta) + (1/m) sum_j W(theta, theta_j) for the energy terms of ``energy.py``.
Its law mu follows the Wasserstein gradient flow of the free energy

    F(mu) = R / (alpha^2 m^2 s(m)^2) + lam E_mu|theta|^2 / 2 + E_mu V + (1/2) E_{mu x mu} W - T H(mu)

(for mean-field scaling with alpha = 1: R + lam E|theta|^2/2 + T E log mu), whose minimiser is the
fixed point of mu -> p_mu, the proximal Gibbs measure p_mu ~ exp(-V_mu / T). KL(mu || p_mu)
is estimated in any dimension (entropy by k nearest neighbours, log Z_mu by importance sampling
from N(0, T / lam)); T KL(mu || p_mu) bounds F(mu) - min F (Nitanda, Wu & Suzuki 2022).
"""
from __future__ import annotations

import math

import numpy as np

from ..config import FlowConfig
from . import energy


def temperature(flow: FlowConfig, t) -> np.ndarray:
    """The temperature schedule at times t (array): constant, log, power or piecewise constant."""
    t = np.asarray(t, dtype=float)
    tau = flow.temperature
    if flow.schedule == "log":
        return tau / np.log(np.e + t)
    if flow.schedule == "power":
        return tau / (1.0 + t) ** flow.schedule_power
    if flow.schedule == "piecewise":
        values = np.asarray(flow.schedule_values)
        return values[np.searchsorted(np.asarray(flow.schedule_times), t, side="right")]
    return np.full(t.shape, tau)


def entropy(points: np.ndarray, k: int = 5) -> float:
    """Kozachenko–Leonenko estimate of the differential entropy of the law of ``points`` (N, p):

    H = psi(N) - psi(k) + log V_p + (p / N) sum_i log eps_i, eps_i the distance to the k-th
    nearest neighbour and V_p the volume of the unit ball. Bias and spread on Gaussians (tested):
    |bias| < 0.05 nats per dimension at N = 2000, k = 5, p <= 5; standard deviation ~ 0.03 p.
    """
    from scipy.spatial import cKDTree
    from scipy.special import digamma, gammaln

    points = np.asarray(points, dtype=float)
    n, p = points.shape
    if n <= k:
        raise ValueError(f"entropy needs more than k = {k} points; got {n}")
    distances, _ = cKDTree(points).query(points, k=k + 1)
    eps = distances[:, k]
    if np.any(eps <= 0):
        raise ValueError("entropy needs distinct points: some particles coincide")
    log_ball = p / 2 * math.log(math.pi) - gammaln(p / 2 + 1)
    return float(digamma(n) - digamma(k) + log_ball + p * np.mean(np.log(eps)))


def interaction(points: np.ndarray, problem, residuals: np.ndarray) -> np.ndarray:
    """The data part of V_mu at the points (S, d + 1): (1/(alpha m s)) mean_j r_j a sigma(w . x_j)."""
    from .twolayer import activation

    net = problem.cfg.network
    d = net.d
    if len(residuals) == 0:
        return np.zeros(len(points))
    features = activation(net.activation, points[:, :d] @ problem.X.T, net.activation_params)    # (S, n)
    return problem.vel_scale * points[:, d] * (features @ residuals) / len(residuals)


def free_energy(problem, points: np.ndarray, objective: float, temperature_now: float, k: int = 5) -> dict:
    """entropy H(mu) of the particles' trained coordinates ``points`` and
    F(mu) = (time_factor / m) J - T H, J the objective (observables.py) and T the current temperature."""
    from .scaling import time_factor

    net = problem.cfg.network
    H = entropy(points, k)
    scale = time_factor(net.m, net.scaling, net.alpha) / net.m
    return {"entropy": H, "free_energy": scale * objective - temperature_now * H}


def _log_kernel_sums(points: np.ndarray, sq: np.ndarray, theta: np.ndarray, h: float) -> np.ndarray:
    """log sum_i exp(-|x - theta_i|^2 / (2 h^2)) at every point x (S, p) (sq: their squared norms),
    in chunks of 2000 points (memory 2000 x m) and in place (a quarter of scipy's logsumexp time)."""
    out, norms = np.empty(len(points)), np.sum(theta ** 2, axis=1)
    for c in range(0, len(points), 2000):
        E = points[c:c + 2000] @ theta.T
        E *= 2.0
        E -= sq[c:c + 2000, None]
        E -= norms
        E /= 2 * h * h
        top = E.max(axis=1)
        E -= top[:, None]
        np.exp(E, out=E)
        out[c:c + 2000] = np.log(E.sum(axis=1)) + top
    return out


def gibbs_gap(problem, theta: np.ndarray, residuals: np.ndarray, temperature_now: float,
              samples: int = 20_000, seed: int = 0, k: int = 5) -> float:
    """T KL(mu || p_mu) with p_mu ~ exp(-V_mu / T): an upper bound on F(mu) - min F.

    KL = -H(mu) + E_mu[V_mu] / T + log Z_mu, with Z_mu = int exp(-V_mu / T) by importance
    sampling from an equal mixture of N(0, T/lam) and a Gaussian kernel density on the particles
    (near the fixed point mu ~ p_mu, the particles are the right proposal; the prior keeps the
    tails: sampling from the prior alone biases log Z down at low T).
    """
    from scipy.special import logsumexp

    lam, T = problem.cfg.flow.lam, temperature_now
    m, p = theta.shape
    rng = np.random.default_rng(seed)
    prior_sd = math.sqrt(T / lam)
    h = float(np.mean(np.std(theta, axis=0))) * m ** (-1.0 / (p + 4))          # Silverman-like bandwidth
    half = samples // 2
    proposals = np.vstack([rng.standard_normal((half, p)) * prior_sd,
                           theta[rng.integers(0, m, samples - half)] + h * rng.standard_normal((samples - half, p))])
    sq = np.sum(proposals ** 2, axis=1)
    log_prior = -sq / (2 * prior_sd ** 2) - p / 2 * math.log(2 * math.pi * prior_sd ** 2)
    log_kde = _log_kernel_sums(proposals, sq, theta, h) - math.log(m) - p / 2 * math.log(2 * math.pi * h * h)
    log_q = np.logaddexp(log_prior, log_kde) - math.log(2.0)
    flow = problem.cfg.flow
    log_target = -(interaction(proposals, problem, residuals) + lam * sq / 2
                   + energy.first_variation(proposals, theta, flow)) / T
    log_z = float(logsumexp(log_target - log_q) - math.log(samples))
    mean_v = float(np.mean(interaction(theta, problem, residuals) + lam * np.sum(theta ** 2, axis=1) / 2
                           + energy.first_variation(theta, theta, flow)))
    kl = -entropy(theta, k) + mean_v / T + log_z
    return T * kl


def gibbs_samples(problem, theta: np.ndarray, residuals: np.ndarray, temperature_now: float,
                  size: int, seed: int = 0) -> np.ndarray:
    """``size`` approximate samples of p_mu (importance resampling from N(0, T / lam)), (size, d + 1)."""
    lam, T = problem.cfg.flow.lam, temperature_now
    rng = np.random.default_rng(seed)
    proposals = rng.standard_normal((40 * size, theta.shape[1])) * math.sqrt(T / lam)
    log_w = -(interaction(proposals, problem, residuals)
              + energy.first_variation(proposals, theta, problem.cfg.flow)) / T
    weights = np.exp(log_w - log_w.max())
    return proposals[rng.choice(len(proposals), size=size, p=weights / weights.sum())]
