"""The infinite-width limit of the population flow in high dimension, reduced by symmetry.

For Gaussian inputs x ~ N(0, I_d), a teacher whose neurons span S (dimension k, orthonormal basis
Q (d, k)) and an initial law invariant under the rotations that fix S (w ~ N(0, w_scale^2 I_d), a
independent of w), the flow commutes with those rotations, so the limit measure mu_t stays
invariant. A particle then reduces to z = (w_S, r, a) in R^(k + 2): w_S = Q^T w, r = |w_perp|, its
direction e in S^perp uniform and independent of z. Two particles' inner product is
w_S . w_S' + r r' c with c = e . e', the cosine of two independent uniform directions in d - k
dimensions, whose density is proportional to (1 - c^2)^((d - k - 3) / 2) on [-1, 1]: integrated by
Gauss–Jacobi (``cosine_rule``), not sampled. With (kappa, A, B) the pair terms of
``population.pair_terms`` averaged over c (an overline), u_j = omega_j a_j, and the teacher [U_S | c*]
in these coordinates, the reduced particles move by the weighted-particle velocity of
``population.population_velocity`` (mean-field scaling, v = -grad / alpha^2 - lam z):

    grad_{w_S} = a [(alpha^2 sum_j u_j A_ij - alpha sum_j c*_j A*_ij) w_S + alpha^2 sum_j u_j B_ij w_S,j
                    - alpha sum_j c*_j B*_ij u_S,j]
    grad_r     = a [(alpha^2 sum_j u_j A_ij - alpha sum_j c*_j A*_ij) r + alpha^2 sum_j u_j r_j (B c)_ij]
    grad_a     = alpha^2 sum_j u_j kappa_ij - alpha sum_j c*_j kappa*_ij

(the component of grad_{w_perp} across e averages to zero, so e never moves: r carries it all).
The limit's population risk is R = alpha^2/2 sum_i u_i (sum_j u_j kappa_ij) - alpha sum_i u_i
(sum_j c*_j kappa*_ij) + c*^T K** c* / 2. The cost is N^2 L pair terms per drift for N reduced
particles and L cosine nodes, independent of d: the m = infinity limit in d = 100 costs a
(k + 2)-dimensional quadrature. ``sums`` is the NumPy twin of ``_kernels.reduced_sums``.

Mei, Montanari & Nguyen's isotropic Gaussian classes (y = +-1, x ~ N(0, (1 + y delta)^2 I_d)) are
the case k = 0 (no teacher direction, z = (r, a)): a mixture of two Gaussian laws, whose kernels
are those of tau w, and a label term E[y sigma(w.x)] of one particle (``LAWS``), in place of the
teacher's pairs. Shapes: Z (N, k + 2) = [w_S | r | a], omega (N,).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..engine.controller import run
from ..engine.observables import observe
from ..engine.system import System
from ..errors import ConfigError
from ..model import integrators, population, quadrature
from ..model.activations import ACTIVATIONS
from ..model.data import check_start
from ..model.twolayer import output_weights, train_mask
from ..rules import REDUCED, broken, refuse
from ..store.checkpoint import arrays_hash
from .limits import COARSER

COSINES = 10            # Gauss–Jacobi nodes in c; d - k = 90: relative error 1e-13 (8: 6e-12, 12: round-off)


def cosine_rule(dim: int, n: int = COSINES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (n,) of c = e . e' for independent uniform unit vectors e, e' in R^dim:
    c = ±1 for dim = 1; Gauss–Jacobi with exponents (dim - 3) / 2 for dim >= 2 (exact for
    polynomials in c of degree <= 2n - 1); c = 0 for dim = 0 (r is then 0)."""
    if dim == 0:
        return np.zeros(1), np.ones(1)
    if dim == 1:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    from scipy.special import roots_jacobi

    c, w = roots_jacobi(n, (dim - 3) / 2, (dim - 3) / 2)
    return c, w / w.sum()


