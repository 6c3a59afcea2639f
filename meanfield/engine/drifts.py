"""How the particles move: the drift strategies of a two-layer run, each an object chosen once
(``strategy``) with one interface: ``advance`` (k steps of the run's integrator on given samples
and noise), ``drift`` (the full-batch drift, for error-controlled steps) and ``compile``.

- ``Fused``: one compiled call for all k steps, never forming the batch x m matrix (small d);
- ``Blas``: one compiled call per stage whose tiles of neurons x samples do their products by
  BLAS, into buffers allocated once (large d); its tangent model steps by ``Fused``;
- ``Population``: the exact population risk, its sums over neuron pairs compiled (closed forms)
  or by quadrature.

The stage arithmetic is ``_kernels.stage_point`` / ``update`` in every strategy (``integrate``
for the two that step in Python, and for deep networks); the energy terms (``energy.py``) add
their drift in every one.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from .. import _lazy
from ..model import energy, integrators, population
from .memory import blas_plan
from .problem import Problem

_kernels = _lazy.module("meanfield._kernels")

NONE3, NONE1 = np.zeros((0, 0, 0)), np.zeros(0)


class Fused:
    """The fused path: k steps in one compiled call (``_kernels.advance``)."""

    def __init__(self, problem: Problem, batch: int):
        m, p = problem.theta0.shape
        method = integrators.INTEGRATORS[problem.cfg.flow.integrator]
        self.problem, self.tableau = problem, method.tableau
        dtype = problem.dtype
        self.theta0 = np.asarray(problem.theta0, dtype)         # the tangent model's features
        self.buffers = {"r": np.empty(batch, dtype), "K": np.empty((method.stages, m, p), dtype),
                        "point": np.empty((m, p) if method.stages > 1 else (0, 0), dtype),
                        "work": np.empty(_kernels.work_size(m, batch, p - 1, problem.act), dtype)}

    def compile(self, rows):
        """Compile (or load) the kernels: zero steps on a copy of theta0 in the steps' type."""
        p = self.problem
        self.advance(self.theta0.copy(), *p.steps, rows, NONE3, NONE1, 0)

    def advance(self, theta, X, y, f0, idx, noise, scale, k, tangent=None):
        """k steps of the network (or of its tangent model at theta0: config or ``tangent=True``)."""
        problem, b = self.problem, self.buffers
        cfg = problem.cfg
        tangent = cfg.network.linearized if tangent is None else tangent
        _kernels.advance(theta, self.theta0, X, y, f0, idx, noise, scale, k, problem.model,
                         (*self.tableau, cfg.flow.dt),
                         problem.energy, tangent, True, (b["r"], b["K"], b["point"], b["work"]))

    def drift(self, theta, tangent=None) -> np.ndarray:
        """The full-batch drift at theta, energy terms included, as a new (m, d + 1) array."""
        problem, cfg = self.problem, self.problem.cfg
        tangent = cfg.network.linearized if tangent is None else tangent
        out = np.empty_like(theta)
        _kernels.drift(theta, self.theta0 if tangent else theta, *problem.steps,
                       np.arange(len(problem.y), dtype=np.int64), problem.model, tangent, True, self.buffers["r"], out,
                       self.buffers["work"])
        return _with_energy(problem, theta, out)


class _Staged:
    """A path that steps in Python, stage by stage (``integrate``), around a compiled drift."""

    def __init__(self, problem: Problem):
        m, p = problem.theta0.shape
        method = integrators.INTEGRATORS[problem.cfg.flow.integrator]
        self.problem, self.tableau = problem, method.tableau
        self.buffers = {"K": np.empty((method.stages, m, p), problem.dtype),
                        "point": np.empty((m, p) if method.stages > 1 else (0, 0), problem.dtype)}

    def compile(self, rows):
        """Compile (or load) the stage arithmetic and the energy drift."""
        problem, (a, b) = self.problem, self.tableau
        none, theta0 = (NONE3, NONE1, 0, problem.mask), problem.theta0.astype(problem.dtype)
        _kernels.update(theta0, self.buffers["K"], b, 0.0, *none)
        if len(b) > 1:
            _kernels.stage_point(theta0, self.buffers["K"], a, 1, 0.0, *none, self.buffers["point"])
        if energy.active(problem.cfg.flow):
            _kernels.energy_drift(problem.theta0, problem.mask, problem.omega, problem.energy, True,
                                  np.zeros_like(problem.theta0))

    def integrate(self, theta, noise, scale, k, drift):
        """k steps of the run's integrator from theta (in place) by ``integrate``, the energy
        terms' drift added to ``drift``'s."""
        problem = self.problem
        terms = energy.active(problem.cfg.flow)

        def full(at, s, out):
            drift(at, s, out)
            if terms:
                _kernels.energy_drift(at, problem.mask, problem.omega, problem.energy, True, out)

        integrate(theta, self.tableau, problem.cfg.flow.dt, self.buffers, problem.mask, noise, scale, k, full)


