"""How much memory a run needs, how much the machine has, and the BLAS path's tile plan.

A run is refused before any work when it would not fit, naming the parameter that dominates.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

from .. import _lazy
from ..config import Config
from ..errors import ConfigError
from ..model import integrators
from ..model.parameterizations import parameter_count
from .problem import path, record_steps

_kernels = _lazy.module("meanfield._kernels")

CHUNK_BYTES = 32 * 2**20   # memory for the noise and samples drawn at once
M_TOP_PAD = -2             # glibc's mallopt parameter (malloc.h): bytes kept free at the heap's top
_heap_top = 0              # the pad asked for so far in this process


def deep_activation_bytes(n: int, m: int, depth: int) -> int:
    """The (n, m) arrays a deep step makes and drops, per layer: pre-activations, activations and
    the backward pass's (5 per layer, float64)."""
    return 5 * n * m * depth * 8


def hold_heap_top(nbytes: int) -> bool:
    """Ask glibc's malloc to keep ``nbytes`` free at the top of the heap (mallopt M_TOP_PAD) rather
    than hand freed memory back to the system, for a step that makes and drops the same large
    arrays each time (the deep step's activations). Without it each deep step at (n, m, d, L) =
    (256, 1024, 10, 3) faulted 22 MB back in (5664-7057 page faults) and took 1.13-1.18x as long
    (one thread, medians of 15-20 steps). The pad only grows, once per size; the memory it keeps is what the step
    itself uses at its peak. False where the C library has no mallopt (not glibc): nothing changes."""
    global _heap_top
    if nbytes <= _heap_top:
        return True
    try:
        done = ctypes.CDLL(None).mallopt(M_TOP_PAD, ctypes.c_int(min(nbytes, 2**31 - 1))) == 1
    except (OSError, AttributeError, TypeError):        # no C library by that name, or no mallopt in it
        return False
    _heap_top = nbytes if done else _heap_top
    return done


def memory_terms(cfg: Config, data=None) -> dict:
    """The memory a run needs, in bytes, by the parameter that drives each term.

    data: None or the validated user arrays (X, y)."""
    net, rec = cfg.network, cfg.record
    p = net.d + 1
    n = len(data[1]) if data is not None else cfg.data.n + cfg.data.n_test
    if cfg.data.kind == "none":
        n = 0
    n_records = len(record_steps(cfg.flow.n_steps, rec.n_records, rec.spacing))
    size = np.dtype(cfg.flow.dtype).itemsize         # the steps' arrays (float32: half of float64's)
    particles = net.m * p * size
    batch = cfg.flow.batch_size or n
    exact = cfg.data.kind == "population"
    blas = not exact and path(cfg, batch) == "blas"
    # (m, d + 1) arrays in the steps' type: theta, the first stage's drift, theta^T or the BLAS
    # path's W, more stages, a stage point; in float64: theta0, two temporaries of a record (and
    # theta there, for float32 steps), a lockstep tangent model, the population drift's own
    stages = integrators.INTEGRATORS[cfg.flow.integrator].stages
    copies = 3 + (stages - 1) + (stages > 1)
    wide = 3 + (size != 8) + ("tangent_gap" in rec.diagnostics) + 3 * exact
    if net.depth > 1:                   # deep_run: parameters (and their copies), activations per layer
        copies = 4 + 2 * integrators.INTEGRATORS[cfg.flow.integrator].stages
        deep = lambda L: copies * parameter_count(net.d, net.m, L) * 8 + deep_activation_bytes(max(batch, n), net.m, L)
        # a network of depth 2 and this width, then what the layers beyond the second add
        return {"data.n": n * (p + 2) * 8, "network.m": deep(2), "network.depth": deep(net.depth) - deep(2),
                "buffers": CHUNK_BYTES}
    tiles = 0
    if blas:
        relu = net.activation == "relu"
        block, chunk, recompute = blas_plan(net.m, batch, net.d, size, relu)
        lanes = min(-(-net.m // block), _kernels.max_threads())             # one tile per busy thread
        stored = 0 if recompute else net.m * batch * (1 if relu else size)  # ReLU: a byte (the sign) per entry
        tiles = (block * chunk * lanes if recompute or relu else 0) * size + stored
    data_bytes = n * (p + 2) * (8 + (size if size != 8 else 0))             # float64, and a copy in the steps' type
    return {"data.n": data_bytes, "network.m": copies * particles + wide * net.m * p * 8 + tiles,
            "record.snapshots": n_records * particles if rec.snapshots else 0, "buffers": CHUNK_BYTES}


def estimated_bytes(cfg: Config, data=None) -> int:
    """Memory a run needs (data, particles, buffers, snapshots, noise chunk), in bytes."""
    return int(sum(memory_terms(cfg, data).values()))


STORED_SHARE = 0.5       # the BLAS path keeps its m x B matrix only if it takes under this share of free memory


def blas_plan(m: int, batch: int, d: int, itemsize: int = 8, relu: bool = False) -> tuple:
    """``_kernels.blas_plan`` for this machine: tiles recomputed when the m x B matrix would not fit."""
    return _kernels.blas_plan(m, batch, d, stored_limit=int(STORED_SHARE * available_bytes()), itemsize=itemsize,
                              relu=relu)


def available_bytes() -> int:
    """Memory this machine can still give (MemAvailable), or a large number if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62


def check_memory(cfg: Config, data):
    terms, have = memory_terms(cfg, data), available_bytes()
    need = sum(terms.values())
    if need > have:
        parameter = max(terms, key=terms.get)
        value = {"data.n": len(data[1]) if data is not None else cfg.data.n, "network.m": cfg.network.m,
                 "network.depth": cfg.network.depth, "record.snapshots": True, "buffers": CHUNK_BYTES}[parameter]
        advice = {"data.n": "use fewer samples (data.n, or smaller arrays)",
                  "network.m": "reduce network.m",
                  "network.depth": f"each of its {cfg.network.depth - 1} hidden layers beyond the first holds an "
                                   f"m x m matrix (m = {cfg.network.m}): reduce network.depth",
                  "record.snapshots": f"the particles at {cfg.record.n_records} record times; set record.snapshots = "
                                      "false, or reduce record.n_records or network.m",
                  "buffers": "this machine has too little free memory for any run"}[parameter]
        raise ConfigError(
            f"this run needs about {need / 2**30:.3g} GiB but only {have / 2**30:.3g} GiB are available; "
            f"most of it ({terms[parameter] / 2**30:.3g} GiB) comes from {parameter} = {value}: {advice}",
            parameter=parameter, value=value, allowed=f"a run that fits in {have / 2**30:.3g} GiB")
