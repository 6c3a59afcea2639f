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
squared or logistic loss, a fixed-step integrator, no energy terms. On the population risk
(Gaussian inputs) the band is computed on the reduced limit (``reduced``, the reverse products of
``reduced_reverse``) for every closed-form activation, for the risk and the mean displacement (a
predictor at a fixed point is not invariant under the reduction's rotations). A kinked kernel
(relu) has no second derivative at parallel pairs, which reduced nodes become when they leave the
teacher's orthogonal complement: refused there, or their second-order terms dropped and said
(``parallel``). On finite data the cost is two forward passes of the
limit (the states kept, or checkpointed and recomputed per segment) and, per observable, one
compiled reverse sweep (``plan``): measured at d = 2, n = 100, 64 steps and 1,024 nodes, one
thread, 0.28 CPU s for one point and 0.47 s for eight, against 0.067 s for the limit itself (4x
and 7x), and 0.03 s (0.45 limit solves) per further point. On the population risk (compiled,
``_kernels.reduced_reverse_sums``), in d = 100 with 1,024 Sobol nodes and 42 steps, one thread:
46-63 CPU s for one to eight times against 16-18 s for the reduced limit (2.8x to 3.8x).

Not computed: the O(1/m) bias of an observable's mean, E O_m - O_inf = b / m with b = (1/2)
[sum_k omega_k H_kk - omega^T H omega], H the observable's Hessian in the node weights. Its
diagonal needs one Hessian-vector product per node (about as many limit solves as nodes), and the
weighted Hessian's spectrum decays slowly (measured at d = 5, tanh, 486 nodes: 1e-2 of its top at
rank 24), so neither a low-rank nor a Hutchinson estimate (relative error 0.65-1.5 per probe)
reaches it at the cost of a few solves.
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
from ..rules import FLUCTUATIONS, POPULATION_BAND, refuse
from .limits import COARSER
from .reduced_reverse import PARALLEL

_kernels = _lazy.module("meanfield._kernels")      # Numba loads on the first band

BLOCK_BYTES = 32 * 2**20       # the NumPy twin's block of observables' (columns, K, n) intermediates
STATES_BYTES = 256 * 2**20     # the forward states kept for the reverse sweep; beyond, checkpoints
COLUMN_SECONDS = 6e-9          # a reverse stage's cost per observable, node and sample (compiled, one thread)
STAGE_SECONDS = 1.2e-8         # a forward stage's per node and sample, run twice (measured, d = 2, tanh)
REVERSE_PAIR_SECONDS = 4e-8    # the population reverse's pair terms per pair, cosine and stage (compiled, one thread)
COLUMN_PAIR_SECONDS = 8e-9     # and its multiply-adds per column, pair, cosine and stage
FINITE_LEVEL = 12              # the default level on finite data
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
        gap = "no error estimate"
        if self.error is not None:
            worst = max(np.max(self.error[name] / np.maximum(getattr(self, name), 1e-300), initial=0.0)
                        for name in ("predictor", "risk"))
            gap = (f"largest gap to level {self.stats.get('coarse_level')}: {worst:.2g} of C (an estimate of that "
                   "level's error)")
        points = (f"{self.x.shape[0]} points: mean C(x, t_end) = {np.mean(self.predictor[-1]):.4g}, " if self.x.size
                  else "")
        dropped = f"; {_dropped(self.stats['dropped'])}" if self.stats.get("dropped") else ""
        return (f"finite-width band at level {self.stats.get('level')} ({self.stats.get('nodes')} nodes), "
                f"{len(self.t)} times, {points}C_risk(t_end) = {self.risk[-1]:.4g}; {gap}{dropped}")

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