def teacher_basis(teacher: np.ndarray) -> np.ndarray:
    """An orthonormal basis Q (d, k) of the span of the teacher's neurons (rows of teacher[:, :d])."""
    d = teacher.shape[1] - 1
    if not len(teacher):
        return np.zeros((d, 0))
    _, s, vt = np.linalg.svd(teacher[:, :d], full_matrices=False)
    k = int(np.sum(s > 1e-12 * s[0])) if len(s) and s[0] > 0 else 0
    return np.ascontiguousarray(vt[:k].T)


def _teacher_law(cfg: Config, teacher) -> tuple[np.ndarray, np.ndarray]:
    """data.kind = "population": x ~ N(0, I_d), y = f*(x) (the teacher (m0, d + 1) ``simulate``
    draws, or the one given)."""
    from ..engine.controller import run_data

    teacher = run_data(cfg).teacher if teacher is None else np.asarray(teacher, dtype=float)
    return np.array([[1.0, 1.0, 0.0]]), teacher


def _class_law(cfg: Config, teacher) -> tuple[np.ndarray, np.ndarray]:
    """data.kind = "isotropic_gaussians": y = +-1 with probability 1/2, x ~ N(0, (1 + y delta)^2 I_d)."""
    if teacher is not None:
        raise ConfigError.invalid("teacher", "an array", "None with data.kind = 'isotropic_gaussians' (no teacher)")
    delta = cfg.data.delta
    return np.array([[0.5, (1 + delta) ** 2, 1.0], [0.5, (1 - delta) ** 2, -1.0]]), np.zeros((0, cfg.network.d + 1))


# data.kind -> (components (C, 3): rows (probability, tau^2, label) of the input law, a mixture of
# N(0, tau^2 I_d) with a constant label each (label 0: none), and the teacher (m0, d + 1))
LAWS = {"population": _teacher_law, "isotropic_gaussians": _class_law}


@dataclass(frozen=True)
class ReducedFlow:
    """The reduced flow of one config: activation, alpha, lam, the train mask (k + 2,), the teacher
    [U_S | c*] (m0, k + 1) in S's basis, the input law's components (C, 3) (``LAWS``) and the
    cosine rule."""

    activation: str
    params: np.ndarray
    alpha: float
    lam: float
    mask: np.ndarray
    teacher: np.ndarray
    components: np.ndarray
    cosines: tuple

    @classmethod
    def of(cls, cfg: Config, teacher=None, cosines: int = COSINES) -> tuple["ReducedFlow", np.ndarray]:
        """(the reduced flow, the basis Q (d, k)) of cfg's population flow (``teacher``: the
        population's, default the one ``simulate(cfg)`` draws)."""
        net = cfg.network
        components, teacher = LAWS[cfg.data.kind](cfg, teacher)
        Q = teacher_basis(teacher)
        d, k = net.d, Q.shape[1]
        mask = train_mask(net.train, d)
        mask = np.concatenate([mask[:1].repeat(k + 1), mask[d:]])
        reduced_teacher = np.column_stack([teacher[:, :d] @ Q, teacher[:, d]])
        params = np.asarray(net.activation_params, dtype=float)
        return cls(net.activation, params, float(net.alpha), float(cfg.flow.lam), mask, reduced_teacher, components,
                   cosine_rule(d - k, cosines)), Q

    @property
    def k(self) -> int:
        return self.teacher.shape[1] - 1


