"""A figure's claims as data: each sentence a figure states, with the comparison that proves it
from the figure's own numbers.

A claim is a dict ``{"text", "quantity", "value", "relation", "reference", "holds"}``: ``value``
(a number or a list of numbers, each of which must satisfy the relation) is compared with
``reference`` by ``relation``:

- ``"<"``, ``"<="``, ``">"``, ``">="``: against a number;
- ``"in"``: within the closed interval ``reference = [low, high]``.

``rate`` makes the claim for a fitted exponent: its value is the mean slope over seeds, with the
seeds' confidence interval stored beside it, and it holds when the slope lies within a stated
tolerance of the exponent theory predicts (or inside stated bounds) for that exact setting.
Scenario scripts return their claims in ``record["claims"]``; ``figures.scenario_main`` writes
them into the sidecar and fails, naming each claim that does not hold.
"""
from __future__ import annotations

import math
import operator

import numpy as np

RELATIONS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda value, ref: ref[0] <= value <= ref[1],
}


def claim(text: str, quantity: str, value, relation: str, reference, **extra) -> dict:
    """One claim; ``holds`` is computed here, never given. Extra keys (``ci``, ``seeds``) are kept."""
    if relation not in RELATIONS:
        raise ValueError(f"relation {relation!r} is not one of {sorted(RELATIONS)}")
    values = np.atleast_1d(np.asarray(value, dtype=float))
    holds = bool(values.size > 0 and all(math.isfinite(v) and RELATIONS[relation](v, reference)
                                         for v in values.tolist()))
    value = values.tolist() if np.ndim(value) else float(value)
    return {"text": text, "quantity": quantity, "value": value, "relation": relation,
            "reference": reference, "holds": holds, **extra}


def rate(text: str, quantity: str, fit: dict, bounds) -> dict:
    """A claim on a fitted exponent ``fit`` (``fits.seed_slopes``): the mean slope lies in
    ``bounds = [low, high]`` (theory's exponent plus or minus the stated tolerance)."""
    return claim(text, quantity, fit["slope"], "in", [float(b) for b in bounds],
                 ci=[fit["ci_low"], fit["ci_high"]], seeds=len(fit["slopes"]))


def failed(claims: list[dict]) -> list[dict]:
    """The claims that do not hold."""
    return [c for c in claims if not c["holds"]]