def fluctuations(cfg: Config, level: int | None = None, x=None, times=None, data=None,
                 estimate: bool = True, parallel: str = "refuse") -> Fluctuations:
    """C(x, t), C_risk(t) and C_displacement(t) of cfg's noiseless mean-field flow (module docstring)
    at the points ``x`` (P, d) (default: the training inputs; none on the population risk) and
    ``times`` (default: cfg's record times; each a multiple of flow.dt in [0, t_end]). On finite
    data (``data``: arrays (X, y) as ``simulate`` takes them) from the rule of
    ``limits.mean_field_limit`` at ``level`` (default 12); on the population risk from the reduced
    limit's rule (``reduced``: Gauss for k <= 3 reduced directions, else Sobol; ``level`` default
    its DEFAULT_LEVELS). ``estimate``: also at the coarser level, the gaps in ``error``.
    ``parallel`` (population risk, kinked kernels): "refuse" where two reduced nodes become nearly
    parallel (the kernel's second partials diverge there), or "drop" their second-order terms, an
    approximation that ``stats["dropped"]``, ``describe`` and a warning state."""
    check(cfg)
    if parallel not in PARALLEL:
        raise ConfigError.invalid("parallel", parallel, " or ".join(repr(p) for p in PARALLEL))
    steps = step_indices(cfg, times)
    x, levels, rules, make, seconds = (_population if cfg.data.kind == "population" else _finite)(
        cfg, level, x, data, estimate, parallel)
    planned = plan(levels, [len(omega) for _, omega in rules], len(x), steps, seconds)
    if planned["seconds"] > LONG_SECONDS:
        warnings.warn(f"meanfield: {describe_plan(planned)}", stacklevel=2)
    flows = [make(omega) for _, omega in rules]
    found = [_at_level(cfg, flow, nodes, x, steps) for flow, (nodes, _) in zip(flows, rules)]
    fine = found[0]
    dropped = max(getattr(flow, "dropped", 0.0) for flow in flows)
    if dropped:
        warnings.warn(f"meanfield: {_dropped(dropped)}; parallel='refuse' refuses instead", stacklevel=2)
    error = None
    if estimate:
        error = {name: np.abs(fine[name] - found[1][name]) for name in ("predictor", "risk", "displacement")}
    stats = {"level": levels[0], "nodes": len(rules[0][1]), "seconds": fine["seconds"],
             "coarse_level": levels[-1] if estimate else None, "plan": planned, "dropped": dropped}
    return Fluctuations(steps * cfg.flow.dt, x, fine["predictor"], fine["risk"], fine["displacement"], fine["f"],
                        fine["limit_risk"], fine["limit_displacement"], error, stats, cfg)


def check(cfg: Config) -> None:
    """Refuse, by name, a config whose band is not computed here (``rules.FLUCTUATIONS`` on finite
    data, ``rules.POPULATION_BAND`` on the population risk)."""
    if cfg.data.kind == "population":
        refuse(cfg, POPULATION_BAND, " (the band of the population risk, on the reduced limit)")
    else:
        refuse(cfg, FLUCTUATIONS, " (the finite-width band of a noiseless mean-field flow with a smooth flow map)")


def _dropped(share: float) -> str:
    return (f"the band dropped the second derivatives of nearly parallel pairs of reduced nodes (up to {share:.2g} of "
            "the pair terms at one stage; parallel='drop'): an approximation")


def _finite(cfg: Config, level, x, data, estimate, parallel) -> tuple:
    """(points, levels, rules, the flow of a rule's weights, the cost model) on finite data."""
    dataset = run_data(cfg, data)
    X, y = (np.ascontiguousarray(a, dtype=np.float64) for a in (dataset.X, dataset.y))
    x = X if x is None else _points(x, cfg.network.d)
    level = FINITE_LEVEL if level is None else level
    levels = [level] + ([max(1, round(COARSER * level))] if estimate else [])
    rules = [quadrature.initial_rule(cfg.network, cfg.init, at) for at in levels]
    stages, n = integrators.INTEGRATORS[cfg.flow.integrator].stages, len(y)

    def seconds(K, column_steps, last):
        return K * n * stages * (column_steps * COLUMN_SECONDS + 2 * last * STAGE_SECONDS)
    return x, levels, rules, lambda omega: WeightedFlow(cfg, X, y, omega), seconds


