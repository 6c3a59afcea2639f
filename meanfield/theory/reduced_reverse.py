"""The reverse (adjoint) products of the reduced population flow (``reduced``), for the band of the
population risk (``fluctuations``).

The reduced flow is a weighted gradient flow: with Phi(z) = alpha^2 a sum_j u_j kappa-bar(z, z_j)
- alpha a kappa*(z) (u = omega a, the first variation of the risk R), dR/domega_i = Phi(z_i),
dR/dz_i = omega_i g_i with g_i = grad Phi(z_i), and v_i = mask (-g_i / alpha^2 - lam z_i). So a
cotangent e = mask cot of the velocity pulls back through R's Hessian along V = e / omega:

    cot . dv/dz_j     = -(omega_j / alpha^2) dg_j - lam e_j,
    cot . dv/domega_j = -(dPhi_j - e_j . g_j / omega_j) / alpha^2,

dg and dPhi the derivatives of g and Phi along V (every node moved at once). They follow from
the pair terms by the chain rule through q = |w_S|^2 + r^2 and rho = w_S . w_S' + r r' c, with the
closed forms' second partials (``population.pair_second``; F22, F23 are F11, F13 with the pair
swapped), averaged over the cosine rule: exact to round-off, no differences taken. The pair terms
depend on Z only, so every column shares them: one evaluation per stage, then per column
multiply-adds over the N^2 L pair-cosine terms. Shapes: Z, V (N, k + 2); cot (P, N, k + 2).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..model import activations, population

BLOCK_BYTES = 64 * 2**20      # a row block's pair arrays (about 16 of (rows, N, L) doubles)


PARALLEL = ("refuse", "drop")   # what nearly parallel pairs do to the reverse products


def _pairs(problem, Z, rows: slice, second: bool, parallel: str) -> dict:
    """The pair terms of the rows' nodes against every node at every cosine (rows, N, L), and the
    teacher's (rows, m0); with ``second`` also their second partials, and "dropped": how many
    (pair, cosine) terms were nearly parallel (a kinked kernel's second partials are nan there:
    ``parallel`` "refuse" raises, "drop" sets them to 0)."""
    k, (c, _) = problem.k, problem.cosines
    name, params = problem.activation, problem.params
    S, r = Z[:, :k], Z[:, k]
    q = np.sum(S * S, axis=1) + r * r
    qi, qj = q[rows, None, None], q[None, :, None]
    rho = (S[rows] @ S.T)[:, :, None] + np.outer(r[rows], r)[:, :, None] * c
    US = problem.teacher[:, :k]
    qU, rhoU = np.sum(US * US, axis=1)[None, :], S[rows] @ US.T
    kappa, A, B = population.pair_terms(name, qi, qj, rho, params)
    kt, At, Bt = population.pair_terms(name, q[rows, None], qU, rhoU, params)
    found = {"kappa": kappa, "A": A, "B": B, "kt": kt, "At": At, "Bt": Bt, "dropped": 0}
    if not second:
        return found
    F11, F12, F13, F33 = population.pair_second(name, qi, qj, rho, params)
    F23 = population.pair_second(name, qj, qi, rho, params)[2]
    T11, _, T13, T33 = population.pair_second(name, q[rows, None], qU, rhoU, params)
    found.update({"F1": A / 2, "F2": population.pair_terms(name, qj, qi, rho, params)[1] / 2, "F11": F11, "F12": F12,
                  "F13": F13, "F23": F23, "F33": F33, "T11": T11, "T13": T13, "T33": T33})
    parallel_pairs = ~np.isfinite(F33)
    teacher_pairs = ~np.isfinite(T33)
    found["dropped"] = int(np.sum(parallel_pairs) + np.sum(teacher_pairs))
    if found["dropped"]:
        if parallel != "drop":
            raise ConfigError.invalid("parallel", parallel, "'drop' to set them to 0, or times before such pairs form",
                                      f"{found['dropped']} pairs of reduced nodes are nearly parallel (sin^2 below "
                                      f"{activations.PARALLEL_SIN2:g}), where {name}'s kernel is not twice "
                                      "differentiable: the reverse products diverge there")
        for key, bad in (("F11", parallel_pairs), ("F12", parallel_pairs), ("F13", parallel_pairs),
                         ("F23", parallel_pairs), ("F33", parallel_pairs), ("T11", teacher_pairs),
                         ("T13", teacher_pairs), ("T33", teacher_pairs)):
            found[key] = np.where(bad, 0.0, found[key])
    return found


def _block_rows(N: int, L: int) -> int:
    return max(1, BLOCK_BYTES // (16 * 8 * N * L))


def reverse(problem, Z, omega, cot, parallel: str = "refuse") -> tuple[np.ndarray, np.ndarray, int]:
    """(Z_bar (P, N, k + 2), omega_bar (P, N), dropped): the cotangents cot (P, N, k + 2) of the
    velocity ``reduced.velocity(problem, Z, omega)`` pulled back to Z and omega (module docstring);
    dropped: the nearly parallel (pair, cosine) terms whose second partials ``parallel`` = "drop"
    set to 0 (``_pairs``)."""
    alpha, lam = problem.alpha, problem.lam
    e = problem.mask * cot
    found = _terms(problem, Z, omega, e / omega[:, None], parallel)
    g, phi, dg, dphi = (found[key] for key in ("g", "phi", "dg", "dphi"))
    Z_bar = -(omega[:, None] * dg) / alpha ** 2 - lam * e
    omega_bar = -(dphi - np.sum(e * g, axis=-1) / omega) / alpha ** 2
    return Z_bar, omega_bar, found["dropped"]


def gradient(problem, Z, omega) -> tuple[np.ndarray, np.ndarray]:
    """(g (N, k + 2), Phi (N,)): dR/dz_i = omega_i g_i and dR/domega_i = Phi(z_i)."""
    found = _terms(problem, Z, omega, None)
    return found["g"], found["phi"]


def directional(problem, Z, omega, V, parallel: str = "refuse") -> tuple[np.ndarray, np.ndarray]:
    """(dg (P, N, k + 2), dPhi (P, N)): the derivatives of g and Phi along the directions V (P, N, k + 2)."""
    found = _terms(problem, Z, omega, V, parallel)
    return found["dg"], found["dphi"]


def _terms(problem, Z, omega, V, parallel: str = "refuse") -> dict:
    """g and Phi, and with directions V their derivatives along each, by row blocks."""
    k, alpha, (c, nu) = problem.k, problem.alpha, problem.cosines
    N, L = len(Z), len(c)
    S, r, a = Z[:, :k], Z[:, k], Z[:, k + 1]
    u = omega * a
    US, cs = problem.teacher[:, :k], problem.teacher[:, k]
    g, phi = np.empty_like(Z), np.empty(N)
    P = 0 if V is None else len(V)
    dg, dphi = np.empty((P, N, k + 2)), np.empty((P, N))
    if V is not None:
        dS, dr, da = V[..., :k], V[..., k], V[..., k + 1]
        dq = 2 * (np.sum(S * dS, axis=-1) + r * dr)                         # (P, N)
        du = omega * da
    rows_per, dropped = _block_rows(N, L), 0
    for lo in range(0, N, rows_per):
        I = slice(lo, min(lo + rows_per, N))
        t = _pairs(problem, Z, I, V is not None, parallel)
        dropped += t["dropped"]
        Kbar, Abar = (t["kappa"] @ nu) @ u, (t["A"] @ nu) @ u
        Bbar, Bc = t["B"] @ nu, (t["B"] * c) @ nu                          # (rows, N)
        BS, Br = (Bbar * u) @ S, Bc @ (u * r)
        Kt, At, BtU = t["kt"] @ cs, t["At"] @ cs, (t["Bt"] * cs) @ US
        radial = alpha ** 2 * Abar - alpha * At
        aI, SI, rI = a[I], S[I], r[I]
        g[I, :k] = aI[:, None] * (radial[:, None] * SI + alpha ** 2 * BS - alpha * BtU)
        g[I, k] = aI * (radial * rI + alpha ** 2 * Br)
        g[I, k + 1] = alpha ** 2 * Kbar - alpha * Kt
        phi[I] = aI * g[I, k + 1]
        for p in range(P):
            # the pair's inner product and squared norms along V, per cosine
            drho = ((dS[p, I] @ S.T) + (SI @ dS[p].T))[:, :, None] + \
                (np.outer(dr[p, I], r) + np.outer(rI, dr[p]))[:, :, None] * c
            dqI, dqj = dq[p, I][:, None, None], dq[p][None, :, None]
            dkappa = (t["F1"] * dqI + t["F2"] * dqj + t["B"] * drho) @ nu
            dA = (2 * (t["F11"] * dqI + t["F12"] * dqj + t["F13"] * drho)) @ nu
            dBfull = t["F13"] * dqI + t["F23"] * dqj + t["F33"] * drho
            dB, dBc = dBfull @ nu, (dBfull * c) @ nu
            dKbar = (t["kappa"] @ nu) @ du[p] + dkappa @ u
            dAbar = (t["A"] @ nu) @ du[p] + dA @ u
            dBS = (Bbar * du[p]) @ S + (dB * u) @ S + (Bbar * u) @ dS[p]
            dBr = Bc @ (du[p] * r) + Bc @ (u * dr[p]) + dBc @ (u * r)
            dqt = dq[p, I][:, None]
            drt = dS[p, I] @ US.T                                            # (rows, m0)
            dKt = (t["At"] / 2 * dqt + t["Bt"] * drt) @ cs
            dAt = (2 * (t["T11"] * dqt + t["T13"] * drt)) @ cs
            dBtU = ((t["T13"] * dqt + t["T33"] * drt) * cs) @ US
            dradial = alpha ** 2 * dAbar - alpha * dAt
            daI = da[p, I]
            base_S = radial[:, None] * SI + alpha ** 2 * BS - alpha * BtU
            base_r = radial * rI + alpha ** 2 * Br
            dg[p, I, :k] = daI[:, None] * base_S + aI[:, None] * (
                dradial[:, None] * SI + radial[:, None] * dS[p, I] + alpha ** 2 * dBS - alpha * dBtU)
            dg[p, I, k] = daI * base_r + aI * (dradial * rI + radial * dr[p, I] + alpha ** 2 * dBr)
            dg[p, I, k + 1] = alpha ** 2 * dKbar - alpha * dKt
            dphi[p, I] = daI * g[I, k + 1] + aI * dg[p, I, k + 1]
    return {"g": g, "phi": phi, "dg": dg, "dphi": dphi, "dropped": dropped}
