"""Plotting helpers: byte-stable PNGs, GIF animations, fitted exponents in scaling plots."""
import numpy as np
import pytest
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.fits import power_law
from meanfield.tools.figures import save_figure


@pytest.fixture(scope="module")
def result():
    cfg = mf.Config(network={"m": 30, "d": 2}, data={"n": 20}, flow={"dt": 0.05, "t_end": 2.0},
                    record={"n_records": 6})
    return mf.simulate(cfg)


def draw(result):
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    plotting.particles(axes[0], result, teacher=np.array([[1.0, 0.0, 1.0], [0.0, -1.0, 1.0]]))
    plotting.risk_curves(axes[1], {"train": (result.t, result.observables["train_risk"])}, reference_slopes=[-1])
    fits = plotting.scaling(axes[2], np.array([1, 10, 100]), {"y": np.array([3.0, 0.3, 0.03])}, "m", "y",
                            expected={"y": -1})
    return fig, fits


def test_pngs_are_byte_stable(result, tmp_path):
    fig, _ = draw(result)
    save_figure(fig, tmp_path / "a.png")
    fig2, _ = draw(result)
    save_figure(fig2, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_scaling_plot_reports_the_fitted_exponent(result):
    _, fits = draw(result)
    assert fits["y"].slope == pytest.approx(-1.0, abs=1e-12)


def test_power_law_fit_recovers_exponent_and_prefactor():
    x = np.array([10.0, 100.0, 1000.0, 1e4])
    fit = power_law(x, 2.5 * x ** -0.5 * np.array([1.01, 0.99, 1.0, 1.0]))
    assert fit.slope == pytest.approx(-0.5, abs=0.01)
    assert fit.prefactor == pytest.approx(2.5, rel=0.05)
    assert 0 < fit.stderr < 0.01
    with pytest.raises(ValueError):
        power_law([1.0, 2.0], [1.0, -1.0])


def test_animate_writes_one_frame_per_record(result, tmp_path):
    from PIL import Image
    path = plotting.animate(result, tmp_path / "flow.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == len(result.t)
