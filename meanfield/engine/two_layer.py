"""The two-layer network as a system of particles theta (m, d + 1), with ``theta_tangent``, the
tangent model at theta0 trained in lockstep (same samples, same noise), when the ``tangent_gap``
diagnostic asks for it. Its steps go through the drift strategy chosen once (``drifts.strategy``:
fused, BLAS or exact population); its noise is the controller's; its samples are the full batch,
minibatches without replacement within a step, or fresh samples of the data law (online SGD).
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from .. import _lazy
from ..config import Config
from ..errors import DataError
from ..model.data import Dataset, check_start, draw
from ..model.init import initial_particles
from ..rules import WEIGHTED, refuse
from ..store import checkpoint
from . import drifts, threads as thread_policy
from .observables import compute
from .problem import Problem, build
from .system import System

_kernels = _lazy.module("meanfield._kernels")      # Numba loads on the first run


class TwoLayer(System):
    """A two-layer network's particles (module docstring); made by ``prepare``."""

    streams = ("noise", "batch")

    @staticmethod
    def takes(cfg: Config) -> bool:
        return cfg.network.depth == 1

    @staticmethod
    def inputs(cfg: Config, theta0, weights) -> tuple:
        """The user's initial particles (m, d + 1) and weights (m,), validated (or None)."""
        return (None if theta0 is None else _checked_particles(theta0, cfg),
                None if weights is None else _checked_weights(weights, cfg))

    @classmethod
    def prepare(cls, cfg: Config, dataset: Dataset, rng_init, theta0=None, weights=None) -> "TwoLayer":
        """Draw theta0 (unless given), choose threads and the drift strategy, compile (or load)
        the kernels, and take the record at t = 0 (refused if its risk is not finite)."""
        theta0 = initial_particles(cfg.network, cfg.init, rng_init) if theta0 is None else theta0
        return cls(build(cfg, dataset, theta0, weights), dataset)

    def __init__(self, problem: Problem, dataset: Dataset):
        cfg = problem.cfg
        flow = cfg.flow
        self.cfg, self.problem, self.dataset = cfg, problem, dataset
        m, p = problem.theta0.shape
        self.noise_shape = (m, p)
        self.batch = flow.batch_size or len(problem.y)
        work = thread_policy.work_per_step(self.batch, m, p, population=problem.exact,
                                           pairs=flow.interaction.kind == "gaussian")
        self.threads = _kernels.set_threads(thread_policy.choose(flow.threads, work, _kernels.max_threads()))
        self.full_rows = np.arange(len(problem.y), dtype=np.int64)[None, :]
        with self._numerics():
            self.drifts = drifts.strategy(problem, self.batch)
            with drifts.announced_compile() as compile_clock:
                self.drifts.compile(self.full_rows[:, :self.batch])
            self.compile_seconds = compile_clock()
            initial = self.initial()
            self.first = compute(problem, initial["theta"], initial.get("theta_tangent"), 0.0)
        check_start(self.first["train_risk"], {"X": problem.X, "y": problem.y, "theta0": problem.theta0})

    def initial(self) -> dict:
        theta0, dtype = self.problem.theta0, self.problem.dtype
        lockstep = "tangent_gap" in self.cfg.record.diagnostics
        return {"theta": theta0.astype(dtype), **({"theta_tangent": theta0.copy()} if lockstep else {})}

    def identity(self) -> str:
        p = self.problem
        return checkpoint.arrays_hash(p.X, p.y, p.X_test, p.y_test, p.theta0,
                                      *(() if p.weights is None else (p.weights,)))

    def step_bytes(self) -> int:
        flow = self.cfg.flow
        return (super().step_bytes() + (self.batch * (self.cfg.network.d + 2) * 8 if flow.online else 0)
                + (len(self.problem.y) * 8 if flow.batch_size and not flow.online else 0))

    def draws(self, k: int, rngs: dict):
        """(X, y, f0, idx) for the next k steps: full batch, minibatches, or fresh online samples;
        arrays in the steps' type (flow.dtype)."""
        problem, flow = self.problem, self.cfg.flow
        B = flow.batch_size
        if flow.online:
            X, y = draw(self.cfg, self.dataset.teacher, k * B, rngs["batch"])
            f0 = problem.predict(problem.theta0, X, np.zeros(len(y))) if self.cfg.network.centered else np.zeros(len(y))
            return (*(np.asarray(a, problem.dtype) for a in (X, y, f0)), np.arange(k * B, dtype=np.int64).reshape(k, B))
        if B:
            n = len(problem.y)
            idx = rngs["batch"].permuted(np.broadcast_to(np.arange(n, dtype=np.int64), (k, n)), axis=1)[:, :B]
            return *problem.steps, np.ascontiguousarray(idx)
        return *problem.steps, self.full_rows

    def advance(self, state: dict, draws, noise, scale, k: int):
        self.drifts.advance(state["theta"], *draws, noise, scale, k)
        if "theta_tangent" in state:
            self.drifts.advance(state["theta_tangent"], *draws, noise, scale, k, tangent=True)

    def drift(self, name: str):
        tangent = True if name == "theta_tangent" else None
        return lambda at: self.drifts.drift(at, tangent)

    def counted(self, name: str):
        return self.problem.mask.astype(bool)

    def risk(self, name: str, y) -> float | None:
        p = self.problem
        return None if p.exact or name != "theta" or not len(p.y) else p.risk(y, p.X, p.y, p.f0)

    def observe(self, state: dict, t: float) -> dict:
        return compute(self.problem, state["theta"], state.get("theta_tangent"), t)

    @contextmanager
    def _numerics(self):
        """One thread pool: BLAS at 1 thread while Numba's parallel kernels run (BLAS threads
        spinning against Numba's made the population step 16x slower at m = 160, and BLAS's own
        threads would make results depend on the thread count). Overflow is detected and
        reported (``data.check_start``, the controller's divergence check), not warned about."""
        problem = self.problem
        with _kernels.blas_threads(1, problem.exact or problem.path == "blas"), \
                np.errstate(over="ignore", invalid="ignore"):
            yield

    @contextmanager
    def session(self):
        _kernels.set_threads(self.threads)
        with self._numerics():
            yield

    def outcome(self, state: dict) -> dict:
        p = self.problem
        return {"theta": state["theta"], "theta0": p.theta0, "weights": p.weights,
                "data": Dataset(p.X, p.y, p.X_test, p.y_test, p.teacher),
                "stats": {"compile_seconds": self.compile_seconds, "threads": self.threads,
                          "n_train": len(p.y), "n_test": len(p.y_test)}}


