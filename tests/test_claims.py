"""Claims as data: holds is computed from the value, and a failing claim fails the figure."""
import json
import subprocess
import sys

import numpy as np
import pytest

from meanfield.analysis.claims import MIN_SIZES, check_windows, claim, failed, rate
from meanfield.analysis.fits import seed_slopes


@pytest.mark.parametrize("value,relation,reference,holds", [
    (0.5, "<", 1.0, True), (1.0, "<", 1.0, False), (1.0, "<=", 1.0, True), (2.0, ">", 1.0, True),
    (1.0, ">=", 1.1, False), (-0.5, "in", [-0.6, -0.4], True), (-0.3, "in", [-0.6, -0.4], False),
    ([0.1, 0.2], "<", 0.3, True), ([0.1, 0.4], "<", 0.3, False), (float("nan"), "<", 1.0, False),
    ([], "<", 1.0, False)])
def test_holds_is_computed_from_value_relation_and_reference(value, relation, reference, holds):
    made = claim("text", "q", value, relation, reference)
    assert made["holds"] is holds
    np.testing.assert_equal(json.loads(json.dumps(made)), made)        # JSON-ready as it is
    assert failed([made]) == ([] if holds else [made])


def test_an_unknown_relation_is_refused():
    with pytest.raises(ValueError, match="relation"):
        claim("text", "q", 1.0, "~", 1.0)


def test_seed_slopes_recover_an_exponent_with_an_interval_over_seeds():
    rng = np.random.default_rng(0)
    x = np.array([16.0, 64.0, 256.0, 1024.0, 4096.0])
    values = 3 * x[:, None] ** -0.5 * np.exp(0.05 * rng.standard_normal((5, 8)))
    fit = seed_slopes(x, values)
    assert len(fit["slopes"]) == 8
    assert fit["sizes"] == 5
    assert fit["ci_low"] < -0.5 < fit["ci_high"]
    assert fit["ci_high"] - fit["ci_low"] < 0.1


def exact_fit(slope, sizes=5, seeds=3):
    x = 2.0 ** np.arange(4, 4 + sizes)
    return seed_slopes(x, 2 * x[:, None] ** slope * np.ones((1, seeds)))


def test_a_rate_claim_holds_when_its_interval_is_inside_a_window_that_excludes_the_rival():
    exact = exact_fit(-1.0)
    np.testing.assert_allclose([exact["slope"], exact["ci_low"], exact["ci_high"]], -1.0, atol=1e-12)
    made = rate("falls like 1/m, not like m^-1/2", "slope", exact, theory=-1.0, window=[-1.2, -0.8], rival=-0.5)
    assert made["holds"] is True
    assert (made["seeds"], made["sizes"], made["rival"], made["kind"]) == (3, 5, [-0.5], "outcome")
    np.testing.assert_allclose(made["value"], [-1.0, -1.0], atol=1e-12)


@pytest.mark.parametrize("window,rival,sizes", [
    ([-1.2, -0.4], -0.5, 5),                        # the rival inside the window: could not fail the right way
    ([-1.2, -0.8], [-0.5, -1.1], 5),                # one of several rivals inside
    ([-1.2, -0.8], -0.5, MIN_SIZES - 1)])           # too few sizes for an interval worth the name
def test_a_rate_claim_that_cannot_tell_the_theories_apart_does_not_hold(window, rival, sizes):
    made = rate("falls like 1/m", "slope", exact_fit(-1.0, sizes), theory=-1.0, window=window, rival=rival)
    assert made["holds"] is False


def test_a_rate_claim_fails_when_its_interval_leaves_the_window():
    made = rate("falls like 1/m", "slope", exact_fit(-0.7), theory=-1.0, window=[-1.2, -0.8], rival=-0.5)
    assert made["holds"] is False


def test_a_window_must_contain_the_predicted_exponent():
    with pytest.raises(ValueError, match="does not contain"):
        rate("falls like 1/m", "slope", exact_fit(-1.0), theory=-1.0, window=[-0.9, -0.6], rival=-0.5)


def test_check_windows_names_overlapping_windows_and_rivals_inside():
    fit = exact_fit(-1.0)
    a = rate("a", "slope", fit, theory=-1.0, window=[-1.2, -0.8], rival=-0.5)
    b = rate("b", "slope", exact_fit(-0.5), theory=-0.5, window=[-0.7, -0.3], rival=-1.0)
    same = rate("c", "slope", fit, theory=-1.0, window=[-1.1, -0.9], rival=-0.5)
    assert check_windows([a, b, same]) == []                 # same exponent may share a window
    wide = rate("d", "slope", exact_fit(-0.5), theory=-0.5, window=[-0.9, -0.3], rival=-1.0)
    assert check_windows([a, wide]) == ["'a' and 'd': windows of different exponents overlap"]
    loose = rate("e", "slope", fit, theory=-1.0, window=[-1.2, -0.4], rival=-0.5)
    assert check_windows([loose]) == ["'e': a rival inside its window"]


def test_a_claim_says_its_kind_and_a_construction_says_why():
    assert claim("t", "q", 1.0, "<", 2.0)["kind"] == "outcome"
    made = claim("t", "q", 1.0, "<", 2.0, kind="construction", because="the model's definition")
    assert made["because"] == "the model's definition"
    with pytest.raises(ValueError, match="because"):
        claim("t", "q", 1.0, "<", 2.0, kind="construction")
    with pytest.raises(ValueError, match="kind"):
        claim("t", "q", 1.0, "<", 2.0, kind="guess")


FAKE = '''"""A fake figure whose second claim does not hold.

Source: a test.
"""
from matplotlib import pyplot as plt

from meanfield.analysis.claims import claim
from meanfield.tools.figures import scenario_main


def run(quick, out):
    fig = plt.figure()
    claims = [claim("one is less than two", "1", 1.0, "<", 2.0), claim("two is less than one", "2", 2.0, "<", 1.0)]
    return fig, {"seed": 0, "config": {}, "numbers": {}, "claims": claims, "setting": "none"}


if __name__ == "__main__":
    scenario_main(__file__, run)
'''


def test_a_figure_whose_claim_fails_is_written_and_reported_and_fails_the_command(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "fake.py").write_text(FAKE)
    out = tmp_path / "figures"
    proc = subprocess.run([sys.executable, "-m", "meanfield.tools.cli", "figures", "--quick", "--scenarios",
                           str(folder),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "claim failed" in proc.stdout
    assert "two is less than one" in proc.stdout
    assert "one is less than two" not in proc.stdout
    sidecar = json.loads((out / "fake.json").read_text())         # written, to be looked at
    assert [c["holds"] for c in sidecar["claims"]] == [True, False]
