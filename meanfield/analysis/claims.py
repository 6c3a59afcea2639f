"""A figure's claims as data: each sentence a figure states, with the comparison that proves it
from the figure's own numbers, and what kind of sentence it is.

A claim is a dict ``{"text", "quantity", "value", "relation", "reference", "holds", "kind"}``:
``value`` (a number or a list of numbers, each of which must satisfy the relation) is compared with
``reference`` by ``relation``:

- ``"<"``, ``"<="``, ``">"``, ``">="``: against a number;
- ``"in"``: within the closed interval ``reference = [low, high]``.

Its ``kind`` says what it can tell: ``"outcome"`` (it could have come out otherwise: only these
carry a figure's title), ``"construction"`` (true by the model's definition, or implied by another
claim: ``because`` says which) or ``"check"`` (a numerical accuracy check of the computation).

``rate`` makes the claim for an exponent fitted over seeds, which must be able to fail the right
way: it names the ``theory`` exponent and the ``rival`` exponent(s) the figure rules out, its
``window`` contains the former and excludes every rival, it was fitted on at least ``MIN_SIZES``
sizes, and it holds only when the whole confidence interval over seeds lies inside the window.
Scenario scripts return their claims in ``record["claims"]``; ``figures.scenario_main`` writes
them into the sidecar and fails, naming each claim that does not hold; ``check_windows`` checks a
figure's rate claims against one another (no two windows for different exponents overlap).
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
KINDS = ("outcome", "construction", "check")
MIN_SIZES = 5           # sizes a fitted exponent needs (three-point fits gave intervals like [-2.4, +0.5])


def claim(text: str, quantity: str, value, relation: str, reference, kind: str = "outcome", because: str = "",
          **extra) -> dict:
    """One claim; ``holds`` is computed here, never given. ``kind``: "outcome", "construction"
    (then ``because`` says why it holds by construction) or "check". Extra keys are kept."""
    if relation not in RELATIONS:
        raise ValueError(f"relation {relation!r} is not one of {sorted(RELATIONS)}")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    if kind == "construction" and not because:
        raise ValueError("a construction claim says why it holds by construction (because=...)")
    values = np.atleast_1d(np.asarray(value, dtype=float))
    holds = bool(values.size > 0 and all(math.isfinite(v) and RELATIONS[relation](v, reference)
                                         for v in values.tolist()))
    value = values.tolist() if np.ndim(value) else float(value)
    return {"text": text, "quantity": quantity, "value": value, "relation": relation, "reference": reference,
            "holds": holds, "kind": kind, **({"because": because} if because else {}), **extra}


def rate(text: str, quantity: str, fit: dict, theory: float, window, rival, kind: str = "outcome",
         because: str = "") -> dict:
    """A claim on an exponent fitted over seeds (``fits.seed_slopes``): theory predicts ``theory``;
    the figure rules out ``rival`` (one exponent or several). It holds when the fit used at least
    MIN_SIZES sizes, ``window`` = [low, high] contains ``theory`` and excludes every rival, and the
    whole confidence interval over seeds lies inside the window. Its value is that interval."""
    low, high = (float(b) for b in window)
    rivals = [float(r) for r in np.atleast_1d(rival)]
    if not low <= theory <= high:
        raise ValueError(f"the window {[low, high]} of {text!r} does not contain the predicted exponent {theory}")
    made = claim(text, quantity, [fit["ci_low"], fit["ci_high"]], "in", [low, high], kind, because,
                 slope=fit["slope"], theory=float(theory), rival=rivals, seeds=len(fit["slopes"]),
                 sizes=int(fit.get("sizes", 0)))
    excluded = all(not low <= r <= high for r in rivals)
    made["holds"] = bool(made["holds"] and excluded and made["sizes"] >= MIN_SIZES)
    return made


def check_windows(claims: list[dict]) -> list[str]:
    """What is wrong with a figure's rate claims: a rival inside a window, a window that does not
    exclude a rival, or two windows of different predicted exponents that overlap. [] when sound."""
    rates = [c for c in claims if "theory" in c]
    problems = [f"{c['text']!r}: a rival inside its window" for c in rates
                if any(c["reference"][0] <= r <= c["reference"][1] for r in c["rival"])]
    problems += [f"{c['text']!r}: no rival named" for c in rates if not c["rival"]]
    for k, a in enumerate(rates):
        for b in rates[k + 1:]:
            if a["theory"] != b["theory"] and a["reference"][0] <= b["reference"][1] \
                    and b["reference"][0] <= a["reference"][1]:
                problems.append(f"{a['text']!r} and {b['text']!r}: windows of different exponents overlap")
    return problems


def failed(claims: list[dict]) -> list[dict]:
    """The claims that do not hold."""
    return [c for c in claims if not c["holds"]]
