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

from ..config import NetworkConfig
from .scaling import time_factor
from .twolayer import activation, activation_derivative, train_mask

# --- empirical kernels of the current particles -----------------------------------------------

NEURON_BLOCK = 4096      # neurons per block: no n x m array is formed at once


def tangent_kernel(theta, X, network: NetworkConfig, Y=None, raw: bool = False) -> np.ndarray:
    """H(theta) on inputs X (and Y), restricted to the coordinates that ``network.train`` moves.

    H = (1/m) [ (X Y^T) * (S'_X diag(a^2) S'_Y^T) + S_X S_Y^T ] with S = sigma(X W^T), S' = sigma',
    summed over blocks of NEURON_BLOCK neurons (memory n x block, never n x m); without Y each
    block's product is a symmetric rank-k update (BLAS syrk: half the flops of a general product).
    """
    symmetric = Y is None
    Y = X if symmetric else Y
    m, p = theta.shape
    d = p - 1
    mask = train_mask(network.train, d)
    H = np.zeros((len(X), len(Y)))
    inner = X @ Y.T
    act, params = network.activation, network.activation_params
    for lo in range(0, m, NEURON_BLOCK):
        W, a = theta[lo:lo + NEURON_BLOCK, :d], theta[lo:lo + NEURON_BLOCK, d]
        ZX = X @ W.T
        ZY = ZX if symmetric else Y @ W.T
        if mask[0]:
            dX = activation_derivative(act, ZX, params) * a
            dY = dX if symmetric else activation_derivative(act, ZY, params) * a
            H += inner * (dX @ dY.T)       # one buffer and its transpose: NumPy calls BLAS's syrk, half the flops
        if mask[d]:
            SX = activation(act, ZX, params)
            H += SX @ (SX if symmetric else activation(act, ZY, params)).T
    H /= m
    return H / time_factor(m, network.scaling, network.alpha) if raw else H


def nngp(theta, X, network: NetworkConfig, Y=None) -> np.ndarray:
    """Empirical NNGP (random-features) kernel (1/m) sum_i sigma(w_i . x) sigma(w_i . x').

    The covariance of the lazy network's output at initialisation when E a^2 = 1, and the
    tangent kernel when only the output layer trains.
    """
    d = theta.shape[1] - 1
    W = theta[:, :d]
    SX = activation(network.activation, X @ W.T, network.activation_params)
    SY = SX if Y is None else activation(network.activation, Y @ W.T, network.activation_params)
    return SX @ SY.T / theta.shape[0]                    # Y None: one buffer, a symmetric rank-k update


def lambda_min(H: np.ndarray) -> float:
    """Smallest eigenvalue of a symmetric kernel matrix."""
    return float(np.linalg.eigvalsh(0.5 * (H + H.T))[0])


def lambda_max(H: np.ndarray) -> float:
    """Largest eigenvalue of a symmetric kernel matrix (gradient descent with step eta on the risk
    (1/n) sum (u - y)^2 / 2 is stable along it while eta < 2 n / lambda_max, in dt = eta n units)."""
    return float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])


# --- closed forms -----------------------------------------------------------------------------

NEAR = 0.1    # angles within this of 0 or pi are recomputed from the unit vectors' difference and sum


def _geometry(X, Y):
    """Norms |x| (n, 1), |y| (1, n') and the angle between every pair, as (theta, pi - theta),
    each (n, n'), both to full relative precision.

    The Gram formula atan2(sqrt(|x|^2 |y|^2 - (x.y)^2), x.y) cancels near 0 and pi (relative
    error eps / theta^2); pairs within NEAR of either end are recomputed without cancellation as
    theta = 2 atan2(|u - v|, |u + v|) and pi - theta = 2 atan2(|u + v|, |u - v|) on the unit
    vectors u, v.
    """
    Y_ = X if Y is None else Y
    G = X @ Y_.T
    sq_x = np.sum(X * X, axis=1)[:, None]
    sq_y = np.sum(Y_ * Y_, axis=1)[None, :]
    angle = np.arctan2(np.sqrt(np.clip(sq_x * sq_y - G * G, 0.0, None)), G)
    supplement = np.pi - angle
    rows, cols = np.nonzero(np.minimum(angle, supplement) < NEAR)
    if len(rows):
        with np.errstate(invalid="ignore", divide="ignore"):
            U = np.nan_to_num(X / np.sqrt(sq_x))
            V = np.nan_to_num(Y_ / np.sqrt(sq_y.T))
        for start in range(0, len(rows), 65536):          # pairs in blocks: memory O(block d)
            r, c = rows[start:start + 65536], cols[start:start + 65536]
            minus = np.linalg.norm(U[r] - V[c], axis=1)
            plus = np.linalg.norm(U[r] + V[c], axis=1)
            angle[r, c] = 2 * np.arctan2(minus, plus)
            supplement[r, c] = 2 * np.arctan2(plus, minus)
    return np.sqrt(sq_x), np.sqrt(sq_y), angle, supplement


