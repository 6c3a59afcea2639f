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
    assert {"regimes_2d", "scalings_table", "du_lazy_convergence", "ntk_constancy", "alpha_rescaling",
            "random_labels", "teacher_student_vs_m", "init_scale", "overparam_landscape",
            "propagation_of_chaos", "mmn_isotropic_gaussians", "langevin_oracle", "mean_field_langevin",
            "implicit_bias_margin", "quadratic_activation", "performance"} <= set(names)
    for name in names:
        line = next(row for row in report.splitlines() if row.startswith(name + " "))
        assert line.split()[1] == "ok", line
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


def numbers_of(quick_figures, name):
    out, _ = quick_figures
    return json.loads((out / f"{name}.json").read_text())["numbers"]


def test_du_lazy_convergence_rates(quick_figures):
    numbers = numbers_of(quick_figures, "du_lazy_convergence")
    assert numbers["all_risks_below_envelope"] is True and numbers["lambda0"] > 0
    for name in ("kernel_deviation", "max displacement", "pattern-flip fraction"):
        assert numbers["fits"][name]["slope"] == pytest.approx(-0.5, abs=0.2), name


def test_ntk_constancy_lazy_kernel_freezes_mean_field_kernel_moves(quick_figures):
    numbers = numbers_of(quick_figures, "ntk_constancy")
    assert numbers["fits"]["lazy"]["slope"] == pytest.approx(-0.5, abs=0.25)
    assert numbers["fits"]["mean_field"]["slope"] == pytest.approx(0.0, abs=0.15)
    assert min(numbers["final_kernel_change"]["mean_field"]) > 10 * min(numbers["final_kernel_change"]["lazy"])


def test_alpha_rescaling_gap_falls_like_one_over_alpha(quick_figures):
    numbers = numbers_of(quick_figures, "alpha_rescaling")
    assert numbers["fits"]["tanh, centered"]["slope"] == pytest.approx(-1.0, abs=0.1)
    assert numbers["fits"]["tanh, symmetric init"]["slope"] == pytest.approx(-2.0, abs=0.15)
    assert -1.3 < numbers["fits"]["relu, centered"]["slope"] < -0.5


def test_random_labels_are_fitted_more_slowly_as_the_kernel_predicts(quick_figures):
    numbers = numbers_of(quick_figures, "random_labels")
    true, rand = numbers["true labels (teacher)"], numbers["random labels (±1)"]
    assert rand["time_to_10_percent"] > 2 * true["time_to_10_percent"]
    assert rand["final_risk_fraction"] < 0.1 and true["final_risk_fraction"] < 0.01
    assert true["energy_on_top_10_percent_eigenvectors"] > 2 * rand["energy_on_top_10_percent_eigenvectors"]
    for labels in (true, rand):
        assert labels["max_gap_to_kernel_prediction"] < 0.05     # risks start at 0.5


def test_teacher_student_vs_m_converges_once_over_parameterised(quick_figures):
    numbers = numbers_of(quick_figures, "teacher_student_vs_m")
    success, cone = numbers["success_fraction"], numbers["cone_mass_fraction"]
    assert all(s == 1.0 for s in success[1:]) and success[0] < 1.0
    assert min(cone[1:]) > 0.85
    assert min(numbers["largest_m_cone_mass_per_teacher_neuron"]) > 0.8        # each c_j = 1


def test_init_scale_small_init_generalises_better_for_gd_and_online_sgd(quick_figures):
    numbers = numbers_of(quick_figures, "init_scale")
    for method, test in numbers["test_risk"].items():
        assert test[-1] > 5 * test[0], method
        moved = numbers["relative_displacement"][method]
        assert moved[-1] < 0.01 * moved[0], method


def test_overparam_landscape_twice_the_width_escapes_the_traps(quick_figures):
    numbers = numbers_of(quick_figures, "overparam_landscape")
    assert np.all(np.array(numbers["success_fraction"]["k = 2 k0"]) == 1.0)
    assert np.mean(numbers["success_fraction"]["k = 1 k0"]) <= 0.5


