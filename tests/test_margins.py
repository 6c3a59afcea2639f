"""Margins on hand-made configurations, their invariance, and the logistic loss's gradient."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.config import NetworkConfig
from meanfield.engine.observables import margins
from meanfield.model import twolayer


def test_margins_on_a_hand_made_network():
    # two ReLU neurons in d = 2, mean-field scaling (f = (1/2) sum_i a_i relu(w_i . x))
    theta = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -2.0]])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    y = np.array([1.0, -1.0, -1.0])
    f = twolayer.predict(theta, X, NetworkConfig(m=2, d=2))
    np.testing.assert_allclose(f, [1.0, -1.0, 1.0])
    out = margins(f, y, theta, 0.5)
    assert out["min_margin"] == -1.0
    assert out["train_error"] == pytest.approx(1 / 3)
    assert out["normalized_margin"] == pytest.approx(-1.0 / (0.5 * 10.0))


@pytest.mark.parametrize("c", [0.3, 2.0, 7.0])
def test_normalized_margin_is_invariant_to_rescaling_a_two_homogeneous_network(rng, c):
    theta = rng.standard_normal((20, 4))
    X, y = rng.standard_normal((15, 3)), np.sign(rng.standard_normal(15))
    net = NetworkConfig(m=20, d=3)
    scale = mf.output_scale(20, "mean_field")
    base = margins(twolayer.predict(theta, X, net), y, theta, scale)
    scaled = margins(twolayer.predict(c * theta, X, net), y, c * theta, scale)
    assert scaled["normalized_margin"] == pytest.approx(base["normalized_margin"], rel=1e-12)
    assert scaled["min_margin"] == pytest.approx(c * c * base["min_margin"], rel=1e-12)
    assert scaled["train_error"] == base["train_error"]


def test_logistic_risk_gradient_matches_finite_differences(rng):
    theta, X = rng.standard_normal((6, 5)), rng.standard_normal((9, 3))
    X = np.hstack([X, np.ones((9, 1))])
    y = np.sign(rng.standard_normal(9))
    net = NetworkConfig(m=6, d=4, activation="relu")
    grad, h = twolayer.risk_gradient(theta, X, y, net, "logistic"), 1e-6
    numeric = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        e = np.zeros_like(theta)
        e[idx] = h
        numeric[idx] = (twolayer.risk(theta + e, X, y, net, "logistic")
                        - twolayer.risk(theta - e, X, y, net, "logistic")) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_margins_are_recorded_along_a_logistic_run():
    cfg = mf.Config(network={"m": 50, "d": 3}, data={"kind": "random_labels", "n": 20, "n_test": 10},
                    flow={"loss": "logistic", "dt": 0.1, "t_end": 30.0},
                    record={"n_records": 6, "diagnostics": ["margins"]})
    res = mf.simulate(cfg)
    obs = res.observables
    assert obs["train_error"][0] > 0.2
    assert obs["train_error"][-1] < obs["train_error"][0]
    data = mf.run_data(cfg)
    final = margins(twolayer.predict(res.theta, data.X, cfg.network), data.y, res.theta,
                    mf.output_scale(50, "mean_field"))
    assert obs["normalized_margin"][-1] == pytest.approx(final["normalized_margin"], rel=1e-10)
    assert np.isfinite(obs["test_error"]).all()
