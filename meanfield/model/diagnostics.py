"""The diagnostics a run can record (``record.diagnostics``): the registry's metadata, a leaf that
the config validates against; ``engine.observables`` computes them.

Each entry: its name, the observables it adds, its cost per record (for m particles, n training
samples, d inputs), ``cost_class`` (how it compares with a step: "step" at most a few steps,
"kernel" an n x n kernel (O(n^2 m d)), "pairs" particle pairs (O(m^2 d)), "sampling" importance
sampling, many steps), whether it needs training samples (not with the exact population risk),
and the systems that have it ("two_layer", "deep"). ``work(m, n, d)`` estimates its operations per
record (a transcendental function counted as TRANSCENDENTAL operations); ``run_seconds`` turns them
and the steps into seconds with rates measured on the reference machine (NumPy about 1 ns per
operation; a compiled step 0.3 ns per operation, and 10 ns per neuron and sample for a smooth
activation): a run whose diagnostics cost more than its steps says so before it starts. Estimates
within a factor of about 2 (measured: gibbs at m = 1000, n = 100, d = 2, 25 records, costs 14
times the 2000 ReLU steps' 0.29 CPU s, estimated 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

TRANSCENDENTAL = 20        # operations an exp, log or tanh counts for
GIBBS_SAMPLES = 20_000     # langevin.gibbs_gap's importance samples
NUMPY_NS = 1.0             # ns per operation of the diagnostics (NumPy)
STEP_NS = 0.3              # ns per operation of a compiled step
SMOOTH_NS = 10.0           # ns per neuron and sample of a smooth activation in a step (tanh: 7.5-12.5; ReLU: 0)
KDE_EXP = 4                # operations an exp of gibbs' kernel sums counts for (NumPy's in-place loop)


@dataclass(frozen=True)
class Diagnostic:
    name: str
    adds: tuple
    cost: str
    cost_class: str
    samples: bool
    systems: tuple = ("two_layer",)
    work: Callable = lambda m, n, d: n * m * d


def step_seconds(m: int, n: int, d: int, smooth: bool) -> float:
    """Estimated seconds of one compiled gradient step on n samples: 4 n m d + 7 n m operations,
    and the activation's transcendental calls if ``smooth``."""
    return 1e-9 * n * m * (STEP_NS * (4.0 * d + 7.0) + (SMOOTH_NS if smooth else 0.0))


DIAGNOSTICS = {d.name: d for d in (
    Diagnostic("lambda_min", ("lambda_min",), "O(n^2 m d + n^3)", "kernel", True, ("two_layer", "deep"),
               lambda m, n, d: 2.0 * n * n * m * d + 10.0 * n ** 3),
    Diagnostic("lambda_max", ("lambda_max",), "O(n^2 m d + n^3)", "kernel", True, ("two_layer", "deep"),
               lambda m, n, d: 2.0 * n * n * m * d + 10.0 * n ** 3),
    Diagnostic("kernel_change", ("kernel_change",), "O(n^2 m d)", "kernel", True, ("two_layer", "deep"),
               lambda m, n, d: 2.0 * n * n * m * d),
    Diagnostic("pattern_flips", ("pattern_flips",), "O(n m d)", "step", True),
    Diagnostic("masses", ("total_mass", "negative_mass", "cone_mass"), "O(m m0 d)", "step", False),
    Diagnostic("free_energy", ("entropy", "free_energy"), "O(m^2 d)", "pairs", False,
               work=lambda m, n, d: 3.0 * m * m * (d + 1)),
    Diagnostic("gibbs", ("gibbs_gap",), "O(S (m + n) d), S importance samples", "sampling", True,
               work=lambda m, n, d: GIBBS_SAMPLES * ((2.0 * (d + 1) + KDE_EXP) * m
                                                     + (2.0 * d + TRANSCENDENTAL) * n)),
    Diagnostic("margins", ("min_margin", "normalized_margin", "train_error", "test_error"), "O(n m d)", "step", True),
    Diagnostic("tangent_gap", ("tangent_gap",), "O(n m d), and a second run in lockstep", "step", True),
)}
SAMPLE_BASED = tuple(name for name, d in DIAGNOSTICS.items() if d.samples)


def run_seconds(names, m: int, n: int, d: int, records: int, steps: int, batch: int = 0,
                smooth: bool = False) -> tuple[float, float]:
    """(the diagnostics' estimated seconds over ``records`` records, the steps' estimated seconds):
    what a run compares before it starts (``batch`` > 0: each step sees that many samples)."""
    return (1e-9 * NUMPY_NS * records * sum(DIAGNOSTICS[name].work(m, n, d) for name in names),
            steps * step_seconds(m, batch or n, d, smooth))