def test_propagation_of_chaos_rates(quick_figures):
    numbers = numbers_of(quick_figures, "propagation_of_chaos")
    fits = numbers["fits"]
    assert fits["coupled particle distance"]["slope"] == pytest.approx(-0.5, abs=0.2)
    assert fits["predictor distance"]["slope"] == pytest.approx(-0.5, abs=0.2)
    assert fits["lazy W2(mu_T, mu_0)"]["slope"] == pytest.approx(-0.5, abs=0.1)
    assert -0.5 < fits["W2 (exact) at t = T"]["slope"] < -0.1
    assert fits["euler dt"]["slope"] == pytest.approx(1.0, abs=0.3)
    for m, floor in numbers["finite_m_floor"].items():       # the error never beats the finite-m floor
        assert min(numbers["dt_total_error"][m]) > 0.9 * floor


def test_mmn_radial_dynamics_match_sgd(quick_figures):
    numbers = numbers_of(quick_figures, "mmn_isotropic_gaussians")
    small, large = (np.array(numbers["w2_radial"][str(b)]) for b in numbers["batches"])
    assert large[-1] < 0.8 * small[-1]                      # less SGD noise, closer to the PDE
    assert np.max(large) < 0.1 * numbers["mean_radius"]["reduced"][-1]
    risk_sgd = numbers["sgd_test_risk"][str(numbers["batches"][-1])][-1]
    assert risk_sgd == pytest.approx(numbers["reduced_risk"][-1], rel=0.3)
    assert numbers["mean_radius"]["sgd"][-1] == pytest.approx(numbers["mean_radius"]["reduced"][-1], rel=0.05)


def test_langevin_oracle_matches_the_exact_gaussian_law(quick_figures):
    numbers = numbers_of(quick_figures, "langevin_oracle")
    measured, exact = np.array(numbers["measured_variance"]), np.array(numbers["exact_em_variance"])
    assert np.all(np.abs(measured / exact - 1) < 4 * np.sqrt(2 / 2000))      # 2000 samples per record
    assert np.all(np.array(numbers["w2_to_exact_law"]) < 1.6 * np.array(numbers["w2_sampling_floor"]) + 0.02)
    np.testing.assert_allclose(numbers["stationary_variance"], numbers["stationary_em_formula"], rtol=0.02)


def test_mean_field_langevin_reaches_the_gibbs_fixed_point_and_annealing_escapes(quick_figures):
    numbers = numbers_of(quick_figures, "mean_field_langevin")
    for start, end, rise in zip(numbers["initial_gibbs_gap"], numbers["final_gibbs_gap"], numbers["free_energy_increase_max"]):
        assert end < 0.02 * start and end > -0.01 and rise < 0.01
    entropy = numbers["final_entropy"]
    assert entropy[-1] > entropy[0]                      # hotter: more spread
    risks = numbers["dirac_init_final_risk"]
    assert risks["annealed"] < 0.05 * risks["gradient_flow"]


def test_implicit_bias_both_layers_grow_a_larger_margin_and_generalise(quick_figures):
    numbers = numbers_of(quick_figures, "implicit_bias_margin")
    both, kernel = numbers["both"], numbers["output"]
    assert both["final_normalized_margin"] > 0 and both["final_normalized_margin"] > kernel["final_normalized_margin"]
    assert both["final_test_error"] < 0.5 * kernel["final_test_error"]
    margin = np.array(both["normalized_margin"])
    assert margin[-1] > margin[-6] > 0                       # separated, and still growing at the end


def test_quadratic_activation_reaches_zero_risk_once_the_width_allows_it(quick_figures):
    numbers = numbers_of(quick_figures, "quadratic_activation")
    widths, success = np.array(numbers["widths"]), np.array(numbers["success_fraction"])
    assert np.all(success[widths < numbers["capacity_width"]] == 0.0)
    assert success[-1] == 1.0 and widths[-1] <= numbers["du_lee_width"]


def test_performance_records_every_implementation_at_every_size(quick_figures):
    """Structure only: timings are the bench's business, not a unit test's."""
    numbers = numbers_of(quick_figures, "performance")
    for along in ("m", "n"):
        times = numbers["ms"][along]
        assert {"engine", "numpy"} <= set(times)
        assert all(len(v) == len(numbers["sizes"]) and min(v) > 0 for v in times.values())
        assert set(numbers["fits"][along]) == set(times)
    assert set(numbers["median_lead"]) == set(numbers["ms"]["m"]) - {"engine"}
