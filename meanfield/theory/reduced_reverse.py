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
multiply-adds over the N^2 L pair-cosine terms, compiled (``_kernels.reduced_reverse_sums``;
``_student_sums(compiled=False)`` is its NumPy twin); the teacher's N x m0 terms are NumPy.
Shapes: Z, V (N, k + 2); cot (P, N, k + 2).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..model import activations, population

BLOCK_BYTES = 64 * 2**20      # the NumPy twin's row block of pair arrays (about 16 of (rows, N, L) doubles)
PARALLEL = ("refuse", "drop")   # what nearly parallel pairs do to the reverse products


def _student_sums(problem, Z, omega, V, parallel: str, compiled: bool) -> dict:
    """The pair sums of ``reduced.sums`` (Kbar, Abar (N,), BS (N, k), Br (N,)) and their
    derivatives along V (P, N, k + 2) (dK, dA (P, N), dBS (P, N, k), dBr (P, N)), and "dropped": the
    nearly parallel (pair, cosine) terms, whose second partials (nan for a kinked kernel) count as 0
    (``_check``). Compiled (``_kernels.reduced_reverse_sums``), or this NumPy twin by row blocks."""
    k, (c, nu) = problem.k, problem.cosines
    N, L, P = len(Z), len(c), len(V)
    name, params = problem.activation, problem.params
    found = {"Kbar": np.empty(N), "Abar": np.empty(N), "BS": np.empty((N, k)), "Br": np.empty(N),
             "dK": np.empty((P, N)), "dA": np.empty((P, N)), "dBS": np.empty((P, N, k)), "dBr": np.empty((P, N))}
    if compiled:
        from .. import _kernels

        dropped = np.zeros(N, dtype=np.int64)
        _kernels.reduced_reverse_sums(np.ascontiguousarray(Z), np.ascontiguousarray(omega), np.ascontiguousarray(V),
                                      c, nu, activations.ACTIVATIONS[name].code, params, activations.PARALLEL_SIN2,
                                      True, *found.values(), dropped)
        return {**found, "dropped": int(dropped.sum())}
    S, r, a = Z[:, :k], Z[:, k], Z[:, k + 1]
    u = omega * a
    dS, dr, du = V[..., :k], V[..., k], omega * V[..., k + 1]
    dq = 2 * (np.sum(S * dS, axis=-1) + r * dr)                             # (P, N)
    q = np.sum(S * S, axis=1) + r * r
    rows_per, dropped = max(1, BLOCK_BYTES // (16 * 8 * N * L)), 0
    for lo in range(0, N, rows_per):
        I = slice(lo, min(lo + rows_per, N))
        qi, qj = q[I, None, None], q[None, :, None]
        rho = (S[I] @ S.T)[:, :, None] + np.outer(r[I], r)[:, :, None] * c          # (rows, N, L)
        kappa, A, B = population.pair_terms(name, qi, qj, rho, params)
        F1, F2 = A / 2, population.pair_terms(name, qj, qi, rho, params)[1] / 2
        F11, F12, F13, F33 = population.pair_second(name, qi, qj, rho, params)
        F23 = population.pair_second(name, qj, qi, rho, params)[2]
        bad = ~(np.isfinite(F33) & np.isfinite(F23))
        dropped += int(np.sum(bad))
        F11, F12, F13, F23, F33 = (np.where(bad, 0.0, F) for F in (F11, F12, F13, F23, F33))
        Kb, Ab, Bb, Bc = kappa @ nu, A @ nu, B @ nu, (B * c) @ nu                   # (rows, N)
        found["Kbar"][I], found["Abar"][I] = Kb @ u, Ab @ u
        found["BS"][I], found["Br"][I] = (Bb * u) @ S, Bc @ (u * r)
        for p in range(P):
            # the pair's inner product and squared norms along V, per cosine
            drho = ((dS[p, I] @ S.T) + (S[I] @ dS[p].T))[:, :, None] + \
                (np.outer(dr[p, I], r) + np.outer(r[I], dr[p]))[:, :, None] * c
            dqI, dqj = dq[p, I][:, None, None], dq[p][None, :, None]
            dkappa = (F1 * dqI + F2 * dqj + B * drho) @ nu
            dA = (2 * (F11 * dqI + F12 * dqj + F13 * drho)) @ nu
            dB = F13 * dqI + F23 * dqj + F33 * drho
            dBb, dBc = dB @ nu, (dB * c) @ nu
            found["dK"][p, I] = Kb @ du[p] + dkappa @ u
            found["dA"][p, I] = Ab @ du[p] + dA @ u
            found["dBS"][p, I] = (Bb * du[p]) @ S + (dBb * u) @ S + (Bb * u) @ dS[p]
            found["dBr"][p, I] = Bc @ (du[p] * r) + Bc @ (u * dr[p]) + dBc @ (u * r)
    return {**found, "dropped": dropped}


def _teacher_sums(problem, Z, V) -> dict:
    """The teacher's pair sums of ``reduced._target_sums`` (Kt, At (N,), BtU (N, k)), their
    derivatives along V (P, N, k + 2) and "dropped" (``_student_sums``); the teacher does not move."""
    k, name, params = problem.k, problem.activation, problem.params
    US, cs = problem.teacher[:, :k], problem.teacher[:, k]
    S = Z[:, :k]
    q = np.sum(S * S, axis=1) + Z[:, k] ** 2
    qU, rho = np.sum(US * US, axis=1)[None, :], S @ US.T                   # (N, m0)
    kt, At, Bt = population.pair_terms(name, q[:, None], qU, rho, params)
    T11, _, T13, T33 = population.pair_second(name, q[:, None], qU, rho, params)
    bad = ~np.isfinite(T33)
    T11, T13, T33 = (np.where(bad, 0.0, T) for T in (T11, T13, T33))
    dq = 2 * (np.sum(S * V[..., :k], axis=-1) + Z[:, k] * V[..., k])[..., None]    # (P, N, 1)
    drho = V[..., :k] @ US.T                                                # (P, N, m0)
    return {"Kt": kt @ cs, "At": At @ cs, "BtU": (Bt * cs) @ US, "dKt": (At / 2 * dq + Bt * drho) @ cs,
            "dAt": (2 * (T11 * dq + T13 * drho)) @ cs, "dBtU": ((T13 * dq + T33 * drho) * cs) @ US,
            "dropped": int(np.sum(bad))}


def _check(dropped: int, parallel: str, name: str) -> None:
    """Refuse nearly parallel pairs unless ``parallel`` = "drop" (their second partials then 0)."""
    if dropped and parallel != "drop":
        raise ConfigError.invalid("parallel", parallel, "'drop' to set them to 0, or times before such pairs form",
                                  f"{dropped} pairs of reduced nodes are nearly parallel (sin^2 below "
                                  f"{activations.PARALLEL_SIN2:g}), where {name}'s kernel is not twice "
                                  "differentiable: the reverse products diverge there")


def reverse(problem, Z, omega, cot, parallel: str = "refuse") -> tuple[np.ndarray, np.ndarray, int]:
    """(Z_bar (P, N, k + 2), omega_bar (P, N), dropped): the cotangents cot (P, N, k + 2) of the
    velocity ``reduced.velocity(problem, Z, omega)`` pulled back to Z and omega (module docstring);
    dropped: the nearly parallel (pair, cosine) terms whose second partials ``parallel`` = "drop"
    set to 0 (``_check``)."""
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


def _terms(problem, Z, omega, V, parallel: str = "refuse", compiled: bool = True) -> dict:
    """g and Phi, and with directions V (P, N, k + 2) their derivatives along each."""
    k, alpha = problem.k, problem.alpha
    S, r, a = Z[:, :k], Z[:, k], Z[:, k + 1]
    V = np.zeros((0,) + Z.shape) if V is None else V
    st, te = _student_sums(problem, Z, omega, V, parallel, compiled), _teacher_sums(problem, Z, V)
    dropped = st["dropped"] + te["dropped"]
    if len(V):
        _check(dropped, parallel, problem.activation)
    radial = alpha ** 2 * st["Abar"] - alpha * te["At"]
    base_S = radial[:, None] * S + alpha ** 2 * st["BS"] - alpha * te["BtU"]
    base_r = radial * r + alpha ** 2 * st["Br"]
    g = np.empty_like(Z)
    g[:, :k], g[:, k] = a[:, None] * base_S, a * base_r
    g[:, k + 1] = alpha ** 2 * st["Kbar"] - alpha * te["Kt"]
    phi = a * g[:, k + 1]
    dS, dr, da = V[..., :k], V[..., k], V[..., k + 1]
    dradial = alpha ** 2 * st["dA"] - alpha * te["dAt"]                     # (P, N)
    dg = np.empty(V.shape)
    dg[..., :k] = da[..., None] * base_S + a[:, None] * (dradial[..., None] * S + radial[:, None] * dS
                                                          + alpha ** 2 * st["dBS"] - alpha * te["dBtU"])
    dg[..., k] = da * base_r + a * (dradial * r + radial * dr + alpha ** 2 * st["dBr"])
    dg[..., k + 1] = alpha ** 2 * st["dK"] - alpha * te["dKt"]
    dphi = da * g[:, k + 1] + a * dg[..., k + 1]
    return {"g": g, "phi": phi, "dg": dg, "dphi": dphi, "dropped": dropped}
