"""Every scenario runs in quick mode, headless, and records what its figure claims."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from meanfield.tools.figures import RECORD_KEYS, list_scenarios

ROOT = Path(__file__).resolve().parent.parent
SIDECAR_KEYS = {"name", "claim", "quick", "versions", "run_seconds", *RECORD_KEYS}


@pytest.fixture(scope="module")
def quick_figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    proc = subprocess.run([sys.executable, "-m", "meanfield.tools.cli", "figures", "--quick", "--out", str(out)],
                          capture_output=True, text=True, env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == f"figures written to {out}"
    return out, proc.stdout


def test_every_scenario_writes_its_png_and_sidecar(quick_figures):
    out, report = quick_figures
    names = [s.name for s in list_scenarios()]
    assert {"regimes_2d", "scalings_table", "du_lazy_convergence", "ntk_constancy", "alpha_rescaling",
            "random_labels", "teacher_student_vs_m", "init_scale", "overparam_landscape",
            "propagation_of_chaos", "mmn_isotropic_gaussians", "langevin_oracle", "mean_field_langevin",
            "implicit_bias_margin", "quadratic_activation", "performance"} <= set(names)
    for name in names:
        started, ended = (row for row in report.splitlines() if row.startswith(name + " "))
        assert "running" in started
        assert ended.split()[1] == "ok", ended
        sidecar = json.loads((out / f"{name}.json").read_text())
        assert SIDECAR_KEYS <= set(sidecar), SIDECAR_KEYS - set(sidecar)
        assert sidecar["quick"] is True
        assert sidecar["run_seconds"] > 0
        assert sidecar["claim"]
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_claim_of_every_figure_holds_in_quick_mode(quick_figures):
    """Each figure states only what its own numbers show: every claim in every sidecar holds."""
    out, _ = quick_figures
    for scenario in list_scenarios():
        claims = json.loads((out / f"{scenario.name}.json").read_text())["claims"]
        assert len(claims) >= 2, scenario.name
        for item in claims:
            assert set(item) >= {"text", "quantity", "value", "relation", "reference", "holds"}, item
            assert item["holds"] is True, (scenario.name, item)


def test_regimes_2d_writes_its_animation(quick_figures):
    out, _ = quick_figures
    from PIL import Image
    with Image.open(out / "regimes_2d.gif") as gif:
        assert gif.n_frames >= 10


def test_scenario_listing_and_unknown_names(capsys):
    from meanfield.tools.cli import main
    assert main(["scenarios"]) == 0
    listing = capsys.readouterr().out
    assert "regimes_2d" in listing
    assert "scalings_table" in listing
    assert main(["figures", "no_such_scenario", "--out", "/tmp/unused-meanfield"]) == 2
    assert "no_such_scenario" in capsys.readouterr().err


def test_import_meanfield_loads_neither_matplotlib_nor_pot():
    code = "import sys, meanfield; print(sorted(m for m in ('matplotlib', 'ot', 'dask', 'torch', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
