"""Every scenario runs in quick mode, headless, and records what its figure claims."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meanfield.analysis.claims import KINDS, MIN_SIZES, check_windows
from meanfield.tools.figures import RECORD_KEYS, list_scenarios

ROOT = Path(__file__).resolve().parent.parent
SIDECAR_KEYS = {"name", "claim", "quick", "versions", "run_seconds", *RECORD_KEYS}


SCENARIOS = {s.name: s for s in list_scenarios()}
ENV = {**os.environ, "MPLBACKEND": "Agg"}


@pytest.fixture(scope="module")
def figures_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("figures")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_scenario_writes_its_png_and_sidecar_and_every_claim_holds(figures_folder, name):
    """The scenario script in quick mode, headless: its figure, its sidecar, and every claim it makes
    holds (a figure states only what its own numbers show)."""
    proc = subprocess.run([sys.executable, str(SCENARIOS[name].path), "--quick", "--out", str(figures_folder)],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sidecar = json.loads((figures_folder / f"{name}.json").read_text())
    assert SIDECAR_KEYS <= set(sidecar), SIDECAR_KEYS - set(sidecar)
    assert sidecar["quick"] is True
    assert sidecar["run_seconds"] > 0
    assert sidecar["claim"]
    assert (figures_folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_claims_can_fail_the_right_way(sidecar["claims"])
    if name == "regimes_2d":
        from PIL import Image
        with Image.open(figures_folder / "regimes_2d.gif") as gif:
            assert gif.n_frames >= 10


def assert_claims_can_fail_the_right_way(claims):
    """Every claim holds and has a kind; a title rests on at least one outcome; a construction says
    why; every rate names its rivals, excluded by its window, and was fitted on enough sizes; no
    two windows of different exponents overlap."""
    assert len(claims) >= 2
    for item in claims:
        assert set(item) >= {"text", "quantity", "value", "relation", "reference", "holds", "kind"}, item
        assert item["holds"] is True, item
        assert item["kind"] in KINDS, item
        if item["kind"] == "construction":
            assert item["because"], item
        if "theory" in item:
            assert item["rival"], item
            assert item["sizes"] >= MIN_SIZES, item
    assert any(item["kind"] == "outcome" for item in claims)
    assert check_windows(claims) == []


COMMITTED = sorted((ROOT / "figures").glob("*.json"))


@pytest.mark.parametrize("sidecar", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_every_committed_figure_is_full_mode_from_a_scenario_and_its_claims_can_fail_the_right_way(sidecar):
    """The figures in the repository: one per scenario, at full mode, and the window test of every
    claim (the rule of meanfield.claims, on the numbers the figures show)."""
    record = json.loads(sidecar.read_text())
    assert record["name"] in SCENARIOS
    assert record["quick"] is False
    assert_claims_can_fail_the_right_way(record["claims"])


def test_every_scenario_has_its_committed_figure():
    assert {p.stem for p in COMMITTED} == set(SCENARIOS)


def test_the_figures_command_runs_the_named_scenarios_and_reports_each(tmp_path):
    names = ["coordinate_check", "random_labels"]
    proc = subprocess.run([sys.executable, "-m", "meanfield", "figures", "--quick", "--jobs", "2", *names, "--out",
                           str(tmp_path)],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == f"figures written to {tmp_path}"
    plan = proc.stdout.splitlines()[0]
    assert plan.startswith(f"meanfield figures: 2 scenarios in quick mode, 2 at a time, into {tmp_path}"), plan
    for k, name in enumerate(names, 1):
        started, ended = (row for row in proc.stdout.splitlines() if row.startswith(name + " "))
        assert f"running ({k}/2)" in started
        assert ended.split()[1] == "ok", ended
        assert (tmp_path / f"{name}.json").exists()
    assert {"regimes_2d", "scalings_table", "du_lazy_convergence", "ntk_constancy", "alpha_rescaling",
            "random_labels", "teacher_student_vs_m", "init_scale", "overparam_landscape",
            "propagation_of_chaos", "mmn_isotropic_gaussians", "langevin_oracle", "mean_field_langevin",
            "implicit_bias_margin", "quadratic_activation", "performance"} <= set(SCENARIOS)
    assert "landscape_certificates" not in SCENARIOS            # merged into overparam_landscape


def test_scenario_listing_and_unknown_names(capsys):
    from meanfield.tools.cli import main
    assert main(["scenarios"]) == 0
    listing = capsys.readouterr().out
    assert "regimes_2d" in listing
    assert "scalings_table" in listing
    assert main(["figures", "no_such_scenario", "--out", "/tmp/unused-meanfield"]) == 2
    assert "no_such_scenario" in capsys.readouterr().err
    assert main(["figures", "--jobs", "0", "--out", "/tmp/unused-meanfield"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert main(["figures", "--scheduler", "nowhere", "--out", "/tmp/unused-meanfield"]) == 2
    assert "--scheduler" in capsys.readouterr().err


def test_import_meanfield_loads_neither_matplotlib_nor_pot():
    code = ("import sys, meanfield; "
            "print(sorted(m for m in ('matplotlib', 'ot', 'dask', 'torch', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
