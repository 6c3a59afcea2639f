"""A deep network (``network.depth >= 2``, ``model/deep.py``) as a system: the run's integrator
(``drifts.integrate``, the two-layer engine's stage arithmetic) on d w_l / dt = -dR/dw_l - lam w_l,
in the two-layer engine's time convention, on the full batch, minibatches or fresh online samples.

The result's ``theta`` and ``theta0`` are the flat raw parameters (``DeepNet.flatten``; views by
layer: ``network(cfg).unflatten(theta)``); there are no snapshots. Its observables are those of
the shared registry (``observables.py``) that ``DeepView`` has the quantities of: the risks, the
predictor's norm, per-layer weight changes and feature updates, and the kernel diagnostics.

Matrix products run in fixed blocks of rows on ``flow.threads`` threads (0: ``threads.choose``,
from the step's multiply-adds), each block one single-threaded BLAS call (``deep.matmul``): the
same bits on any thread count. (OpenBLAS's own threads do not give the same bits: measured.)
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from functools import cached_property

import numpy as np

from ..config import Config
from ..model import integrators, twolayer
from ..model.data import check_start, draw
from ..model.deep import DeepNet, forward, layer_kernels, of, parallel, predict, velocity
from ..rules import DEEP_INPUTS, Subject, refuse
from ..store import checkpoint
from . import drifts, memory, threads as thread_policy
from .observables import observe
from .system import System

NONE3, NONE1, ONE = drifts.NONE3, drifts.NONE1, np.ones(1)      # no noise; the one column's mask


def network(cfg: Config) -> DeepNet:
    """The deep network of a config (``deep.of``)."""
    return of(cfg.network)


class DeepView:
    """A deep network's parameters (by layer) at a record time, and the quantities its
    observables read (``observables.OBSERVABLES``), each computed once, on first use; ``start``
    holds what they compare against at t = 0."""

    def __init__(self, start: "DeepView | None", net: DeepNet, params, dataset, cfg: Config):
        self.start, self.net, self.params, self.data, self.cfg = start or self, net, params, dataset, cfg

    @cached_property
    def _forward(self):
        return forward(self.net, self.params, self.data.X)

    @property
    def train_risk(self) -> float:
        return float(np.mean(twolayer.loss(self.cfg.flow.loss, self._forward[2], self.data.y)))

    @property
    def test_risk(self) -> float:
        data = self.data
        if not len(data.y_test):
            return math.nan
        return float(np.mean(twolayer.loss(self.cfg.flow.loss, predict(self.net, self.params, data.X_test),
                                           data.y_test)))

    @property
    def predictor_norm(self) -> float:
        return float(np.sqrt(np.mean(self._forward[2] ** 2)))

    @property
    def weight_changes(self) -> list:
        return [float(np.linalg.norm(w - w0) / np.linalg.norm(w0)) for w, w0 in zip(self.params, self.start.params)]

    @property
    def feature_updates(self) -> list:
        return [float(np.sqrt(np.mean((h - h0) ** 2))) for h, h0 in zip(self._forward[0], self.start._forward[0])]

    @cached_property
    def layer_kernels(self) -> list:
        return layer_kernels(self.net, self.params, self.data.X)

    @property
    def layer_kernels0(self) -> list:
        return self.start.layer_kernels

    @cached_property
    def kernel(self) -> np.ndarray:
        return sum(self.layer_kernels)

    @property
    def kernel0(self) -> np.ndarray:
        return self.start.kernel


class Deep(System):
    """A deep network's flat parameters (module docstring); made by ``prepare``."""

    streams = ("batch",)

    @staticmethod
    def takes(cfg: Config) -> bool:
        return cfg.network.depth > 1

    @staticmethod
    def inputs(cfg: Config, theta0, weights) -> tuple:
        """Deep runs draw their parameters: a given theta0 or weights is refused by name."""
        refuse(Subject(cfg, theta0=theta0, weights=weights), DEEP_INPUTS)
        return None, None

    @classmethod
    def prepare(cls, cfg: Config, dataset, rng_init, theta0=None, weights=None) -> "Deep":
        """The network at initialisation and its record at t = 0; an output that overflows float64
        there is refused (DataError naming X, y or the parameters), as for two-layer runs."""
        return cls(cfg, dataset, rng_init)

    def __init__(self, cfg: Config, dataset, rng_init):
        flow = cfg.flow
        self.cfg, self.dataset = cfg, dataset
        self.net = network(cfg)
        params0 = self.net.init(rng_init)
        self.theta0 = self.net.flatten(params0)
        self.batch = flow.batch_size or len(dataset.y)
        self.threads = thread_policy.choose(flow.threads, self.batch * self.net.size(), thread_policy.usable_cpus())
        with self.session():
            self.start = DeepView(None, self.net, [w.copy() for w in params0], dataset, cfg)
            self.first = observe(self.start, cfg.record.diagnostics)
        check_start(self.first["train_risk"], {"X": dataset.X, "y": dataset.y, "theta0": self.theta0})

    def initial(self) -> dict:
        return {"theta": self.theta0.copy()}

    def identity(self) -> str:
        d = self.dataset
        return checkpoint.arrays_hash(d.X, d.y, d.X_test, d.y_test, self.theta0)

    def step_bytes(self) -> int:
        flow = self.cfg.flow
        return self.batch * (self.cfg.network.d + 2) * 8 if flow.online or flow.batch_size else 0

    def draws(self, k: int, rngs: dict) -> list:
        """The samples (X, y) of each of k steps: the full batch, a minibatch without replacement
        within the step, or fresh samples from the data law (online)."""
        cfg, data, B = self.cfg, self.dataset, self.cfg.flow.batch_size
        if cfg.flow.online:
            return [draw(cfg, data.teacher, B, rngs["batch"]) for _ in range(k)]
        if B:
            return [(data.X[rows], data.y[rows]) for rows in (rngs["batch"].permutation(len(data.y))[:B]
                                                              for _ in range(k))]
        return [(data.X, data.y)] * k

    def _velocity(self, X, y):
        net, flow = self.net, self.cfg.flow
        return lambda v: velocity(net, net.unflatten(v), X, y, flow.loss, flow.lam, out=np.empty_like(v))

    @cached_property
    def buffers(self) -> dict:
        return stage_buffers(self.net, self.cfg.flow.integrator)

    def advance(self, state: dict, draws, noise, scale, k: int):
        advance(self.net, self.cfg.flow, state["theta"], draws, self.buffers)

    def drift(self, name: str):
        return self._velocity(self.dataset.X, self.dataset.y)

    def observe(self, state: dict, t: float) -> dict:
        view = DeepView(self.start, self.net, self.net.unflatten(state["theta"]), self.dataset, self.cfg)
        return observe(view, self.cfg.record.diagnostics)

    def snapshot(self, state: dict):
        return None

    @contextmanager
    def session(self):
        with parallel(self.threads), np.errstate(over="ignore", invalid="ignore"):
            yield

    def outcome(self, state: dict) -> dict:
        d = self.dataset
        return {"theta": state["theta"], "theta0": self.theta0, "weights": None, "data": d,
                "stats": {"compile_seconds": 0.0, "threads": self.threads, "parameters": self.net.size(),
                          "n_train": len(d.y), "n_test": len(d.y_test)}}