def _checked_particles(theta0, cfg) -> np.ndarray:
    shape = (cfg.network.m, cfg.network.d + 1)
    theta0 = np.asarray(theta0)
    if theta0.dtype.kind not in "biuf" or theta0.shape != shape:
        raise DataError.invalid("theta0", f"array of shape {theta0.shape} and dtype {theta0.dtype}",
                                f"a real array of shape (network.m, network.d + 1) = {shape}")
    if not np.all(np.isfinite(theta0)):
        raise DataError.invalid("theta0", "non-finite values", "finite values only")
    return np.array(theta0, dtype=np.float64, order="C")


def _checked_weights(weights, cfg) -> np.ndarray:
    """The weights as float64 (m,), or a DataError / ConfigError naming what is wrong."""
    m = cfg.network.m
    weights = np.asarray(weights)
    if weights.dtype.kind not in "biuf" or weights.shape != (m,):
        raise DataError.invalid("weights", f"array of shape {weights.shape} and dtype {weights.dtype}",
                                f"a real array of shape (network.m,) = ({m},)")
    weights = np.array(weights, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise DataError.invalid("weights", "negative or non-finite values", "finite values >= 0")
    total = math.fsum(weights)
    if abs(total - 1.0) > 1e-12:
        raise DataError.invalid("weights", f"values summing to {total!r}", "weights summing to 1 within 1e-12")
    refuse(cfg, WEIGHTED)
    return weights
