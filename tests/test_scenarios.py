"""Every scenario runs in quick mode, headless, and records what its figure claims."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from meanfield.figures import RECORD_KEYS, list_scenarios

ROOT = Path(__file__).resolve().parent.parent
SIDECAR_KEYS = {"name", "claim", "quick", "versions", "run_seconds", *RECORD_KEYS}


@pytest.fixture(scope="module")
def quick_figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    proc = subprocess.run([sys.executable, "-m", "meanfield.cli", "figures", "--quick", "--out", str(out)],
                          capture_output=True, text=True, env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_every_scenario_writes_its_png_and_sidecar(quick_figures):
    out, report = quick_figures
    names = [s.name for s in list_scenarios()]
    assert {"regimes_2d", "scalings_table"} <= set(names)
    for name in names:
        assert f"{name}" in report and "ok" in report
        sidecar = json.loads((out / f"{name}.json").read_text())
        assert SIDECAR_KEYS <= set(sidecar), SIDECAR_KEYS - set(sidecar)
        assert sidecar["quick"] is True and sidecar["run_seconds"] > 0 and sidecar["claim"]
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scalings_table_exponents_are_the_theory_s(quick_figures):
    out, _ = quick_figures
    numbers = json.loads((out / "scalings_table.json").read_text())["numbers"]
    for quantity, expected in numbers["expected"].items():
        for scaling, slope in expected.items():
            assert numbers["fits"][quantity][scaling]["slope"] == pytest.approx(slope, abs=0.15), (quantity, scaling)


def test_regimes_2d_mean_field_particles_move_much_more_than_lazy_ones_and_both_fit(quick_figures):
    out, _ = quick_figures
    numbers = json.loads((out / "regimes_2d.json").read_text())["numbers"]
    assert numbers["mean_field"]["displacement_mean"] > 3 * numbers["lazy"]["displacement_mean"]
    for regime in ("mean_field", "lazy"):
        assert numbers[regime]["final_train_risk"] < 0.02
    from PIL import Image
    with Image.open(out / "regimes_2d.gif") as gif:
        assert gif.n_frames >= 10


def test_scenario_listing_and_unknown_names(capsys):
    from meanfield.cli import main
    assert main(["scenarios"]) == 0
    listing = capsys.readouterr().out
    assert "regimes_2d" in listing and "scalings_table" in listing
    assert main(["figures", "no_such_scenario", "--out", "/tmp/unused-meanfield"]) == 2
    assert "no_such_scenario" in capsys.readouterr().err


def test_import_meanfield_loads_neither_matplotlib_nor_pot():
    code = "import sys, meanfield; print(sorted(m for m in ('matplotlib', 'ot', 'dask', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