def sums(problem: ReducedFlow, Z: np.ndarray, omega: np.ndarray, compiled: bool = False, rows=None):
    """(Kbar, Abar, BS, Br): sum_j u_j kappa_ij, sum_j u_j A_ij (N,), sum_j u_j B_ij w_S,j (N, k),
    sum_j u_j r_j (B c)_ij (N,), each pair term averaged over the cosine rule and over the input
    law's components (x ~ N(0, tau^2 I): the terms of tau w, times 1, tau^2, tau, tau); u = omega a.
    rows (P, k + 2): the particles i to sum for (default Z; NumPy only)."""
    k = problem.k
    total = None
    for p, tau2, _ in problem.components:
        tau = np.sqrt(tau2)
        scale = np.concatenate([np.full(k + 1, tau), [1.0]])
        part = _standard_sums(problem, Z * scale, omega, compiled, None if rows is None else rows * scale)
        part = [p * t for t in (part[0], tau2 * part[1], tau * part[2], tau * part[3])]
        total = part if total is None else [a + b for a, b in zip(total, part)]
    return tuple(total)


def _standard_sums(problem: ReducedFlow, Z, omega, compiled, rows):
    """``sums`` for x ~ N(0, I_d); ``_kernels.reduced_sums`` for the compiled closed forms."""
    k, (c, nu) = problem.k, problem.cosines
    if compiled and rows is None and problem.activation in population.CLOSED_FORMS:
        from .. import _kernels

        N = len(Z)
        Kbar, Abar, Br, BS = np.empty(N), np.empty(N), np.empty(N), np.empty((N, k))
        _kernels.reduced_sums(np.ascontiguousarray(Z), np.ascontiguousarray(omega), c, nu,
                              ACTIVATIONS[problem.activation].code, problem.params, Kbar, Abar, BS, Br)
        return Kbar, Abar, BS, Br
    rows = Z if rows is None else rows
    WS, r, u = Z[:, :k], Z[:, k], omega * Z[:, k + 1]
    q, qi = (np.sum(P[:, :k + 1] ** 2, axis=1) for P in (Z, rows))
    rho = (rows[:, :k] @ WS.T)[:, :, None] + np.outer(rows[:, k], r)[:, :, None] * c        # (P, N, L)
    kappa, A, B = population.pair_terms(problem.activation, qi[:, None, None], q[None, :, None], rho, problem.params)
    EB = B @ nu
    return (kappa @ nu) @ u, (A @ nu) @ u, (EB * u) @ WS, ((B * c) @ nu) @ (u * r)


def _target_sums(problem: ReducedFlow, Z):
    """(E[y sigma(w.x)], the coefficients of w and of U_S c* in its gradient): (N,), (N,), (N, k).
    The teacher's pairs need no cosine (u_j lies in S); each labelled component adds p y
    (mean(tau^2 q), tau^2 slope(tau^2 q)) (``population.mean_terms``)."""
    k = problem.k
    US, cs = problem.teacher[:, :k], problem.teacher[:, k]
    WS, r = Z[:, :k], Z[:, k]
    q = np.sum(WS * WS, axis=1) + r * r
    kappa, A, B = population.pair_terms(problem.activation, q[:, None], np.sum(US * US, axis=1)[None, :], WS @ US.T,
                                        problem.params)
    Kt, At, BtU = kappa @ cs, A @ cs, (B * cs) @ US
    for p, tau2, label in problem.components:
        if label:
            mean, slope = population.mean_terms(problem.activation, tau2 * q, problem.params)
            Kt, At = Kt + p * label * mean, At + p * label * tau2 * slope
    return Kt, At, BtU


def velocity(problem: ReducedFlow, Z, omega, compiled: bool = False) -> np.ndarray:
    """dZ/dt (N, k + 2) of the reduced limit (module docstring)."""
    k, alpha = problem.k, problem.alpha
    Kbar, Abar, BS, Br = sums(problem, Z, omega, compiled)
    Kt, At, BtU = _target_sums(problem, Z)
    a = Z[:, k + 1]
    radial = alpha ** 2 * Abar - alpha * At
    grad = np.empty_like(Z)
    grad[:, :k] = a[:, None] * (radial[:, None] * Z[:, :k] + alpha ** 2 * BS - alpha * BtU)
    grad[:, k] = a * (radial * Z[:, k] + alpha ** 2 * Br)
    grad[:, k + 1] = alpha ** 2 * Kbar - alpha * Kt
    return (-grad / alpha ** 2 - problem.lam * Z) * problem.mask


