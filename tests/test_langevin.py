"""Mean-field Langevin: schedules, the exact Ornstein–Uhlenbeck laws under them, the entropy
estimator on Gaussians, the free energy's decrease and the Gibbs fixed point."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.config import FlowConfig
from meanfield.model import langevin


def test_schedules_are_as_specified():
    t = np.array([0.0, 0.5, 1.0, 2.0, 10.0])
    np.testing.assert_allclose(langevin.temperature(FlowConfig(temperature=2.0), t), 2.0)
    np.testing.assert_allclose(langevin.temperature(FlowConfig(temperature=2.0, schedule="log"), t),
                               2.0 / np.log(np.e + t))
    np.testing.assert_allclose(langevin.temperature(FlowConfig(temperature=2.0, schedule="power",
                                                               schedule_power=0.5), t),
                               2.0 / np.sqrt(1 + t))
    flow = FlowConfig(schedule="piecewise", schedule_times=[1.0, 2.0], schedule_values=[3.0, 1.0, 0.0])
    np.testing.assert_allclose(langevin.temperature(flow, t), [3.0, 3.0, 1.0, 0.0, 0.0])
    assert flow.max_temperature == 3.0


@pytest.mark.parametrize("schedule", [{"schedule": "power", "schedule_power": 1.0},
                                      {"schedule": "piecewise", "schedule_times": [2.0],
                                       "schedule_values": [1.0, 0.1]}])
def test_ornstein_uhlenbeck_variance_follows_the_exact_recursion_under_a_schedule(schedule):
    lam, dt, T0 = 1.0, 0.1, 1.0
    cfg = mf.Config(seed=8, network={"m": 20000, "d": 1}, data={"kind": "none"},
                    flow={"dt": dt, "t_end": 6.0, "lam": lam, "temperature": T0, **schedule},
                    record={"n_records": 7, "spacing": "linear"})
    res = mf.simulate(cfg)
    q = 1 - lam * dt
    second = np.mean(res.theta0 ** 2, axis=0)
    noise = 0.0
    steps = np.round(res.t / dt).astype(int)
    for k in range(steps[-1] + 1):
        if k in steps:
            idx = int(np.nonzero(steps == k)[0][0])
            expected = q ** (2 * k) * second + noise
            se = np.sqrt(2 / 20000) * max(noise, 1e-3)
            np.testing.assert_allclose(np.mean(res.snapshots[idx] ** 2, axis=0), expected, atol=4 * se + 1e-12)
        noise = q * q * noise + 2 * float(langevin.temperature(cfg.flow, k * dt)) * dt
    np.testing.assert_array_equal(mf.simulate(cfg).theta, res.theta)          # same seed, same noise


@pytest.mark.parametrize("p", [1, 2, 5])
def test_entropy_estimator_on_gaussians(rng, p):
    A = rng.standard_normal((p, p)) + 2 * np.eye(p)
    cov = A @ A.T
    exact = 0.5 * np.log((2 * np.pi * np.e) ** p * np.linalg.det(cov))
    estimates = [langevin.entropy(rng.multivariate_normal(np.zeros(p), cov, 2000)) for _ in range(10)]
    bias, spread = np.mean(estimates) - exact, np.std(estimates)
    assert abs(bias) < 0.05 * p + 3 * spread / np.sqrt(10)       # the documented bias bound
    assert spread < 0.05 * p
    with pytest.raises(ValueError, match="distinct"):
        langevin.entropy(np.zeros((10, 2)))


def test_free_energy_does_not_increase_in_a_convex_case():
    # training the output layer only is convex in the measure of a: F decreases along the flow
    cfg = mf.Config(seed=2, network={"m": 3000, "d": 3, "activation": "tanh", "train": "output"},
                    data={"n": 40, "teacher_activation": "tanh"},
                    flow={"dt": 0.05, "t_end": 10.0, "lam": 0.3, "temperature": 0.02},
                    record={"n_records": 12, "spacing": "linear", "diagnostics": ["free_energy"]})
    F = mf.simulate(cfg).observables["free_energy"]
    assert np.all(np.diff(F) < 0.01)           # beyond the entropy estimator's noise (~0.01 here)
    assert F[-1] < F[0] - 0.1


def test_gibbs_gap_vanishes_at_the_ornstein_uhlenbeck_equilibrium():
    # no data: p_mu = N(0, T / lam), reached by the OU flow; at t = 0 (variance 1 != 0.25) the gap is large
    cfg = mf.Config(seed=1, network={"m": 4000, "d": 1}, data={"kind": "none"},
                    flow={"dt": 0.05, "t_end": 12.0, "lam": 2.0, "temperature": 0.5},
                    record={"n_records": 5, "spacing": "linear", "diagnostics": ["gibbs", "free_energy"]})
    res = mf.simulate(cfg)
    gap = res.observables["gibbs_gap"]
    T, lam = 0.5, 2.0
    exact0 = T * np.sum(0.5 * (np.var(res.theta0, axis=0) * lam / T - 1 - np.log(np.var(res.theta0, axis=0) * lam / T)))
    assert gap[0] == pytest.approx(exact0, abs=0.03)              # Gaussian KL in closed form
    assert abs(gap[-1]) < 0.02


def test_gibbs_diagnostic_needs_decay_temperature_and_both_layers():
    for changes, name in (({"flow": {"temperature": 0.1}}, "flow.lam"), ({"flow": {"lam": 0.1}}, "flow.temperature"),
                          ({"flow": {"lam": 0.1, "temperature": 0.1}, "network": {"train": "hidden"}},
                           "network.train")):
        with pytest.raises(mf.ConfigError, match=name):
            mf.Config.from_dict({**changes, "record": {"diagnostics": ["gibbs"]}})


def test_gibbs_samples_follow_the_exact_gibbs_law_without_data():
    # no data: p_mu = N(0, T / lam) in every coordinate; sampled by importance resampling
    from meanfield.engine.problem import build
    from meanfield.model.data import Dataset
    cfg = mf.Config(network={"m": 50, "d": 2}, data={"kind": "none"}, flow={"lam": 2.0, "temperature": 0.5})
    theta = np.random.default_rng(0).standard_normal((50, 3))
    empty = np.zeros((0, 2))
    problem = build(cfg, Dataset(empty, np.zeros(0), empty, np.zeros(0)), theta)
    samples = langevin.gibbs_samples(problem, theta, np.zeros(0), 0.5, size=20_000, seed=1)
    assert samples.shape == (20_000, 3)
    np.testing.assert_allclose(samples.var(axis=0), 0.25, rtol=0.05)
    np.testing.assert_allclose(samples.mean(axis=0), 0.0, atol=0.02)
