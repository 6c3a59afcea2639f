"""Tangent kernels: empirical, their closed-form infinite-width limits, and the kernel flow.

Normalisation (docs/conventions.md): H_jk = (1/m) sum_i grad phi(theta_i, x_j) . grad phi(theta_i, x_k)
over the trained coordinates, phi(theta, x) = a sigma(w . x). In flow time the training
predictions obey du/dt = -(1/n) H r in every regime: the raw tangent kernel of f,
sum_i grad_i f(x) . grad_i f(x') = alpha^2 m s(m)^2 H, is multiplied by the time factor
1 / (alpha^2 m s(m)^2). ``tangent_kernel(..., raw=True)`` returns the raw one.

Shapes: X (n, d), Y (n', d); kernels (n, n'). Closed forms are for ReLU and w ~ N(0, w_scale^2 I).
"""
from __future__ import annotations

import numpy as np

from .config import NetworkConfig
from .model import activation, activation_derivative, train_mask
from .scaling import time_factor


# --- empirical kernels of the current particles -----------------------------------------------

NEURON_BLOCK = 4096      # neurons per block: no n x m array is formed at once


def tangent_kernel(theta, X, network: NetworkConfig, Y=None, raw: bool = False) -> np.ndarray:
    """H(theta) on inputs X (and Y), restricted to the coordinates that ``network.train`` moves.

    H = (1/m) [ (X Y^T) * (S'_X diag(a^2) S'_Y^T) + S_X S_Y^T ] with S = sigma(X W^T), S' = sigma',
    summed over blocks of NEURON_BLOCK neurons (memory n x block, never n x m).
    """
    Y = X if Y is None else Y
    m, p = theta.shape
    d = p - 1
    mask = train_mask(network.train, d)
    H = np.zeros((len(X), len(Y)))
    inner = X @ Y.T
    for lo in range(0, m, NEURON_BLOCK):
        W, a = theta[lo:lo + NEURON_BLOCK, :d], theta[lo:lo + NEURON_BLOCK, d]
        ZX, ZY = X @ W.T, Y @ W.T
        if mask[0]:
            dX = activation_derivative(network.activation, ZX, network.activation_params) * a
            dY = activation_derivative(network.activation, ZY, network.activation_params) * a
            H += inner * (dX @ dY.T)
        if mask[d]:
            H += activation(network.activation, ZX, network.activation_params) @ activation(
                network.activation, ZY, network.activation_params).T
    H /= m
    return H / time_factor(m, network.scaling, network.alpha) if raw else H


def nngp(theta, X, network: NetworkConfig, Y=None) -> np.ndarray:
    """Empirical NNGP (random-features) kernel (1/m) sum_i sigma(w_i . x) sigma(w_i . x').

    The covariance of the lazy network's output at initialisation when E a^2 = 1, and the
    tangent kernel when only the output layer trains.
    """
    Y = X if Y is None else Y
    d = theta.shape[1] - 1
    W = theta[:, :d]
    SX = activation(network.activation, X @ W.T, network.activation_params)
    SY = activation(network.activation, Y @ W.T, network.activation_params)
    return SX @ SY.T / theta.shape[0]


def lambda_min(H: np.ndarray) -> float:
    """Smallest eigenvalue of a symmetric kernel matrix."""
    return float(np.linalg.eigvalsh(0.5 * (H + H.T))[0])


# --- closed forms -----------------------------------------------------------------------------

def _angle(dot, sq_x, sq_y):
    """Angle in [0, pi] between vectors with inner products ``dot`` and squared norms sq_x, sq_y.

    atan2(sqrt(|x|^2 |y|^2 - (x.y)^2), x.y): exact (0) for identical vectors, where
    arccos(x.y / (|x||y|)) loses half the digits.
    """
    return np.arctan2(np.sqrt(np.clip(sq_x * sq_y - dot * dot, 0.0, None)), dot)


def _geometry(X, Y):
    """Norms |x| (n, 1), |y| (1, n') and angles theta_jk in [0, pi] (n, n')."""
    if Y is None:                      # norms from the Gram diagonal: angle exactly 0 there
        G = X @ X.T
        sq_x = np.diag(G)[:, None].copy()
        sq_y = sq_x.T
    else:
        G = X @ Y.T
        sq_x = np.sum(X * X, axis=1)[:, None]
        sq_y = np.sum(Y * Y, axis=1)[None, :]
    return np.sqrt(sq_x), np.sqrt(sq_y), _angle(G, sq_x, sq_y)


def _j0(angle):
    return np.pi - angle


def _j1(angle):
    return np.sin(angle) + (np.pi - angle) * np.cos(angle)


