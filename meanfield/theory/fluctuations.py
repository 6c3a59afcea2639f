"""The finite-width band: how far a width-m network strays from its infinite-width limit.

For m particles drawn i.i.d. from mu_0 and a noiseless mean-field flow, a smooth observable O of
the measure (the predictor at x, the risk, the mean displacement) obeys

    O_m(t) - O_inf(t) = (1/m) sum_i [Psi_t(theta_i(0)) - E Psi_t] + o(m^-1/2),   Psi_t = dO(t) / dmu_0,

so Var O_m(t) = C(t) / m + o(1/m) with C(t) = Var_{theta ~ mu_0} Psi_t(theta) (the central limit
theorem of the mean-field flow: Sirignano & Spiliopoulos 2020; Rotskoff & Vanden-Eijnden 2018).
With ``init.symmetric`` the particles come in mirrored pairs (w, a), (w, -a): i.i.d. pairs, and
C = 2 Var over pairs of (Psi(w, a) + Psi(w, -a)) / 2.

How it is computed. The limit is the weighted flow of a quadrature of mu_0 (nodes theta_k, weights
omega_k: ``limits.mean_field_limit``); a node's first variation Psi_t(theta_k) is the derivative of
the weighted flow's O(t) in the node's weight omega_k (the flow extends linearly to unnormalised
weights, and the centring removes the constant). One reverse sweep of the discrete flow, the
adjoint of its Runge-Kutta steps (exact for the discrete map: the limit's own time steps), gives
dO/domega_k for every node at once; observables are swept together, the columns of one array.
C = sum_k omega_k Psi_k^2 - (sum_k omega_k Psi_k)^2 then converges in the level as the limit does
(``error``: the gap to a coarser level, an estimate, not a bound).

Scope: the flows whose flow map is smooth in the initial measure, a smooth activation on finite
data (ReLU's particles cross the planes w . x_j = 0 and its flow map is not differentiable there),
squared or logistic loss, a fixed-step integrator, no energy terms. The population risk is not
covered yet (its reduced flow needs its own reverse product). The cost is two forward passes of the
limit (the states kept, or checkpointed and recomputed per segment) and, per observable, one
compiled reverse sweep (``plan``): measured at d = 2, n = 100, 64 steps and 1,024 nodes, one
thread, 0.28 CPU s for one point and 0.47 s for eight, against 0.067 s for the limit itself (4x
and 7x), and 0.03 s (0.45 limit solves) per further point.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _lazy
from ..config import Config
from ..engine.controller import run_data
from ..engine.problem import record_steps
from ..errors import ConfigError
from ..model import activations, integrators, quadrature
from ..model.twolayer import train_mask
from ..rules import FLUCTUATIONS, refuse
from .limits import COARSER

_kernels = _lazy.module("meanfield._kernels")      # Numba loads on the first band

BLOCK_BYTES = 32 * 2**20       # the NumPy twin's block of observables' (columns, K, n) intermediates
STATES_BYTES = 256 * 2**20     # the forward states kept for the reverse sweep; beyond, checkpoints
COLUMN_SECONDS = 6e-9          # a reverse stage's cost per observable, node and sample (compiled, one thread)
STAGE_SECONDS = 1.2e-8         # a forward stage's per node and sample, run twice (measured, d = 2, tanh)
LONG_SECONDS = 60.0            # a computation planned longer than this warns with its plan first
KIND = "finite_width_band"     # a saved band's manifest kind


@dataclass(frozen=True)
class Fluctuations:
    """C(t) = lim m Var O_m(t) for the observables of the module docstring, and the limit's own
    values O_inf(t): ``t`` (T,), ``x`` (P, d); ``predictor`` and ``f`` (T, P); ``risk``,
    ``limit_risk``, ``displacement``, ``limit_displacement`` (T,). ``error``: the same arrays'
    gaps to a coarser level (None without an estimate); ``stats``: level, nodes, seconds."""

    t: np.ndarray
    x: np.ndarray
    predictor: np.ndarray
    risk: np.ndarray
    displacement: np.ndarray
    f: np.ndarray
    limit_risk: np.ndarray
    limit_displacement: np.ndarray
    error: dict | None = None
    stats: dict = field(default_factory=dict)
    config: Config | None = None

    ARRAYS = ("t", "x", "predictor", "risk", "displacement", "f", "limit_risk", "limit_displacement")

    def band(self, m: int, width: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) = f_inf -+ width sqrt(C / m) at the points, (T, P) each."""
        half = width * np.sqrt(self.predictor / m)
        return self.f - half, self.f + half

    def describe(self) -> str:
        gap = ("no error estimate" if self.error is None else
               f"largest gap to level {self.stats.get('coarse_level')}: "
               f"{np.max(self.error['predictor'] / np.maximum(self.predictor, 1e-300), initial=0.0):.2g} of C "
               "(an estimate of that level's error)")
        return (f"finite-width band at level {self.stats.get('level')} ({self.stats.get('nodes')} nodes), "
                f"{len(self.t)} times, {self.x.shape[0]} points: mean C(x, t_end) = "
                f"{np.mean(self.predictor[-1]) if self.x.size else float('nan'):.4g}, C_risk(t_end) = "
                f"{self.risk[-1]:.4g}; {gap}")

    def save(self, path) -> Path:
        """Write into the folder ``path``: arrays.npz, config.toml (if any), observables.csv (t, mean
        C over the points, C_risk, C_displacement) and a sealed manifest.json."""
        from ..store import results

        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        arrays.update({f"error_{name}": gap for name, gap in (self.error or {}).items()})
        columns = [self.t, self.predictor.mean(axis=1) if self.x.size else np.full(len(self.t), np.nan), self.risk,
                   self.displacement]
        stats = {k: v for k, v in self.stats.items() if k != "plan"}
        return results.save_sealed(path, KIND, arrays, self.config, ("t,mean_C,C_risk,C_displacement", columns),
                                   stats=stats)

    @classmethod
    def load(cls, path) -> "Fluctuations":
        """Read a folder written by :meth:`save`; CorruptedResultError on any damage or edit."""
        from ..store import files, results

        manifest, config, arrays = results.load_sealed(path, KIND, "a saved finite-width band", cls.ARRAYS)
        error = {name: arrays[f"error_{name}"] for name in ("predictor", "risk", "displacement")
                 if f"error_{name}" in arrays} or None
        stats = files.field(manifest, "stats", Path(path) / results.MANIFEST)
        return cls(*(arrays[name] for name in cls.ARRAYS), error, stats, config)