def risk(problem: ReducedFlow, Z, omega, compiled: bool = False) -> float:
    """The limit's population risk E[(f - y)^2] / 2 at the reduced measure (Z, omega)."""
    k, alpha = problem.k, problem.alpha
    u = omega * Z[:, k + 1]
    US, cs = problem.teacher[:, :k], problem.teacher[:, k]
    Ktt = population.kernel_matrices(problem.activation, US, US, problem.params)[0]
    labels = problem.components[:, 0] @ problem.components[:, 2] ** 2
    return float(0.5 * alpha ** 2 * u @ sums(problem, Z, omega, compiled)[0] - alpha * u @ _target_sums(problem, Z)[0]
                 + 0.5 * cs @ Ktt @ cs + 0.5 * labels)


def reduce(theta: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Reduced coordinates Z (m, k + 2) = [Q^T w | |w - Q Q^T w| | a] of particles theta (m, d + 1)."""
    d, k = Q.shape
    WS = theta[:, :d] @ Q
    return np.column_stack([WS, np.linalg.norm(theta[:, :d] - WS @ Q.T, axis=1), theta[:, d]])


def predictor_distance(problem: ReducedFlow, Q: np.ndarray, theta: np.ndarray, network, Z, omega) -> float:
    """||f_m - f_inf||_L2 over the input law between the m-particle network theta (m, d + 1) (its
    own scale alpha s(m)) and the reduced limit (Z, omega): |f_m|^2 by the exact kernels, |f_inf|^2
    and the cross term by the cosine rule (the limit is invariant, so a fixed particle meets its
    particles at the law of c)."""
    a, scale = output_weights(theta, network)
    k, alpha = problem.k, problem.alpha
    u = omega * Z[:, k + 1]
    own = sum(p * population.predictor_norm(theta * np.append(np.full(theta.shape[1] - 1, np.sqrt(tau2)), 1.0),
                                            network) ** 2 for p, tau2, _ in problem.components)
    limit = alpha ** 2 * u @ sums(problem, Z, omega, compiled=True)[0]
    cross = scale * alpha * a @ sums(problem, Z, omega, rows=reduce(theta, Q))[0]
    return float(np.sqrt(max(own + limit - 2 * cross, 0.0)))


def lift(Z: np.ndarray, Q: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Full particles theta (N, d + 1) = [Q w_S + r e | a] for unit directions e (N, d) orthogonal to Q."""
    k = Q.shape[1]
    return np.column_stack([Z[:, :k] @ Q.T + Z[:, k:k + 1] * directions, Z[:, k + 1]])


@dataclass(frozen=True)
class ReducedLimit:
    """The reduced limit's trajectory: record times t (T,), the population risk (T,), the reduced
    particles (T, N, k + 2) and their weights (N,), the basis Q (d, k), the level, the risk at the
    coarser level (T,) and ``error``: the largest gap between the two, an estimate of the coarser
    level's error from two levels, not a bound (both None without ``estimate``); the config and
    the rule that computed it."""

    t: np.ndarray
    risk: np.ndarray
    snapshots: np.ndarray
    weights: np.ndarray
    basis: np.ndarray
    level: int
    coarse_risk: np.ndarray | None
    error: float | None
    config: Config | None = None
    rule: str = "gauss"

    @property
    def resolved(self) -> bool | None:
        """Whether the two levels agree to a tenth of the risk's largest value (None without an
        estimate): an unresolved estimate is no error bar, raise the level."""
        return None if self.error is None else bool(self.error < 0.1 * float(np.max(np.abs(self.risk))))

    def describe(self) -> str:
        """One line: the level, the nodes, the risk and what the error estimate is."""
        k = self.basis.shape[1]
        line = (f"reduced limit ({self.rule} rule, level {self.level}): {len(self.weights):,} weighted nodes in "
                f"{k + 2} reduced coordinates, t = {self.t[-1]:.6g}, population risk {self.risk[0]:.4g} -> "
                f"{self.risk[-1]:.4g}")
        if self.error is None:
            return line + ", no error estimate"
        return line + (f", error estimate {self.error:.2g} (two levels: an estimate, not a bound)" if self.resolved
                       else f", error estimate not resolved (the levels differ by {self.error:.2g}, over a tenth "
                            "of the risk): raise --level")

    def save(self, path) -> Path:
        """Write into the folder ``path`` (created if needed): arrays.npz, config.toml, observables.csv
        (t, the risk, the coarser level's risk) and a sealed manifest.json of kind "reduced_limit"."""
        from ..store import results

        arrays = {"t": self.t, "risk": self.risk, "snapshots": self.snapshots, "weights": self.weights,
                  "basis": self.basis}
        if self.coarse_risk is not None:
            arrays["coarse_risk"] = self.coarse_risk
        columns = [self.t, self.risk] + ([self.coarse_risk] if self.coarse_risk is not None else [])
        header = "t,population_risk" + (",coarse_level_risk" if self.coarse_risk is not None else "")
        return results.save_sealed(path, KIND, arrays, self.config, (header, columns), level=self.level,
                                   rule=self.rule, error=self.error)

    @classmethod
    def load(cls, path) -> "ReducedLimit":
        """Read a folder written by :meth:`save`; CorruptedResultError on any damage or edit."""
        from ..store import files, results

        manifest, config, arrays = results.load_sealed(path, KIND, "a saved reduced limit",
                                                       ("t", "risk", "snapshots", "weights", "basis"))
        get = lambda key: files.field(manifest, key, Path(path) / results.MANIFEST)
        return cls(arrays["t"], arrays["risk"], arrays["snapshots"], arrays["weights"], arrays["basis"],
                   int(get("level")), arrays.get("coarse_risk"), get("error"), config, get("rule"))


KIND = "reduced_limit"                 # a saved reduced limit's manifest kind


def applies(cfg: Config) -> tuple:
    """() when ``reduced_limit`` computes cfg's limit, else (parameter, value, what is allowed)
    (``rules.REDUCED``). data.kind = "isotropic_gaussians" with online SGD: the limit is the
    population gradient flow of the law it samples (m -> infinity and SGD's noise, of variance
    ~ dt / batch, gone)."""
    rule = broken(cfg, REDUCED)
    return () if rule is None else (rule.field, rule.value(cfg), rule.allowed(cfg) if callable(rule.allowed)
                                    else rule.allowed)


@dataclass(frozen=True)
class ReducedView:
    """The reduced limit at a record time, for the shared registry of observables: its risk."""

    system: "Reduced"
    Z: np.ndarray

    @property
    def train_risk(self) -> float:
        return risk(self.system.flow, self.Z, self.system.omega, self.system.compiled)


class Reduced(System):
    """The reduced limit as a system the controller runs: reduced particles Z (N, k + 2) of weights
    omega (N,), moved by ``velocity`` with cfg's integrator and dt (fixed or error-controlled
    steps), recorded at cfg's record times up to ``until``; its ``train_risk`` is the limit's
    population risk, and every record keeps Z."""

    def __init__(self, cfg: Config, flow: ReducedFlow, Z0: np.ndarray, omega: np.ndarray, compiled: bool = True,
                 until: float | None = None):
        self.cfg, self.flow, self.Z0, self.omega, self.compiled, self.until = cfg, flow, Z0, omega, compiled, until
        with self.session():
            self.first = self.observe({"Z": Z0}, 0.0)
        check_start(self.first["train_risk"], {"Z": Z0})

    def initial(self) -> dict:
        return {"Z": self.Z0.copy()}

    def identity(self) -> str:
        flow = self.flow
        return arrays_hash(self.Z0, self.omega, flow.teacher, flow.components, *flow.cosines)

    def steps(self) -> np.ndarray:
        steps = super().steps()
        return steps if self.until is None else steps[steps * self.cfg.flow.dt <= self.until * (1 + 1e-12)]

    def _velocity(self, Z):
        return velocity(self.flow, Z, self.omega, self.compiled)

    def advance(self, state: dict, draws, noise, scale, k: int):
        flow = self.cfg.flow
        for _ in range(k):
            state["Z"] = integrators.step(state["Z"], self._velocity, flow.dt, flow.integrator)

    def drift(self, name: str):
        return self._velocity

    def counted(self, name: str):
        return self.flow.mask.astype(bool)

    def observe(self, state: dict, t: float) -> dict:
        return observe(ReducedView(self, state["Z"]), ())

    def snapshot(self, state: dict):
        return state["Z"].copy()

    def outcome(self, state: dict) -> dict:
        return {"theta": state["Z"], "theta0": self.Z0, "weights": self.omega,
                "stats": {"nodes": len(self.omega), "threads": 1, "compile_seconds": 0.0}}


# the coarser level of each rule, and how it is drawn: nested Sobol sets share their points and
# their errors, so the coarser Sobol set is scrambled independently
RULES = {"gauss": (quadrature.reduced_rule, lambda level: max(1, round(COARSER * level)), {}),
         "sobol": (quadrature.reduced_sobol, lambda level: level - 1, {"seed": 1}),
         "rays": (quadrature.reduced_rays, lambda level: max(1, round(COARSER * level)), {})}


REDUCED_PAIR_SECONDS = 2.6e-8   # a reduced drift's cost per (pair, cosine node): measured 2.5e-8 to 2.7e-8
DEFAULT_LEVELS = {"gauss": 4, "sobol": 10, "rays": 8}


def default_rule(cfg: Config, k: int) -> str:
    """"rays" where it applies (``check_rule``; k <= 3), else "gauss"."""
    try:
        check_rule(cfg, "rays")
    except ConfigError:
        return "gauss"
    return "rays" if k <= 3 else "gauss"


def check_rule(cfg: Config, rule: str) -> None:
    """Refuse, by name, a rule that does not fit cfg: "rays" needs a flow that carries rays to rays
    (a positively 1-homogeneous activation, both layers trained) and a Gaussian a."""
    if rule not in RULES:
        raise ConfigError.invalid("rule", rule, f"one of {', '.join(RULES)}")
    if rule == "rays":
        if ACTIVATIONS[cfg.network.activation].homogeneity != 1:
            raise ConfigError.invalid("network.activation", cfg.network.activation, "a positively 1-homogeneous "
                                      "activation (relu, leaky_relu, linear) for rule='rays'")
        if cfg.network.train != "both":
            raise ConfigError.invalid("network.train", cfg.network.train, "'both' for rule='rays' (the flow is "
                                      "1-homogeneous in (w, a) only when both layers move)")
        if cfg.init.a_law != "gaussian":
            raise ConfigError.invalid("init.a_law", cfg.init.a_law, "'gaussian' for rule='rays' (a law with a "
                                      "density in (w, a), integrated along each ray)")


def _chosen(cfg: Config, level, rule, teacher, cosines) -> tuple:
    """(the reduced flow, the basis Q, the rule, the level) for cfg, refused by name where the
    reduction or the rule does not fit; rule and level default to ``default_rule`` and DEFAULT_LEVELS."""
    refuse(cfg, REDUCED, " (reduced_limit)")
    flow, Q = ReducedFlow.of(cfg, teacher, cosines)
    rule = rule or default_rule(cfg, flow.k)
    check_rule(cfg, rule)
    return flow, Q, rule, DEFAULT_LEVELS[rule] if level is None else level


def plan(cfg: Config, level: int | None = None, rule: str | None = None, estimate: bool = True,
         cosines: int = COSINES) -> dict:
    """The cost of ``reduced_limit(cfg, level, rule)`` before any work: the rule (default
    ``default_rule``) and level (default ``DEFAULT_LEVELS``), the reduced coordinates (k + 2), the
    nodes at ``level`` and at the coarser level of the estimate, the steps, and the estimated CPU
    seconds (N^2 pairs times the cosine nodes per drift, each at REDUCED_PAIR_SECONDS, times the
    integrator's stages)."""
    flow, _, rule, level = _chosen(cfg, level, rule, None, cosines)
    make, coarser, options = RULES[rule]
    levels = [level] + ([coarser(level)] if estimate else [])
    nodes = [len(make(cfg.network, cfg.init, at, flow.k, **options)[1]) for at in levels]
    stages = integrators.INTEGRATORS[cfg.flow.integrator].stages
    steps = cfg.flow.n_steps
    seconds = steps * stages * sum(N * N * cosines for N in nodes) * REDUCED_PAIR_SECONDS
    return {"rule": rule, "k": flow.k, "levels": levels, "nodes": nodes, "steps": steps, "seconds": seconds}


def describe_plan(cfg: Config, found: dict) -> str:
    """One line: what the reduced limit will compute and how long it should take."""
    minutes = found["seconds"] / 60
    cost = f"about {minutes / 60:.3g} CPU-hours" if minutes >= 60 else f"about {minutes:.1f} CPU-minutes"
    nodes = ", ".join(f"{N:,} nodes at level {L}" for N, L in zip(found["nodes"], found["levels"]))
    return (f"the reduced limit in d = {cfg.network.d} ({found['k'] + 2} reduced coordinates, {found['rule']} rule): "
            f"{nodes}, "
            f"{found['steps']} steps each: {cost} (estimated)")


def reduced_limit(cfg: Config, level: int | None = None, rule: str | None = None, teacher=None, cosines: int = COSINES,
                  estimate: bool = True, compiled: bool = True, until: float | None = None, progress=None,
                  checkpoint=None) -> ReducedLimit:
    """The infinite-width limit of cfg's population flow by the symmetry reduction (module
    docstring): a rule of init's law in the reduced coordinates at ``level`` (default
    ``DEFAULT_LEVELS``; ``rule`` default ``default_rule``: "rays" where it applies; "gauss": the tensor
    rule ``quadrature.reduced_rule``, for small k; "sobol": 2^level points, ``quadrature.reduced_sobol``;
    "rays": for ReLU-like networks with both layers trained, rays whose weights integrate the radius
    exactly, ``quadrature.reduced_rays``: its snapshots are the rays' points, at |z(0)| = 1)
    moved by cfg's integrator and dt to cfg's record times (the controller: progress, divergence,
    checkpoints), the error estimated against the coarser level (2/3 of it for "gauss" and "rays"; for
    "sobol" half the points, scrambled independently); ``teacher`` (m0, d + 1): default, the teacher
    ``simulate(cfg)`` draws; ``until``: only cfg's record times up to it. ``checkpoint``: a folder
    (each level in its subfolder ``level-L``): an interrupted computation resumes bit for bit."""
    flow, Q, rule, level = _chosen(cfg, level, rule, teacher, cosines)
    make, coarser, options = RULES[rule]

    def solve(at_level, **options):
        Z, omega = make(cfg.network, cfg.init, at_level, flow.k, **options)
        system = Reduced(cfg, flow, Z, omega, compiled, until)
        folder = None if checkpoint is None else Path(checkpoint) / f"level-{at_level}"
        return run(system, progress=progress, checkpoint=folder)

    fine = solve(level)
    risks = fine.observables["train_risk"]
    coarse = solve(coarser(level), **options).observables["train_risk"] if estimate else None
    error = float(np.max(np.abs(risks - coarse))) if estimate else None
    return ReducedLimit(fine.t, risks, fine.snapshots, fine.weights, Q, level, coarse, error, cfg, rule)
