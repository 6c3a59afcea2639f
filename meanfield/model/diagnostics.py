"""The diagnostics a run can record (``record.diagnostics``): the registry's metadata, a leaf that
the config validates against; ``engine.observables`` computes them.

Each entry: its name, the observables it adds, its cost per record (for m particles, n training
samples, d inputs), ``cost_class`` (how it compares with a step: "step" at most a few steps,
"kernel" an n x n kernel (O(n^2 m d)), "pairs" particle pairs (O(m^2 d)), "sampling" importance
sampling, many steps), whether it needs training samples (not with the exact population risk),
and the systems that have it ("two_layer", "deep").
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    name: str
    adds: tuple
    cost: str
    cost_class: str
    samples: bool
    systems: tuple = ("two_layer",)


DIAGNOSTICS = {d.name: d for d in (
    Diagnostic("lambda_min", ("lambda_min",), "O(n^2 m d + n^3)", "kernel", True, ("two_layer", "deep")),
    Diagnostic("lambda_max", ("lambda_max",), "O(n^2 m d + n^3)", "kernel", True, ("two_layer", "deep")),
    Diagnostic("kernel_change", ("kernel_change",), "O(n^2 m d)", "kernel", True, ("two_layer", "deep")),
    Diagnostic("pattern_flips", ("pattern_flips",), "O(n m d)", "step", True),
    Diagnostic("masses", ("total_mass", "negative_mass", "cone_mass"), "O(m m0 d)", "step", False),
    Diagnostic("free_energy", ("entropy", "free_energy"), "O(m^2 d)", "pairs", False),
    Diagnostic("gibbs", ("gibbs_gap",), "O(S n d), S importance samples", "sampling", True),
    Diagnostic("margins", ("min_margin", "normalized_margin", "train_error", "test_error"), "O(n m d)", "step", True),
    Diagnostic("tangent_gap", ("tangent_gap",), "O(n m d), and a second run in lockstep", "step", True),
)}
SAMPLE_BASED = tuple(name for name, d in DIAGNOSTICS.items() if d.samples)