def fluctuations(cfg: Config, level: int = 12, x=None, times=None, data=None, estimate: bool = True) -> Fluctuations:
    """C(x, t), C_risk(t) and C_displacement(t) of cfg's noiseless mean-field flow (module docstring)
    at the points ``x`` (P, d) (default: the training inputs) and ``times`` (default: cfg's record
    times; each a multiple of flow.dt in [0, t_end]), from the rule of ``limits.mean_field_limit``
    at ``level``; ``estimate``: also at round(COARSER level), the gaps in ``error``. ``data``:
    arrays (X, y) as ``simulate`` takes them."""
    refuse(cfg, FLUCTUATIONS, " (the finite-width band of a noiseless mean-field flow with a smooth flow map)")
    dataset = run_data(cfg, data)
    X, y = (np.ascontiguousarray(a, dtype=np.float64) for a in (dataset.X, dataset.y))
    x = X if x is None else _points(x, cfg.network.d)
    steps = step_indices(cfg, times)
    levels = [level] + ([max(1, round(COARSER * level))] if estimate else [])
    rules = [quadrature.initial_rule(cfg.network, cfg.init, at) for at in levels]
    planned = plan(cfg, levels, [len(omega) for _, omega in rules], len(x), steps, len(y))
    if planned["seconds"] > LONG_SECONDS:
        warnings.warn(f"meanfield: {describe_plan(planned)}", stacklevel=2)
    found = [_at_level(cfg, WeightedFlow(cfg, X, y, omega), nodes, x, steps) for nodes, omega in rules]
    fine = found[0]
    error = None
    if estimate:
        error = {name: np.abs(fine[name] - found[1][name]) for name in ("predictor", "risk", "displacement")}
    stats = {"level": level, "nodes": len(rules[0][1]), "seconds": fine["seconds"],
             "coarse_level": levels[-1] if estimate else None, "plan": planned}
    return Fluctuations(steps * cfg.flow.dt, x, fine["predictor"], fine["risk"], fine["displacement"], fine["f"],
                        fine["limit_risk"], fine["limit_displacement"], error, stats, cfg)


def plan(cfg: Config, levels: list, nodes: list, points: int, steps: np.ndarray, n: int) -> dict:
    """The cost before any work: nodes per level, observables (columns: points + 2 per time), and
    the estimated CPU seconds: two forward passes (STAGE_SECONDS per node, sample and stage) and the
    reverse sweeps, a column at step s swept back over s steps (COLUMN_SECONDS per column, node,
    sample and stage)."""
    stages = integrators.INTEGRATORS[cfg.flow.integrator].stages
    column_steps = (points + 2) * int(np.sum(steps))
    seconds = sum(K * n * stages * (column_steps * COLUMN_SECONDS + 2 * int(steps[-1]) * STAGE_SECONDS) for K in nodes)
    return {"levels": levels, "nodes": nodes, "columns": (points + 2) * len(steps), "seconds": seconds}


