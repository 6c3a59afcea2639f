"""Matrix products on several threads whose result does not depend on the thread count.

Multi-threaded OpenBLAS splits a product differently for each thread count, so its rounding (and
so a run) would change with ``flow.threads``. Here the output is cut into fixed blocks of
``BLOCK`` rows (or columns, whichever dimension is longer), chosen from the shapes alone; each
block is one single-threaded BLAS call, and a pool of threads takes the blocks. The caller holds
BLAS at one thread (``simulate`` does). NumPy releases the GIL inside ``matmul``, so the blocks
run in parallel.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK = 256
_pools: dict = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per (process, thread count), made on first use (a forked child makes its own)."""
    key = (os.getpid(), threads)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="meanfield-blas")
    return _pools[key]


def blocks(shape) -> list:
    """The index tuples cutting an output of ``shape`` (rows,) or (rows, cols) into blocks."""
    rows = shape[0]
    if len(shape) == 1 or rows >= shape[1]:
        return [(slice(s, s + BLOCK),) for s in range(0, rows, BLOCK)]
    return [(slice(None), slice(s, s + BLOCK)) for s in range(0, shape[1], BLOCK)]


def matmul(a, b, out, threads: int = 1):
    """out = a @ b for a (r, k), b (k, c) or (k,), out (r, c) or (r,); returns ``out``.

    Bit for bit the same for every ``threads``."""
    parts = []
    for block in blocks(out.shape):
        rows = block[0]
        cols = block[1] if len(block) > 1 else slice(None)
        parts.append((a[rows], b[:, cols] if b.ndim == 2 else b, out[block]))
    if threads <= 1 or len(parts) == 1:
        for a_part, b_part, out_part in parts:
            np.matmul(a_part, b_part, out=out_part)
        return out
    for future in [_pool(threads).submit(np.matmul, *part[:2], out=part[2]) for part in parts]:
        future.result()
    return out
