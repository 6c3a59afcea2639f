"""Weighted particles: f = alpha sum_i omega_i a_i sigma(w_i . x), each particle moving with the
same velocity field. Oracles: repeated particles, zero-weight test particles, the NumPy twin."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.errors import ConfigError, DataError
from meanfield.model import energy, integrators, population, twolayer

PATHS = {
    "fused": {"flow.engine": "fused"},
    "blas": {"flow.engine": "blas"},
    "population": {"data.kind": "population", "network.activation": "relu", "data.teacher_activation": "relu"},
}
TERMS = {"flow.lam": 0.05, "flow.interaction.kind": "gaussian", "flow.interaction.strength": 0.3,
         "flow.potential.kind": "quartic", "flow.potential.strength": 0.1}


def config(path, m, **changes):
    cfg = mf.Config(seed=1, network={"m": m, "d": 5, "activation": "tanh", "alpha": 1.5},
                    data={"n": 60, "teacher_activation": "tanh", "teacher_m0": 2},
                    flow={"dt": 0.05, "t_end": 1.0}, record={"n_records": 3, "spacing": "linear"})
    return cfg.updated({**PATHS[path], **TERMS, **changes})


@pytest.mark.parametrize("path", PATHS)
def test_weights_with_integer_multiplicities_equal_the_run_with_repeated_particles(path, rng):
    """omega_i = k_i / M on m particles is the unweighted run of M particles, particle i repeated k_i times."""
    counts = np.array([1, 3, 2, 1, 4, 1, 2, 2])
    theta0 = rng.standard_normal((len(counts), 6))
    M = int(counts.sum())
    weighted = mf.simulate(config(path, len(counts)), theta0=theta0, weights=counts / M)
    repeated = mf.simulate(config(path, M), theta0=np.repeat(theta0, counts, axis=0))
    first = np.cumsum(counts) - counts                          # each particle's first copy
    np.testing.assert_allclose(weighted.snapshots, repeated.snapshots[:, first], rtol=1e-11, atol=1e-13)
    for name in ("train_risk", "test_risk", "objective", "predictor_norm", "displacement_mean"):
        np.testing.assert_allclose(weighted.observables[name], repeated.observables[name], rtol=1e-11, atol=1e-14,
                                   err_msg=name)
    np.testing.assert_array_equal(weighted.weights, counts / M)


@pytest.mark.parametrize("path", PATHS)
def test_a_zero_weight_particle_is_a_test_particle(path, rng):
    """It moves in the field of the others and changes nothing: the others' run is the run without it."""
    theta0 = rng.standard_normal((6, 6))
    omega = np.array([0.1, 0.2, 0.3, 0.0, 0.25, 0.15])
    with_probe = mf.simulate(config(path, 6), theta0=theta0, weights=omega)
    keep = omega > 0
    without = mf.simulate(config(path, 5), theta0=theta0[keep], weights=omega[keep])
    np.testing.assert_allclose(with_probe.snapshots[:, keep], without.snapshots, rtol=1e-11, atol=1e-13)
    assert np.max(np.abs(with_probe.theta[~keep] - theta0[~keep])) > 1e-3            # it moved


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_one_weighted_step_equals_the_numpy_twin(path, method, rng):
    cfg = config(path, 12, **{"flow.integrator": method, "flow.t_end": 0.05, "record.n_records": 2})
    theta0, omega = rng.standard_normal((12, 6)), rng.dirichlet(np.ones(12))
    res = mf.simulate(cfg, theta0=theta0, weights=omega)
    data = mf.run_data(cfg)
    if path == "population":
        mask = twolayer.train_mask("both", 5)
        drift = lambda at: (population.population_velocity(at, data.teacher, cfg.network, cfg.flow, "relu",
                                                           weights=omega) + energy.drift(at, cfg.flow, mask, omega))
        expected = integrators.step(theta0, drift, cfg.flow.dt, method)
    else:
        expected = twolayer.step(theta0, data.X, data.y, cfg.network, cfg.flow, weights=omega)
    np.testing.assert_allclose(res.theta, expected, rtol=1e-11, atol=1e-13)


def test_the_weighted_predictor_is_the_weighted_sum(rng):
    cfg = config("fused", 7)
    theta, omega = rng.standard_normal((7, 6)), rng.dirichlet(np.ones(7))
    X = rng.standard_normal((9, 5))
    expected = 1.5 * np.tanh(X @ theta[:, :5].T) @ (omega * theta[:, 5])
    np.testing.assert_allclose(twolayer.predict(theta, X, cfg.network, weights=omega), expected, rtol=1e-14)
    from meanfield.engine.problem import build
    problem = build(cfg, mf.run_data(cfg), theta, omega)
    np.testing.assert_allclose(problem.predict(theta, X, np.zeros(9)), expected, rtol=1e-13)


def test_weights_are_saved_loaded_and_part_of_a_checkpoint(tmp_path, rng):
    cfg = config("fused", 8)
    theta0, omega = rng.standard_normal((8, 6)), rng.dirichlet(np.ones(8))
    res = mf.simulate(cfg, theta0=theta0, weights=omega, checkpoint=tmp_path / "ck")
    loaded = mf.Result.load(res.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.weights, omega)
    again = mf.simulate(cfg, theta0=theta0, weights=omega, checkpoint=tmp_path / "ck")    # resumes: done
    np.testing.assert_array_equal(again.theta, res.theta)
    with pytest.raises(mf.MeanfieldError, match="data"):
        mf.simulate(cfg, theta0=theta0, weights=np.roll(omega, 1), checkpoint=tmp_path / "ck")


@pytest.mark.parametrize("weights,changes,parameter", [
    (np.full(4, 0.25), {}, "weights"),                                   # m = 5: wrong shape
    (np.array([0.5, 0.5, 0.2, -0.2, 0.0]), {}, "weights"),
    (np.array([0.5, 0.5, np.nan, 0.0, 0.0]), {}, "weights"),
    (np.full(5, 0.2 + 1e-11), {}, "weights"),
    (np.full(5, 0.2), {"network.scaling": "lazy"}, "network.scaling"),
    (np.full(5, 0.2), {"network.linearized": True}, "network.linearized"),
    (np.full(5, 0.2), {"record.diagnostics": ["lambda_min"]}, "record.diagnostics"),
])
def test_bad_weights_are_refused_before_any_work(weights, changes, parameter):
    cfg = config("fused", 5, **changes)
    with pytest.raises((DataError, ConfigError)) as info:
        mf.simulate(cfg, weights=weights)
    assert info.value.parameter == parameter
