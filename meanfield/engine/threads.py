"""How many threads a run uses. ``flow.threads = 0`` ("auto") never backfires:

- one thread when a step is too small for a parallel region to pay (each step enters three or
  four fork/join regions; under load every join waits for a descheduled worker, and waiting
  workers spin): below ``PARALLEL_WORK`` multiply-adds per step;
- one thread when the machine has no idle core beside this process (other runnable tasks, read
  from ``/proc/loadavg`` at the start of the run);
- otherwise every core this process may use.

``flow.threads = k > 0`` uses exactly k. Results are bit-identical for every thread count (each
parallel iteration owns its output slot), so the policy changes the speed only, never the numbers.

``PARALLEL_WORK`` was measured on a quiet 2-core Zen 3 machine: full-batch steps (ReLU, squared
loss, both layers), wall time per step with two threads over one: 1.13 at n m (d + 1) = 9e3,
1.24 at 6e4, 0.75 at 4e5 and 1e6, 0.58 at 3e6, 0.47 at 1e7, 0.61 at 1e8 (d = 100). The threshold
sits at 1e6 so that steps of under about half a millisecond never fork: there two threads save at
most a quarter on a quiet machine, and under load each fork/join can cost many times the step.
"""
from __future__ import annotations

import os

PARALLEL_WORK = 1e6      # multiply-adds per step from which a second thread pays (see above)


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def other_runnable() -> int:
    """Runnable tasks on the machine other than this one, now (0 if unknown)."""
    try:
        with open("/proc/loadavg") as handle:
            running = int(handle.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(running - 1, 0)


def work_per_step(n_samples: int, m: int, p: int, population: bool = False, pairs: bool = False) -> float:
    """Multiply-adds of one step: batch x m x (d + 1) on data; m^2 (d + 1) for the population risk;
    plus m^2 (d + 1) for pair sums (``pairs``: a Gaussian interaction)."""
    return float(m) * (m if population else n_samples) * p + (float(m) * m * p if pairs else 0.0)


def choose(requested: int, work: float, limit: int) -> int:
    """Threads for a run: ``requested`` if > 0 (capped at ``limit``), else the auto policy."""
    if requested > 0:
        return min(requested, limit)
    if work < PARALLEL_WORK:
        return 1
    cpus = usable_cpus()
    return max(1, min(limit, cpus - other_runnable()))