def _sin_minus_x_cos(x):
    """sin x - x cos x for x in [0, pi], without cancellation at small x (series below 0.5)."""
    x = np.asarray(x, dtype=float)
    out = np.sin(x) - x * np.cos(x)
    small = x < 0.5
    if np.any(small):
        z = x[small]
        term, total = z ** 3 / 3, np.zeros_like(z)
        for k in range(1, 12):              # sum_k (-1)^(k+1) 2k x^(2k+1) / (2k+1)!
            total += term
            term = -term * z * z * (2 * k + 2) / ((2 * k) * (2 * k + 2) * (2 * k + 3))
        out[small] = total
    return out


def _j0(angle, supplement):
    """Cho & Saul's J_0 = pi - theta."""
    return supplement


def _j1(angle, supplement):
    """J_1 = sin theta + (pi - theta) cos theta = sin phi - phi cos phi with phi = pi - theta."""
    return _sin_minus_x_cos(supplement)


def _relu_angle_map(angle, supplement):
    """The angle theta' after a ReLU layer, cos theta' = J_1(theta) / pi, as (theta', pi - theta').

    1 - cos theta' = (pi - J_1) / pi, with pi - J_1 = 2 pi sin^2(theta / 2) - (sin theta -
    theta cos theta) where theta < pi / 2 (no cancellation), and theta' <= pi / 2 always."""
    gap = np.where(angle < np.pi / 2,
                   2 * np.pi * np.sin(angle / 2) ** 2 - _sin_minus_x_cos(angle),
                   np.pi - _j1(angle, supplement))
    new = 2 * np.arcsin(np.sqrt(np.clip(gap / (2 * np.pi), 0.0, 0.5)))
    return new, np.pi - new


def arccos_kernel(X, Y=None, degree: int = 1) -> np.ndarray:
    """Cho & Saul's arc-cosine kernel k_n = (1/pi) |x|^n |y|^n J_n(theta), degree 0 or 1.

    k_n(x, y) = 2 E_w[step(w.x) step(w.y) (w.x)^n (w.y)^n] for w ~ N(0, I).
    """
    nx, ny, angle, supplement = _geometry(X, Y)
    if degree == 0:
        return _j0(angle, supplement) / np.pi
    if degree == 1:
        return nx * ny * _j1(angle, supplement) / np.pi
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


def deep_relu_kernels(X, depth: int, c_sigma: float = 2.0, Y=None):
    """NNGP Sigma^(L) and NTK Theta^(L) of a fully-connected ReLU network with L hidden layers.

    Sigma^(0) = X X^T; for h = 1..L, with the 2x2 covariances of (u, v) ~ N(0, Sigma^(h-1)):
    Sigma^(h) = c_sigma E[relu(u) relu(v)], dot-Sigma^(h) = c_sigma E[step(u) step(v)];
    Theta^(L) = sum_{h=1}^{L+1} Sigma^(h-1) prod_{h'=h}^{L} dot-Sigma^(h') (Jacot et al.; Arora et
    al. 2019, who take c_sigma = 2). With depth 1 and c_sigma = 1 this is ``two_layer_ntk``.
    Returns (Sigma^(L), Theta^(L)), each (n, n), or (n, n') between X and Y.
    """
    if depth < 1:
        raise ValueError(f"depth = {depth!r} is invalid: allowed is an integer >= 1")
    norm_x, norm_y, angle, supplement = _geometry(X, Y)   # the angles carry the recursion: no cancellation
    scale = norm_x * norm_y                                # sqrt(Sigma_jj Sigma_kk), times (c_sigma / 2) per layer
    sigma = X @ (X if Y is None else Y).T
    theta = sigma.copy()
    for _ in range(depth):
        dot_sigma = c_sigma * _j0(angle, supplement) / (2 * np.pi)
        sigma = c_sigma * scale * _j1(angle, supplement) / (2 * np.pi)
        theta = theta * dot_sigma + sigma
        scale = scale * (c_sigma / 2)
        angle, supplement = _relu_angle_map(angle, supplement)
    return sigma, theta


