"""How the particles move: k steps of the flow on given samples and noise.

Three paths, one interface (``advance``): the fused path (one compiled call for all k steps,
never forming the batch x m matrix), the BLAS path (one compiled call per step whose tiles of
neurons x samples do their products by BLAS, into buffers allocated once), and the exact
population step. Euler (Euler–Maruyama with noise) or Heun.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import _lazy, population
from .memory import blas_plan
from .problem import Problem

_kernels = _lazy.module("meanfield._kernels")


def needs(problem: Problem) -> dict:
    """Which (m, d + 1) work arrays a run allocates: ``heun`` (a predictor and its drift),
    ``transposed`` (theta^T, for the fused path's parallel drift), ``kick`` (the noise of a BLAS
    step) and ``W`` (the BLAS path's input weights)."""
    cfg = problem.cfg
    blas = problem.path == "blas" and not problem.exact
    return {"heun": cfg.flow.integrator == "heun" and not problem.exact,
            "transposed": not problem.exact and not blas,
            "kick": blas and cfg.flow.max_temperature > 0, "W": blas}


def buffers(problem: Problem, batch: int) -> dict:
    """Work arrays allocated once per run, only those the run uses (``needs``): nothing of size
    batch x m is allocated per step, and at m = 1.5 million every (m, d + 1) array counts."""
    m, p = problem.theta0.shape
    need, none = needs(problem), np.empty((0, 0))
    out = {"r": np.empty(batch), "vel": np.empty((m, p)) if not problem.exact else none,
           "theta_pred": np.empty((m, p)) if need["heun"] else none,
           "vel_pred": np.empty((m, p)) if need["heun"] else none,
           "theta_t": np.empty((p, m)) if need["transposed"] else none}
    if need["W"]:
        out["kick"] = np.empty((m, p)) if need["kick"] else none
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
        blas_drift(problem, problem.theta0, np.zeros((1, p - 1)), np.zeros(1), np.zeros(1), one, buffers["vel"])


def advance(problem, theta, X, y, f0, idx, noise, scale, k, buffers, tangent=None):
    """k steps of the network (or of its tangent model at theta0: config or ``tangent=True``)."""
    cfg = problem.cfg
    if problem.exact:
        return _advance_population(problem, theta, noise, scale, k)
    tangent = cfg.network.linearized if tangent is None else tangent
    if problem.path == "blas" and not tangent:
        return _advance_blas(problem, theta, X, y, f0, idx, noise, scale, k, buffers)
    _kernels.advance(theta, problem.theta0, X, y, f0, idx, noise, scale, k, cfg.flow.dt,
                     problem.out_scale, problem.vel_scale, problem.act, cfg.network.activation_params,
                     problem.loss, cfg.flow.lam, problem.mask, tangent, cfg.flow.integrator == "heun", True,
                     buffers["r"], buffers["vel"], buffers["theta_pred"], buffers["vel_pred"], buffers["theta_t"])


def blas_drift(problem, theta, X, y, f0, buffers, out, tiles=None):
    """The drift of every particle by ``_kernels.blas_drift``; writes ``out`` (m, d + 1).

    X (B, d), y, f0 (B,): this step's samples; tiles: X in sample tiles (``_kernels.chunked``) if
    already made. Same velocity as ``model.velocity``."""
    cfg = problem.cfg
    m, p = theta.shape
    block, chunk, _ = _kernels.blas_plan(m, len(y), p - 1)
    Xc, XTc = _kernels.chunked(X, chunk) if tiles is None else tiles
    _kernels.blas_drift(theta, Xc, XTc, y, f0, problem.out_scale, problem.vel_scale, problem.act,
                        cfg.network.activation_params, problem.loss, cfg.flow.lam, problem.mask, block,
                        buffers["W"], buffers["Z"], buffers["fpart"], buffers["r"], out)
    return out


def _advance_blas(problem, theta, X, y, f0, idx, noise, scale, k, buffers):
    """k Euler (Euler–Maruyama) or Heun steps through ``blas_drift``, updating in place."""
    flow = problem.cfg.flow
    vel, pred, vel_pred, kick = buffers["vel"], buffers["theta_pred"], buffers["vel_pred"], buffers["kick"]
    m, p = theta.shape
    chunk = _kernels.blas_plan(m, idx.shape[1], p - 1)[1]
    full = idx.shape[1] == len(y) and idx.shape[0] == 1
    tiles = _kernels.chunked(X, chunk) if full else None              # the same samples at every step
    noisy = noise.shape[0] > 0
    for s in range(k):
        rows = idx[s % idx.shape[0]]
        Xs, ys, f0s = (X, y, f0) if full else (X[rows], y[rows], f0[rows])
        step_tiles = tiles if full else _kernels.chunked(Xs, chunk)
        blas_drift(problem, theta, Xs, ys, f0s, buffers, vel, step_tiles)
        if noisy:
            np.multiply(noise[s], scale[s] * problem.mask, out=kick)
        if flow.integrator == "heun":
            np.multiply(vel, flow.dt, out=pred)
            pred += theta
            if noisy:
                pred += kick
            blas_drift(problem, pred, Xs, ys, f0s, buffers, vel_pred, step_tiles)
            vel += vel_pred
            vel *= 0.5
        vel *= flow.dt
        theta += vel
        if noisy:
            theta += kick


def _advance_population(problem, theta, noise, scale, k):
    """k Euler (Euler–Maruyama) or Heun steps of the exact population flow: the sums over neuron
    pairs by ``_kernels.population_sums`` (closed forms) or NumPy quadrature."""
    cfg = problem.cfg
    net, flow = cfg.network, cfg.flow
    mask = problem.mask

    def drift(at):
        return population.population_velocity(at, problem.teacher, net, flow, problem.cfg.data.teacher_activation,
                                              compiled=True, inputs=problem.cfg.data.inputs)

    for s in range(k):
        kick = scale[s] * noise[s] * mask if noise.shape[0] else 0.0
        v = drift(theta)
        if flow.integrator == "heun":
            v = 0.5 * (v + drift(theta + flow.dt * v + kick))
        theta += flow.dt * v + kick


class Stepper:
    """A run's steps as one callable (what ``simulate`` runs, for benchmarks and tests):
    ``Stepper(problem, batch)(theta, X, y, f0, idx, noise, scale, k)`` moves theta in place."""

    def __init__(self, problem: Problem, batch: int):
        self.problem, self.buffers = problem, buffers(problem, batch)

    def __call__(self, theta, X, y, f0, idx, noise, scale, k, tangent=None):
        advance(self.problem, theta, X, y, f0, idx, noise, scale, k, self.buffers, tangent)