def stage_buffers(net: DeepNet, integrator: str) -> dict:
    """The fixed steps' stage drifts "K" (stages, P, 1) and stage point (P, 1) (``drifts.integrate``)."""
    stages, P = integrators.INTEGRATORS[integrator].stages, net.size()
    return {"K": np.empty((stages, P, 1)), "point": np.empty((P, 1) if stages > 1 else (0, 0))}


def advance(net: DeepNet, flow, theta, draws, buffers):
    """One fixed step of ``flow.integrator`` per (X, y) of ``draws`` from theta (P,) in place, by the
    two-layer engine's stage arithmetic (``drifts.integrate``): the parameters as one column (P, 1),
    ``deep.velocity`` written straight into the stage buffers (``stage_buffers``). The heap keeps
    the step's activations' memory between steps (``memory.hold_heap_top``)."""
    memory.hold_heap_top(memory.deep_activation_bytes(len(draws[0][0]), net.m, net.depth))

    def drift(at, s, out):
        X, y = draws[s]
        velocity(net, net.unflatten(at.reshape(-1)), X, y, flow.loss, flow.lam, out=out.reshape(-1))

    tableau = integrators.INTEGRATORS[flow.integrator].tableau
    drifts.integrate(theta.reshape(-1, 1), tableau, flow.dt, buffers, ONE, NONE3, NONE1, len(draws), drift)
