"""How the particles move: k steps of the flow on given samples and noise.

Three paths, one interface (``advance``): the fused path (one compiled call for all k steps,
never forming the batch x m matrix), the BLAS path (one compiled call per step whose tiles of
neurons x samples do their products by BLAS, into buffers allocated once), and the exact
population step. Each takes its steps by the run's integrator (``integrators.py``): the fused
kernel in its compiled loop, the others through ``integrate``; the energy terms (``energy.py``)
add their drift in every path.
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


def needs(problem: Problem) -> dict:
    """Which (m, d + 1) work arrays a run allocates: ``stages`` drifts (one per stage of the
    integrator), a stage ``point`` (methods of more than one stage), ``transposed`` (theta^T and
    the batch^T: the fused path's ``work``) and ``W`` (the BLAS path's input weights)."""
    cfg = problem.cfg
    blas = problem.path == "blas" and not problem.exact
    stages = integrators.INTEGRATORS[cfg.flow.integrator].stages
    return {"stages": stages, "point": stages > 1, "transposed": not problem.exact and not blas, "W": blas}


def buffers(problem: Problem, batch: int) -> dict:
    """Work arrays allocated once per run, only those the run uses (``needs``): nothing of size
    batch x m is allocated per step, and at m = 1.5 million every (m, d + 1) array counts."""
    m, p = problem.theta0.shape
    need, none = needs(problem), np.empty((0, 0))
    out = {"r": np.empty(batch), "K": np.empty((need["stages"], m, p)),
           "point": np.empty((m, p)) if need["point"] else none,
           "work": np.empty(_kernels.work_size(m, batch, p - 1, problem.act)) if need["transposed"] else np.empty(0)}
    if need["W"]:
        block, chunk, recompute = blas_plan(m, batch, p - 1)
        blocks, chunks = -(-m // block), max(1, -(-batch // chunk))
        lanes, tiles = (min(blocks, _kernels.threads()), 1) if recompute else (blocks, chunks)
        out.update(W=np.empty((m, p - 1)), Z=np.empty((lanes, tiles, block * chunk)),
                   fpart=np.empty((blocks, chunks * chunk)))
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


def compile_kernels(problem, rows, buffers):
    """Compile the kernels this run uses (or load them from the cache): zero steps of the fused
    path; the BLAS path's drift on one zero sample, with work arrays of the run's types."""
    m, p = problem.theta0.shape
    advance(problem, problem.theta0, problem.X, problem.y, problem.f0, rows,     # zero steps: theta0 untouched
            np.zeros((0, 0, 0)), np.zeros(0), 0, buffers)
    if problem.path == "blas" and not problem.exact:
        block = _kernels.blas_plan(m, 1, p - 1)[0]
        one = {**buffers, "Z": np.empty((1, 1, block)), "fpart": np.empty((-(-m // block), 1)),
               "r": np.empty(1)}
        blas_drift(problem, problem.theta0, np.zeros((1, p - 1)), np.zeros(1), np.zeros(1), one, buffers["K"][0])
    if problem.exact or problem.path == "blas":
        a, b = integrators.INTEGRATORS[problem.cfg.flow.integrator].tableau
        none = np.zeros((0, 0, 0)), np.zeros(0), 0, problem.mask
        _kernels.update(problem.theta0.copy(), buffers["K"], b, 0.0, *none)
        if len(b) > 1:
            _kernels.stage_point(problem.theta0, buffers["K"], a, 1, 0.0, *none, buffers["point"])
        if energy.active(problem.cfg.flow):
            _kernels.energy_drift(problem.theta0, problem.mask, problem.omega, problem.energy, True,
                                  np.zeros_like(problem.theta0))


def advance(problem, theta, X, y, f0, idx, noise, scale, k, buffers, tangent=None):
    """k steps of the network (or of its tangent model at theta0: config or ``tangent=True``)."""
    cfg = problem.cfg
    if problem.exact:
        return _advance_population(problem, theta, noise, scale, k, buffers)
    tangent = cfg.network.linearized if tangent is None else tangent
    if problem.path == "blas" and not tangent:
        return _advance_blas(problem, theta, X, y, f0, idx, noise, scale, k, buffers)
    a, b = integrators.INTEGRATORS[cfg.flow.integrator].tableau
    _kernels.advance(theta, problem.theta0, X, y, f0, idx, noise, scale, k, cfg.flow.dt,
                     problem.out_scale, problem.vel_scale, problem.act, cfg.network.activation_params,
                     problem.omega, problem.loss, cfg.flow.lam, problem.mask, tangent, a, b, problem.energy, True,
                     buffers["r"], buffers["K"], buffers["point"], buffers["work"])


def integrate(problem, theta, noise, scale, k, buffers, drift):
    """k steps of the run's integrator from theta (in place), stage by stage: ``drift(point, s,
    out)`` writes the drift at ``point`` for step s into out (m, d + 1); the energy terms' drift is
    added here. The stage arithmetic is ``_kernels.stage_point`` / ``update``, as in the fused kernel."""
    flow = problem.cfg.flow
    a, b = integrators.INTEGRATORS[flow.integrator].tableau
    K, mask, terms = buffers["K"], problem.mask, energy.active(flow)
    for s in range(k):
        for stage in range(len(b)):
            at = theta if stage == 0 else _kernels.stage_point(theta, K, a, stage, flow.dt, noise, scale, s, mask,
                                                               buffers["point"])
            drift(at, s, K[stage])
            if terms:
                _kernels.energy_drift(at, mask, problem.omega, problem.energy, True, K[stage])
        _kernels.update(theta, K, b, flow.dt, noise, scale, s, mask)


def blas_drift(problem, theta, X, y, f0, buffers, out, tiles=None):
    """The drift of every particle by ``_kernels.blas_drift``; writes ``out`` (m, d + 1).

    X (B, d), y, f0 (B,): this step's samples; tiles: X in sample tiles (``_kernels.chunked``) if
    already made. Same velocity as ``model.velocity``."""
    cfg = problem.cfg
    m, p = theta.shape
    block, chunk, _ = _kernels.blas_plan(m, len(y), p - 1)
    Xc, XTc = _kernels.chunked(X, chunk) if tiles is None else tiles
    _kernels.blas_drift(theta, Xc, XTc, y, f0, problem.out_scale, problem.vel_scale, problem.act,
                        cfg.network.activation_params, problem.omega, problem.loss, cfg.flow.lam, problem.mask, block,
                        buffers["W"], buffers["Z"], buffers["fpart"], buffers["r"], out)
    return out


def _advance_blas(problem, theta, X, y, f0, idx, noise, scale, k, buffers):
    """k steps through ``blas_drift``: the samples of step s are tiled once for all its stages."""
    m, p = theta.shape
    chunk = _kernels.blas_plan(m, idx.shape[1], p - 1)[1]
    full = idx.shape[1] == len(y) and idx.shape[0] == 1
    tiles = _kernels.chunked(X, chunk) if full else None              # the same samples at every step
    step = {}

    def drift(at, s, out):
        if step.get("s") != s:
            rows = idx[s % idx.shape[0]]
            samples = (X, y, f0) if full else (X[rows], y[rows], f0[rows])
            step.update(s=s, samples=samples, tiles=tiles if full else _kernels.chunked(samples[0], chunk))
        blas_drift(problem, at, *step["samples"], buffers, out, step["tiles"])

    integrate(problem, theta, noise, scale, k, buffers, drift)


def _advance_population(problem, theta, noise, scale, k, buffers):
    """k steps of the exact population flow: the sums over neuron pairs by
    ``_kernels.population_sums`` (closed forms) or NumPy quadrature."""
    cfg = problem.cfg

    def drift(at, s, out):
        out[:] = population.population_velocity(at, problem.teacher, cfg.network, cfg.flow, cfg.data.teacher_activation,
                                                compiled=True, inputs=cfg.data.inputs, weights=problem.weights)

    integrate(problem, theta, noise, scale, k, buffers, drift)


def drift(problem, theta, buffers, tangent=None) -> np.ndarray:
    """The full-batch drift at theta, energy terms included, as a new (m, d + 1) array: every
    training sample (or the exact population risk) on the run's path; what ``adaptive.advance``
    integrates. ``tangent``: the tangent model's (default: the config's)."""
    cfg = problem.cfg
    tangent = cfg.network.linearized if tangent is None else tangent
    out = np.empty_like(theta)
    if problem.exact:
        out[:] = population.population_velocity(theta, problem.teacher, cfg.network, cfg.flow,
                                                cfg.data.teacher_activation, compiled=True, inputs=cfg.data.inputs,
                                                weights=problem.weights)
    elif problem.path == "blas" and not tangent:
        blas_drift(problem, theta, problem.X, problem.y, problem.f0, buffers, out)
    else:
        _kernels.drift(theta, problem.theta0 if tangent else theta, problem.X, problem.y, problem.f0,
                       np.arange(len(problem.y), dtype=np.int64), problem.out_scale, problem.vel_scale, problem.act,
                       cfg.network.activation_params, problem.omega, problem.loss, cfg.flow.lam, problem.mask,
                       tangent, True, buffers["r"], out, buffers["work"])
    if energy.active(cfg.flow):
        _kernels.energy_drift(theta, problem.mask, problem.omega, problem.energy, True, out)
    return out


class Stepper:
    """A run's steps as one callable (what ``simulate`` runs, for benchmarks and tests):
    ``Stepper(problem, batch)(theta, X, y, f0, idx, noise, scale, k)`` moves theta in place."""

    def __init__(self, problem: Problem, batch: int):
        self.problem, self.buffers = problem, buffers(problem, batch)

    def __call__(self, theta, X, y, f0, idx, noise, scale, k, tangent=None):
        advance(self.problem, theta, X, y, f0, idx, noise, scale, k, self.buffers, tangent)