def arccos_kernel(X, Y=None, degree: int = 1) -> np.ndarray:
    """Cho & Saul's arc-cosine kernel k_n = (1/pi) |x|^n |y|^n J_n(theta), degree 0 or 1.

    k_n(x, y) = 2 E_w[step(w.x) step(w.y) (w.x)^n (w.y)^n] for w ~ N(0, I).
    """
    nx, ny, angle = _geometry(X, Y)
    if degree == 0:
        return _j0(angle) / np.pi
    if degree == 1:
        return nx * ny * _j1(angle) / np.pi
    raise ValueError(f"degree = {degree!r} is invalid: allowed is 0 or 1")


def h_infinity(X, Y=None) -> np.ndarray:
    """Du et al.'s H_inf: x.y E_w[1{w.x > 0} 1{w.y > 0}] = x.y (pi - theta) / (2 pi)."""
    return (X @ (X if Y is None else Y).T) * arccos_kernel(X, Y, 0) / 2


def relu_nngp(X, Y=None, w_scale: float = 1.0) -> np.ndarray:
    """E_w[relu(w.x) relu(w.y)] = w_scale^2 |x||y| J_1(theta) / (2 pi), w ~ N(0, w_scale^2 I)."""
    return w_scale ** 2 * arccos_kernel(X, Y, 1) / 2


def two_layer_ntk(X, Y=None, a_second_moment: float = 1.0, w_scale: float = 1.0,
                  train: str = "both") -> np.ndarray:
    """Infinite-width limit of ``tangent_kernel`` for ReLU, w ~ N(0, w_scale^2 I), E a^2 given.

    hidden: E[a^2] H_inf; output: the NNGP kernel; both: their sum.
    """
    H = np.zeros((len(X), len(X if Y is None else Y)))
    if train in ("both", "hidden"):
        H += a_second_moment * h_infinity(X, Y)
    if train in ("both", "output"):
        H += relu_nngp(X, Y, w_scale)
    return H


def deep_relu_kernels(X, depth: int, c_sigma: float = 2.0):
    """NNGP Sigma^(L) and NTK Theta^(L) of a fully-connected ReLU network with L hidden layers.

    Sigma^(0) = X X^T; for h = 1..L, with the 2x2 covariances of (u, v) ~ N(0, Sigma^(h-1)):
    Sigma^(h) = c_sigma E[relu(u) relu(v)], dot-Sigma^(h) = c_sigma E[step(u) step(v)];
    Theta^(L) = sum_{h=1}^{L+1} Sigma^(h-1) prod_{h'=h}^{L} dot-Sigma^(h') (Jacot et al.; Arora et
    al. 2019, who take c_sigma = 2). With depth 1 and c_sigma = 1 this is ``two_layer_ntk``.
    Returns (Sigma^(L), Theta^(L)), each (n, n).
    """
    if depth < 1:
        raise ValueError(f"depth = {depth!r} is invalid: allowed is an integer >= 1")
    sigma = X @ X.T
    theta = sigma.copy()
    for _ in range(depth):
        diag = np.clip(np.diag(sigma), 0.0, None)
        outer = np.sqrt(np.outer(diag, diag))
        angle = _angle(sigma, diag[:, None], diag[None, :])
        dot_sigma = c_sigma * _j0(angle) / (2 * np.pi)
        sigma = c_sigma * outer * _j1(angle) / (2 * np.pi)
        theta = theta * dot_sigma + sigma
    return sigma, theta


# --- the lazy limit as a prediction -------------------------------------------------------------

def kernel_flow(H, y, u0, times) -> np.ndarray:
    """Training predictions of du/dt = -(1/n) H (u - y): u(t) = y + expm(-t H / n)(u0 - y).

    Exact through the eigendecomposition of the symmetric H (n, n); returns (len(times), n).
    """
    n = len(y)
    evals, evecs = np.linalg.eigh(0.5 * (H + H.T))
    coef = evecs.T @ (np.asarray(u0, dtype=float) - y)
    decay = np.exp(-np.outer(np.asarray(times, dtype=float), evals) / n)
    return y + (decay * coef) @ evecs.T


def kernel_gradient_descent(H, y, u0, steps, dt) -> np.ndarray:
    """Euler steps of the kernel flow: u_k = y + (I - dt H / n)^k (u0 - y); returns (len(steps), n)."""
    n = len(y)
    evals, evecs = np.linalg.eigh(0.5 * (H + H.T))
    coef = evecs.T @ (np.asarray(u0, dtype=float) - y)
    factor = (1.0 - dt * evals / n)[None, :] ** np.asarray(steps, dtype=float)[:, None]
    return y + (factor * coef) @ evecs.T
