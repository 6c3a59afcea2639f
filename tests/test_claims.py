"""Claims as data: holds is computed from the value, and a failing claim fails the figure."""
import json
import subprocess
import sys

import numpy as np
import pytest

from meanfield.analysis.claims import claim, failed, rate
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
    x = np.array([16.0, 64.0, 256.0, 1024.0])
    values = 3 * x[:, None] ** -0.5 * np.exp(0.05 * rng.standard_normal((4, 8)))
    fit = seed_slopes(x, values)
    assert len(fit["slopes"]) == 8
    assert fit["ci_low"] < -0.5 < fit["ci_high"]
    assert fit["ci_high"] - fit["ci_low"] < 0.1
    exact = seed_slopes(x, 2 * x[:, None] ** -1.0 * np.ones((1, 3)))
    np.testing.assert_allclose([exact["slope"], exact["ci_low"], exact["ci_high"]], -1.0, atol=1e-12)
    made = rate("falls like 1/m", "slope", exact, [-1.1, -0.9])
    assert made["holds"] is True
    assert made["seeds"] == 3


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