class Blas(_Staged):
    """The BLAS path: the drift by ``_kernels.blas_drift`` on tiles of neurons x samples, with
    buffers planned once (``memory.blas_plan``); the tangent model steps by ``Fused``."""

    def __init__(self, problem: Problem, batch: int):
        super().__init__(problem)
        m, p = problem.theta0.shape
        relu = problem.act == _kernels.RELU
        block, chunk, recompute = blas_plan(m, batch, p - 1, problem.dtype.itemsize, relu)
        blocks, chunks = -(-m // block), max(1, -(-batch // chunk))
        lanes, tiles = (min(blocks, _kernels.threads()), 1) if recompute or relu else (blocks, chunks)
        signs = (blocks, chunks, block * chunk) if relu and not recompute else (1, 1, 0)
        dtype = problem.dtype
        self.buffers.update(r=np.empty(batch, dtype), W=np.empty((m, p - 1), dtype),
                            Z=np.empty((lanes, tiles, block * chunk), dtype), signs=np.empty(signs, np.uint8),
                            fpart=np.empty((blocks, chunks * chunk), dtype))
        self.tangent = Fused(problem, batch) if "tangent_gap" in problem.cfg.record.diagnostics else None
        self._tiled = None

    def compile(self, rows):
        """Compile the drift on one zero sample, with work arrays of the run's types, and the stages."""
        problem = self.problem
        m, p = problem.theta0.shape
        block, dtype = _kernels.blas_plan(m, 1, p - 1)[0], problem.dtype
        one = {**self.buffers, "Z": np.empty((1, 1, block), dtype), "fpart": np.empty((-(-m // block), 1), dtype),
               "r": np.empty(1, dtype), "signs": np.empty((-(-m // block), 1, block), np.uint8)}
        blas_drift(problem, problem.theta0.astype(dtype), np.zeros((1, p - 1), dtype), np.zeros(1, dtype),
                   np.zeros(1, dtype), one, self.buffers["K"][0])
        super().compile(rows)
        if self.tangent is not None:
            self.tangent.compile(rows)

    def advance(self, theta, X, y, f0, idx, noise, scale, k, tangent=None):
        """k steps through ``blas_drift``: the samples of step s are tiled once for all its stages."""
        if tangent:
            return self.tangent.advance(theta, X, y, f0, idx, noise, scale, k, tangent=True)
        m, p = theta.shape
        chunk = _kernels.blas_plan(m, idx.shape[1], p - 1)[1]
        full = idx.shape[1] == len(y) and idx.shape[0] == 1
        tiles = self.tiled(X, chunk) if full else None                     # the same samples at every step
        step = {}

        def drift(at, s, out):
            if step.get("s") != s:
                rows = idx[s % idx.shape[0]]
                samples = (X, y, f0) if full else (X[rows], y[rows], f0[rows])
                step.update(s=s, samples=samples, tiles=tiles if full else _kernels.chunked(samples[0], chunk))
            blas_drift(self.problem, at, *step["samples"], self.buffers, out, step["tiles"])

        self.integrate(theta, noise, scale, k, drift)

    def drift(self, theta, tangent=None) -> np.ndarray:
        if tangent:
            return self.tangent.drift(theta, tangent=True)
        p = self.problem
        X = p.steps[0]
        tiles = self.tiled(X, _kernels.blas_plan(theta.shape[0], len(X), X.shape[1])[1])
        return _with_energy(p, theta, blas_drift(p, theta, *p.steps, self.buffers, np.empty_like(theta), tiles))

    def tiled(self, X, chunk):
        """X in sample tiles (``_kernels.chunked``), made once for the full batch and kept (a copy of
        X per call was 2 n d floats of traffic per step)."""
        if self._tiled is None or self._tiled[0] is not X or self._tiled[1] != chunk:
            self._tiled = (X, chunk, _kernels.chunked(X, chunk))
        return self._tiled[2]


class Population(_Staged):
    """The exact population flow: the sums over neuron pairs by ``_kernels.population_sums``
    (closed forms) or NumPy quadrature (``population.population_velocity``)."""

    def __init__(self, problem: Problem, batch: int):
        super().__init__(problem)

    def velocity(self, theta) -> np.ndarray:
        p, cfg = self.problem, self.problem.cfg
        return population.population_velocity(theta, p.teacher, cfg.network, cfg.flow, cfg.data.teacher_activation,
                                               compiled=True, inputs=cfg.data.inputs, weights=p.weights,
                                               teacher_params=cfg.teacher_params)

    def advance(self, theta, X, y, f0, idx, noise, scale, k, tangent=None):
        def drift(at, s, out):
            out[:] = self.velocity(at)

        self.integrate(theta, noise, scale, k, drift)

    def drift(self, theta, tangent=None) -> np.ndarray:
        return _with_energy(self.problem, theta, self.velocity(theta))


def integrate(theta, tableau, dt, buffers, mask, noise, scale, k, drift):
    """k steps of the Runge–Kutta method ``tableau`` = (a, b) from theta (m, p) in place, stage by
    stage: ``drift(point, s, out)`` writes the drift at ``point`` for step s into out (m, p). The
    stage arithmetic is ``_kernels.stage_point`` / ``update``, as in the fused kernel; buffers: "K"
    (stages, m, p), "point" (m, p) (unused by one-stage methods); noise, scale: the kicks (or empty)."""
    a, b = tableau
    K = buffers["K"]
    # Without kicks the update is elementwise: as one row of m p entries its loop is vectorised
    # whatever p is (the deep path's p is 1, and its loop over p was scalar). The same kernel:
    # the same bits.
    flat = noise.shape[0] == 0 and theta.flags.c_contiguous and K.flags.c_contiguous
    rows, Ks = (theta.reshape(1, -1), K.reshape(len(K), 1, -1)) if flat else (theta, K)
    for s in range(k):
        for stage in range(len(b)):
            at = theta if stage == 0 else _kernels.stage_point(theta, K, a, stage, dt, noise, scale, s, mask,
                                                               buffers["point"])
            drift(at, s, K[stage])
        _kernels.update(rows, Ks, b, dt, noise, scale, s, mask)


STRATEGIES = {"fused": Fused, "blas": Blas, "population": Population}


def strategy(problem: Problem, batch: int):
    """The drift strategy of a run (``problem.strategy``: "population" for the exact risk, else the
    engine's path), with its buffers for ``batch`` samples per step."""
    return STRATEGIES[problem.strategy](problem, batch)


def _with_energy(problem: Problem, theta, out) -> np.ndarray:
    if energy.active(problem.cfg.flow):
        _kernels.energy_drift(theta, problem.mask, problem.omega, problem.energy, True, out)
    return out


def blas_drift(problem, theta, X, y, f0, buffers, out, tiles=None):
    """The drift of every particle by ``_kernels.blas_drift``; writes ``out`` (m, d + 1).

    X (B, d), y, f0 (B,): this step's samples; tiles: X in sample tiles (``_kernels.chunked``) if
    already made. Same velocity as ``twolayer.velocity``."""
    m, p = theta.shape
    block, chunk, _ = _kernels.blas_plan(m, len(y), p - 1)
    Xc, XTc = _kernels.chunked(X, chunk) if tiles is None else tiles
    _kernels.blas_drift(theta, Xc, XTc, y, f0, problem.model, block, buffers["W"], buffers["Z"], buffers["signs"],
                        buffers["fpart"], buffers["r"], out)
    return out


COMPILE_NOTICE_SECONDS = 2.0     # loading cached kernels takes well under this; compiling, 10-60 s


@contextmanager
def announced_compile():
    """Time the kernels' compilation (or cache load); when it outlasts COMPILE_NOTICE_SECONDS (a
    first run, nothing cached yet), say so on stderr at that moment and say how long it took."""
    tic = time.perf_counter()
    announced = threading.Event()

    def announce():
        announced.set()
        print("meanfield: compiling kernels (first run only) ...", file=sys.stderr, flush=True)

    timer = threading.Timer(COMPILE_NOTICE_SECONDS, announce)
    timer.daemon = True
    timer.start()
    try:
        yield lambda: seconds
    finally:
        timer.cancel()
        seconds = time.perf_counter() - tic
        if announced.is_set():
            print(f"meanfield: kernels compiled in {seconds:.1f} s; later runs load them from the cache",
                  file=sys.stderr, flush=True)


