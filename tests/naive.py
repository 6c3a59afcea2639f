"""The tests' naive oracles: direct, slow, obviously right formulas that the library's fast
paths are checked against (closed forms by expm, loops, Monte Carlo, 50-digit arithmetic)."""
import numpy as np
from scipy.linalg import expm

import meanfield as mf
from meanfield.model import twolayer
from meanfield.model.scaling import output_scale, time_factor


def output_only_exact(cfg, res, t):
    """Predictions at time t of da/dt = A a + b (output layer, squared loss), by expm."""
    net, flow = cfg.network, cfg.flow
    data = mf.run_data(cfg)
    X, y = data.X, data.y
    n, theta0 = len(y), res.theta0
    Phi = twolayer.activation(net.activation, X @ theta0[:, :net.d].T)        # (n, m)
    os_, tf = output_scale(net.m, net.scaling, net.alpha), time_factor(net.m, net.scaling, net.alpha)
    A = -tf * os_**2 / n * Phi.T @ Phi - flow.lam * np.eye(net.m)
    b = tf * os_ / n * Phi.T @ y
    M = np.zeros((net.m + 1, net.m + 1))
    M[:-1, :-1], M[:-1, -1] = A, b
    z = expm(M * t) @ np.append(theta0[:, -1], 1.0)
    return os_ * Phi @ z[:-1], X


def h_inf(X):
    G = np.clip(X @ X.T, -1.0, 1.0)
    return G * (np.pi - np.arccos(G)) / (2 * np.pi)


def monte_carlo(samples):
    """Mean and standard error over the first axis."""
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(len(samples))


def precise_kernels(x, y, depth, c_sigma=2.0):
    """arc-cosine J0, J1 terms and the deep ReLU NNGP / NTK of one pair, in 50-digit arithmetic."""
    import mpmath

    mpmath.mp.dps = 50
    x, y = [mpmath.matrix([mpmath.mpf(float(v)) for v in z]) for z in (x, y)]
    qx, qy, r = (x.T * x)[0], (y.T * y)[0], (x.T * y)[0]
    angle = mpmath.acos(r / mpmath.sqrt(qx * qy))
    h_inf = r * (mpmath.pi - angle) / (2 * mpmath.pi)
    k1 = mpmath.sqrt(qx * qy) * (mpmath.sin(angle) + (mpmath.pi - angle) * mpmath.cos(angle)) / mpmath.pi
    sig, sxx, syy = r, qx, qy
    theta = r
    for _ in range(depth):
        t = mpmath.acos(sig / mpmath.sqrt(sxx * syy))
        dot = c_sigma * (mpmath.pi - t) / (2 * mpmath.pi)
        sig = c_sigma * mpmath.sqrt(sxx * syy) * (mpmath.sin(t) + (mpmath.pi - t) * mpmath.cos(t)) / (2 * mpmath.pi)
        sxx, syy = c_sigma * sxx / 2, c_sigma * syy / 2
        theta = theta * dot + sig
    return float(h_inf), float(k1), float(sig), float(theta)


def central_gradient(f, theta, h=1e-6):
    """The gradient of the scalar function f at theta, by central differences, entry by entry."""
    numeric = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        e = np.zeros_like(theta)
        e[idx] = h
        numeric[idx] = (f(theta + e) - f(theta - e)) / (2 * h)
    return numeric


def linear_moment_flow(S, X, y, alpha, lam, dt, steps, method="rk4"):
    """The mean-field flow of a linear-activation network (squared loss, both layers trained) in
    its second moments S = E theta theta^T ((d + 1) x (d + 1)), step by step as the particles'
    Runge–Kutta method takes it: every stage is a linear map theta -> B theta whose matrix depends
    on S only (f(x) = alpha beta . x with beta = S[:d, d]), so S' = C S C^T exactly. Returns the
    list of S after each step."""
    from meanfield.model.integrators import INTEGRATORS

    a_tab, b_tab = INTEGRATORS[method].tableau
    d, n, p = X.shape[1], len(y), S.shape[0]

    def drift_matrix(M):
        g = X.T @ (alpha * X @ M[:d, d] - y) / n                         # mean_j r_j x_j
        A = -lam * np.eye(p)
        A[:d, d] -= g / alpha
        A[d, :d] -= g / alpha
        return A

    out = []
    for _ in range(steps):
        # stage drifts as matrices K_s (theta -> K_s theta)
        K = []
        for s in range(len(b_tab)):
            B = np.eye(p) + dt * sum(a_tab[s, j] * K[j] for j in range(s))
            K.append(drift_matrix(B @ S @ B.T) @ B)
        C = np.eye(p) + dt * sum(b * k for b, k in zip(b_tab, K))
        S = C @ S @ C.T
        out.append(S)
    return out