def describe_plan(found: dict) -> str:
    """One line: what will be computed and about how long it takes."""
    nodes = ", ".join(f"{K:,} nodes at level {L}" for K, L in zip(found["nodes"], found["levels"]))
    return (f"the finite-width band: {found['columns']} observables over {nodes}: about "
            f"{found['seconds'] / 60:.1f} CPU-minutes (estimated)")


def _points(x, d: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != d or not np.all(np.isfinite(x)):
        raise ConfigError.invalid("x", f"an array of shape {x.shape}", f"finite points of shape (P, network.d = {d})")
    return x


def step_indices(cfg: Config, times) -> np.ndarray:
    """The step indices of ``times`` (sorted, unique), or of cfg's record times."""
    n_steps = cfg.flow.n_steps
    if times is None:
        return record_steps(n_steps, cfg.record.n_records, cfg.record.spacing)
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    steps = np.round(times / cfg.flow.dt)
    if (times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(steps < 0) or np.any(steps > n_steps)
            or np.any(np.abs(steps * cfg.flow.dt - times) > 1e-9 * max(1.0, cfg.flow.t_end))):
        raise ConfigError.invalid("times", times.tolist(), f"multiples of flow.dt = {cfg.flow.dt:g} in "
                                  f"[0, flow.t_end = {cfg.flow.t_end:g}]")
    return np.unique(steps.astype(np.int64))


class RungeKutta:
    """A weighted flow's fixed Runge-Kutta steps and their adjoint: subclasses give ``stage(theta)``
    (a dict with the velocity "v" and what its reverse product needs) and ``_reverse(at, cot,
    omega_bar)`` (the cotangent of theta, adding that of omega); ``method``, ``dt``."""

    def step(self, theta) -> tuple[np.ndarray, list]:
        """One step of the method, and its stages (for ``step_reverse``)."""
        a, b = self.method.tableau
        stages, K = [], []
        for i in range(self.method.stages):
            point = theta if i == 0 else theta + self.dt * sum(a[i, j] * K[j] for j in range(i) if a[i, j])
            stages.append(self.stage(point))
            K.append(stages[-1]["v"])
        return theta + self.dt * sum(b[i] * K[i] for i in range(len(K)) if b[i]), stages

    def step_reverse(self, stages: list, cot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The adjoint of one Runge-Kutta step: the cotangent of its start and of omega from the
        cotangent ``cot`` (P, K, p) of its end."""
        a, b = self.method.tableau
        s = len(stages)
        point_bar = [None] * s
        theta_bar, omega_bar = cot.copy(), np.zeros(cot.shape[:2])
        for i in reversed(range(s)):
            k_bar = self.dt * (b[i] * cot + sum(a[j, i] * point_bar[j] for j in range(i + 1, s) if a[j, i]))
            point_bar[i] = self._reverse(stages[i], k_bar, omega_bar)
            theta_bar += point_bar[i]
        return theta_bar, omega_bar


class WeightedFlow(RungeKutta):
    """The limit's weighted particles on finite data in plain NumPy, with the reverse (adjoint)
    products of its velocity: X (n, d), y (n,), omega (K,); theta (K, p = d + 1) = [w | a].

    v_k = -mask (c sum_j r_j grad g_j(theta_k) + lam theta_k),   c = 1 / (alpha n),
    g_j(theta) = a sigma(w . x_j),   r = loss'(u, y),   u = alpha sum_k omega_k g(theta_k)
    (``twolayer.velocity`` with weights: the same field)."""

    def __init__(self, cfg: Config, X, y, omega, compiled: bool = True):
        net = cfg.network
        self.X, self.y, self.omega, self.compiled = X, y, omega, compiled
        self.XT = np.ascontiguousarray(X.T)
        self.alpha, self.c, self.lam = net.alpha, 1.0 / (net.alpha * len(y)), cfg.flow.lam
        self.act, self.params = activations.activation(net.activation), np.asarray(net.activation_params, dtype=float)
        self.loss = activations.loss(cfg.flow.loss)
        self.mask = train_mask(net.train, net.d)
        self.method = integrators.INTEGRATORS[cfg.flow.integrator]
        self.dt = cfg.flow.dt

    def stage(self, theta) -> dict:
        """What a point's velocity and its reverse product need: Z, sigma, sigma', sigma'' (K, n),
        u, r, loss'' (n,) and the velocity v (K, p)."""
        d = self.X.shape[1]
        Z = theta[:, :d] @ self.X.T
        if self.compiled:
            s0, s1, s2 = np.empty_like(Z), np.empty_like(Z), np.empty_like(Z)
            _kernels.features(Z, self.act.code, self.params, s0, s1, s2)
        else:
            s0, s1, s2 = (f(Z, self.params) for f in (self.act.value, self.act.derivative, self.act.second))
        a = theta[:, d]
        u = self.alpha * (self.omega * a) @ s0
        r = self.loss.derivative(u, self.y)
        grad = np.empty_like(theta)
        grad[:, :d] = self.c * a[:, None] * ((s1 * r) @ self.X)
        grad[:, d] = self.c * (s0 @ r)
        v = -self.mask * (grad + self.lam * theta)
        return {"theta": theta, "s0": s0, "s1": s1, "s2": s2, "u": u, "r": r,
                "l2": self.loss.second(u, self.y), "v": v}

    def velocity(self, theta) -> np.ndarray:
        return self.stage(theta)["v"]

    def reverse(self, at: dict, cot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cotangents (theta_bar (P, K, p), omega_bar (P, K)) of the velocity's P cotangents
        ``cot`` (P, K, p) at the stage ``at``: cot . dv/dtheta and cot . dv/domega."""
        X, d, theta = self.X, self.X.shape[1], at["theta"]
        a, s0, s1, s2, r = theta[:, d], at["s0"], at["s1"], at["s2"], at["r"]
        e = -self.mask * cot
        Xe = e[..., :d] @ X.T                                                   # (P, K, n): x_j . e_w
        ea = e[..., d][..., None]
        # each node's gradient of g_j along its cotangent, summed over nodes: the cotangent of r, then u
        u_bar = at["l2"] * self.c * np.sum(a[:, None] * s1 * Xe + s0 * ea, axis=1)      # (P, n)
        feed = self.alpha * self.omega[:, None] * a[:, None] * s1                # d u_j / d w_k, over x_j
        coef = self.c * r * (a[:, None] * s2 * Xe + s1 * ea) + feed * u_bar[:, None, :]
        bar = np.empty_like(e)
        bar[..., :d] = coef @ X
        bar[..., d] = self.c * np.einsum("kj,pkj->pk", s1 * r, Xe) + self.alpha * self.omega * (u_bar @ s0.T)
        bar += self.lam * e
        omega_bar = self.alpha * a * (u_bar @ s0.T)
        return bar, omega_bar

    def _reverse(self, at: dict, cot: np.ndarray, omega_bar: np.ndarray) -> np.ndarray:
        """``reverse`` adding its omega cotangent to ``omega_bar``: compiled (``_kernels.weighted_reverse``),
        or this NumPy twin in blocks of columns when ``compiled`` is False."""
        if self.compiled:
            bar = np.empty_like(cot)
            _kernels.weighted_reverse(self.XT, at["theta"], at["s0"], at["s1"], at["s2"], at["r"], at["l2"],
                                      self.omega, self.mask, np.ascontiguousarray(cot), self.alpha, self.c, self.lam,
                                      bar, omega_bar)
            return bar
        bar = np.empty_like(cot)
        per_block = max(1, BLOCK_BYTES // (8 * cot.shape[1] * len(self.y) * 6))
        for start in range(0, len(cot), per_block):
            rows = slice(start, start + per_block)
            bar[rows], w_bar = self.reverse(at, cot[rows])
            omega_bar[rows] += w_bar
        return bar

    def observables(self, theta, theta0, x, r_weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values (P + 2,), theta_bar (P + 2, K, p), omega_bar (P + 2, K)) of the predictor at the P
        points x, the risk and the mean displacement sum_k omega_k |theta_k - theta0_k|."""
        d, alpha, omega = x.shape[1], self.alpha, self.omega
        W, A = theta[:, :d], theta[:, d]
        P, K = len(x), len(theta)
        values, theta_bar, omega_bar = np.empty(P + 2), np.empty((P + 2, K, d + 1)), np.empty((P + 2, K))
        for rows, inputs in ((slice(0, P), x), (slice(P, P + 1), self.X)):
            Z = inputs @ W.T                                                     # (q, K)
            s0, s1 = self.act.value(Z, self.params), self.act.derivative(Z, self.params)
            g = alpha * A * s0                                                   # (q, K): alpha g_q(theta_k)
            if rows.start == P:                                                  # the risk: mean loss
                u = g @ omega
                lw = self.loss.derivative(u, self.y) / len(self.y)
                values[P] = float(np.mean(self.loss.value(u, self.y)))
                omega_bar[P] = lw @ g
                theta_bar[P, :, :d] = alpha * (omega * A)[:, None] * ((s1 * lw[:, None]).T @ inputs)
                theta_bar[P, :, d] = alpha * omega * (lw @ s0)
            else:
                values[rows] = g @ omega
                omega_bar[rows] = g
                theta_bar[rows, :, :d] = (alpha * omega * A * s1)[:, :, None] * inputs[:, None, :]
                theta_bar[rows, :, d] = alpha * omega * s0
        moved = theta - theta0
        size = np.linalg.norm(moved, axis=1)
        values[P + 1] = float(omega @ size)
        omega_bar[P + 1] = size
        with np.errstate(invalid="ignore", divide="ignore"):
            theta_bar[P + 1] = np.where(size[:, None] > 0, omega[:, None] * moved / size[:, None], 0.0)
        return values, theta_bar, omega_bar


def first_variations(flow: WeightedFlow, theta0, x, steps) -> tuple[np.ndarray, np.ndarray]:
    """(Psi (T, P + 2, K), values (T, P + 2)): d O / d omega_k for the observables of
    ``WeightedFlow.observables`` at the step indices ``steps`` (sorted), by the reverse sweep.
    The forward states are kept (beyond STATES_BYTES: at checkpoints every ~sqrt(N) steps, each
    segment recomputed on the way back)."""
    last = int(steps[-1])
    stored = theta0.nbytes * (last + 1) <= STATES_BYTES
    every = 1 if stored else max(1, math.isqrt(max(last, 1)))
    checkpoints, theta = {0: theta0}, theta0
    for i in range(last):
        theta = flow.step(theta)[0]
        if (i + 1) % every == 0:
            checkpoints[i + 1] = theta
    P2, K = len(x) + 2, len(theta0)
    psi, values = np.zeros((len(steps), P2, K)), np.zeros((len(steps), P2))
    # the active columns: (T, P + 2) observables, those of step s joining the sweep at s
    cot = np.zeros((len(steps), P2, K, theta0.shape[1]))
    order = {int(s): k for k, s in enumerate(steps)}
    start, segment = last + 1, []
    for i in range(last, -1, -1):
        if stored:
            start, segment = i - 1 if i else 0, [checkpoints[i - 1], checkpoints[i]] if i else [theta0]
        elif max(i - 1, 0) < start:                      # the states i - 1 and i, from the checkpoint below
            start = max(c for c in checkpoints if c <= max(i - 1, 0))
            segment = _segment(flow, checkpoints[start], i - start)
        theta_i = segment[i - start]
        if i in order:
            k = order[i]
            values[k], cot[k], psi[k] = flow.observables(theta_i, theta0, x)
        if i == 0:
            break
        live = [k for k, s in enumerate(steps) if s >= i]
        rows = cot[live].reshape(-1, K, theta0.shape[1])
        theta_bar, omega_bar = flow.step_reverse(flow.step(segment[i - 1 - start])[1], rows)
        cot[live] = theta_bar.reshape(len(live), P2, K, -1)
        psi[live] += omega_bar.reshape(len(live), P2, K)
    return psi, values


def _segment(flow, theta, steps) -> list:
    states = [theta]
    for _ in range(steps):
        states.append(flow.step(states[-1])[0])
    return states


def variance(psi: np.ndarray, omega: np.ndarray, symmetric: bool) -> np.ndarray:
    """C = Var_{mu_0} Psi over the rule (psi (..., K), omega (K,)); with mirrored pairs (the rule's
    second half mirrors its first) 2 Var over pairs of their mean."""
    if symmetric:
        half = len(omega) // 2
        psi, omega = (psi[..., :half] + psi[..., half:]) / 2, 2 * omega[:half]
    mean = psi @ omega
    spread = (psi - mean[..., None]) ** 2 @ omega
    return 2 * spread if symmetric else spread


def _at_level(cfg: Config, flow: WeightedFlow, nodes, x, steps) -> dict:
    tic = time.process_time()
    psi, values = first_variations(flow, nodes, x, steps)
    C = variance(psi, flow.omega, cfg.init.symmetric)
    P = len(x)
    return {"predictor": C[:, :P], "risk": C[:, P], "displacement": C[:, P + 1], "f": values[:, :P],
            "limit_risk": values[:, P], "limit_displacement": values[:, P + 1], "seconds": time.process_time() - tic}
