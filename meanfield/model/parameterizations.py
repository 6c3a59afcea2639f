"""The deep networks' registries (``deep.py``): architectures, parameterisations as Yang & Hu's
abc-parameterisations, and the parameter count. Kept apart (no imports) so that the
configuration, the memory estimate and the result check can use them without ``deep.py``."""
from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ("mlp", "resnet")


@dataclass(frozen=True)
class Parameterization:
    """Multiplier exponents A and initial standard-deviation exponents B for the (input, hidden,
    output) layers: multiplier m^-A, standard deviation m^-B (times the gain sqrt(c_sigma): see ``deep.py``)."""

    name: str
    A: tuple
    B: tuple
    summary: str


PARAMETERIZATIONS = {p.name: p for p in (
    Parameterization("ntk", (0.0, 0.5, 0.5), (0.0, 0.0, 0.0), "neural tangent: multipliers m^-1/2, N(0, 1) weights"),
    Parameterization("standard", (0.0, 0.0, 0.0), (0.0, 0.5, 0.5),
                     "standard: no multipliers, N(0, c_sigma / m) weights"),
    Parameterization("mup", (-0.5, 0.0, 0.5), (0.5, 0.5, 0.5), "maximal update (muP): features move Theta(1)"),
)}


def parameter_count(d: int, m: int, depth: int) -> int:
    """Raw parameters of a deep network: w_1 (m, d), w_2 .. w_L (m, m), a (m,)."""
    return m * d + (depth - 1) * m * m + m