def _relu_moments(K):
    """For (u, v) ~ N(0, K) on every pair of a kernel matrix K (n, n): E[relu(u) relu(v)] and
    E[step(u) step(v)], each (n, n), from its diagonal and angles (no cancellation)."""
    diag = np.sqrt(np.clip(np.diag(K), 0.0, None))
    cos = np.clip(K / np.outer(diag, diag), -1.0, 1.0)
    angle = np.arccos(cos)
    return np.outer(diag, diag) * _j1(angle, np.pi - angle) / (2 * np.pi), (np.pi - angle) / (2 * np.pi)


def deep_resnet_relu_kernels(X, depth: int, res_scale: float, c_sigma: float = 2.0):
    """NNGP K^(L) and NTK Theta^(L) of the ReLU residual network of ``deep.py``: x^(1) = s relu(W_1 x),
    x^(l) = x^(l-1) + b s relu(W_l x^(l-1)) (b = res_scale, s = sqrt(c_sigma / m)), f = a . x^(L).

    Forward, with mu^(l)(x) = lim m^-1/2 sum_i x_i^(l) (ReLU features have a mean) and
    r^(l)(x) = sqrt(c_sigma / (2 pi) K^(l)(x, x)) = sqrt(c_sigma) E relu(sqrt(K^(l)(x, x)) z):
    K^(1) = c_sigma E[relu relu]_{X X^T}, mu^(1) = r^(0);
    K^(l) = K^(l-1) + b (mu^(l-1) r^(l-1)^T + r^(l-1) mu^(l-1)^T) + b^2 c_sigma E[relu relu]_{K^(l-1)},
    mu^(l) = mu^(l-1) + b r^(l-1). Backward (gradient independence), P^(L) = 1 and
    P^(l-1) = P^(l) (1 + b^2 c_sigma E[step step]_{K^(l-1)}); the NTK sums the layers' Gram matrices:
    Theta = K^(L) + sum_{l >= 2} b^2 c_sigma P^(l) E[step step]_{K^(l-1)} K^(l-1)
    + c_sigma P^(1) E[step step]_{X X^T} X X^T. Returns (K^(L), Theta^(L)), each (n, n).
    """
    if depth < 1:
        raise ValueError(f"depth = {depth!r} is invalid: allowed is an integer >= 1")
    gram = X @ X.T
    relu, step = _relu_moments(gram)
    K = [c_sigma * relu]
    dots = [step]                                   # E[step step] under the input of each layer
    r = lambda k: np.sqrt(c_sigma * np.clip(np.diag(k), 0.0, None) / (2 * np.pi))
    mu = r(gram)
    for _ in range(depth - 1):
        relu, step = _relu_moments(K[-1])
        branch = r(K[-1])
        K.append(K[-1] + res_scale * (np.outer(mu, branch) + np.outer(branch, mu)) + res_scale ** 2 * c_sigma * relu)
        dots.append(step)
        mu = mu + res_scale * branch
    theta, P = K[-1].copy(), np.ones_like(gram)
    for l in range(depth - 1, 0, -1):               # the residual layers, top down: layer l + 1 reads K[l - 1]
        theta += res_scale ** 2 * c_sigma * P * dots[l] * K[l - 1]
        P = P * (1 + res_scale ** 2 * c_sigma * dots[l])
    theta += c_sigma * P * dots[0] * gram
    return K[-1], theta


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