def _population(cfg: Config, level, x, data, estimate, parallel) -> tuple:
    """``_finite`` on the population risk: the reduced limit's rule (no points: the reduced measure
    is invariant, a predictor at a point is not)."""
    from . import reduced

    for name, given in (("x", x), ("data", data)):
        if given is not None:
            raise ConfigError.invalid(name, "given", "None on the population risk (its band is that of the risk "
                                      "and the mean displacement)")
    problem, _ = reduced.ReducedFlow.of(cfg)
    rule = "gauss" if problem.k <= 3 else "sobol"
    make, coarser, options = reduced.RULES[rule]
    level = reduced.DEFAULT_LEVELS[rule] if level is None else level
    levels = [level] + ([coarser(level)] if estimate else [])
    rules = [make(cfg.network, cfg.init, at, problem.k, **(options if at != level else {})) for at in levels]
    stages, cosines = integrators.INTEGRATORS[cfg.flow.integrator].stages, len(problem.cosines[0])

    def seconds(K, column_steps, last):
        return K * K * cosines * stages * (last * (2 * reduced.REDUCED_PAIR_SECONDS + REVERSE_PAIR_SECONDS)
                                           + column_steps * COLUMN_PAIR_SECONDS)
    make_flow = lambda omega: PopulationFlow(cfg, problem, omega, parallel)
    return np.zeros((0, cfg.network.d)), levels, rules, make_flow, seconds


def plan(levels: list, nodes: list, points: int, steps: np.ndarray, seconds) -> dict:
    """The cost before any work: nodes per level, observables (columns: points + 2 per time), and
    the estimated CPU seconds ``seconds(nodes, column-steps, steps)``: two forward passes and the
    reverse sweep, a column at step s swept back over s steps."""
    column_steps = (points + 2) * int(np.sum(steps))
    total = sum(seconds(K, column_steps, int(steps[-1])) for K in nodes)
    return {"levels": levels, "nodes": nodes, "columns": (points + 2) * len(steps), "seconds": total}


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
        P = len(x)
        values, theta_bar, omega_bar = _displacement(theta, theta0, omega, P + 1)
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
        return values, theta_bar, omega_bar




def _displacement(theta, theta0, omega, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, theta_bar, omega_bar) with rows + 1 rows, the last the mean displacement
    sum_k omega_k |theta_k - theta0_k| and its derivatives; the others for the caller to fill."""
    values, theta_bar = np.empty(rows + 1), np.empty((rows + 1,) + theta.shape)
    omega_bar = np.empty((rows + 1, len(theta)))
    moved = theta - theta0
    size = np.linalg.norm(moved, axis=1)
    values[rows], omega_bar[rows] = float(omega @ size), size
    with np.errstate(invalid="ignore", divide="ignore"):
        theta_bar[rows] = np.where(size[:, None] > 0, omega[:, None] * moved / size[:, None], 0.0)
    return values, theta_bar, omega_bar

class PopulationFlow(RungeKutta):
    """The reduced limit of the population flow (``reduced``: nodes z = (w_S, r, a) (N, k + 2),
    weights omega) with its velocity's reverse products (``reduced_reverse``)."""

    def __init__(self, cfg: Config, problem, omega, parallel: str = "refuse"):
        self.problem, self.omega, self.parallel = problem, omega, parallel
        self.method, self.dt = integrators.INTEGRATORS[cfg.flow.integrator], cfg.flow.dt
        self.dropped = 0.0         # the largest share of (pair, cosine) terms dropped at one stage

    def stage(self, Z) -> dict:
        from . import reduced

        return {"theta": Z, "v": reduced.velocity(self.problem, Z, self.omega, compiled=True)}

    def _reverse(self, at: dict, cot: np.ndarray, omega_bar: np.ndarray) -> np.ndarray:
        from . import reduced_reverse

        bar, w_bar, dropped = reduced_reverse.reverse(self.problem, at["theta"], self.omega, cot, self.parallel)
        omega_bar += w_bar
        N, (c, _) = len(self.omega), self.problem.cosines
        self.dropped = max(self.dropped, dropped / (N * N * len(c) + N * len(self.problem.teacher)))
        return bar

    def observables(self, Z, Z0, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values (2,), Z_bar (2, N, k + 2), omega_bar (2, N)) of the population risk (dR/dz_k =
        omega_k g_k, dR/domega_k = Phi(z_k)) and the mean displacement sum_k omega_k |z_k - z0_k|,
        which is the particles' own (a particle's direction across S never moves); ``x``: none."""
        from . import reduced, reduced_reverse

        g, phi = reduced_reverse.gradient(self.problem, Z, self.omega)
        values, theta_bar, omega_bar = _displacement(Z, Z0, self.omega, 1)
        values[0] = reduced.risk(self.problem, Z, self.omega, compiled=True)
        theta_bar[0], omega_bar[0] = self.omega[:, None] * g, phi
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
