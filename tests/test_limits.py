"""Wide reference runs are coupled through their first particles; distances over time equal
direct computations."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.analysis.distances import w2
from meanfield.model import twolayer
from meanfield.theory.limits import compare, reference_run


def config(m, **changes):
    cfg = mf.Config(seed=3, network={"m": m, "d": 2, "activation": "tanh"},
                    data={"n": 30, "n_test": 40, "teacher_activation": "tanh"},
                    flow={"dt": 0.05, "t_end": 2.0}, record={"n_records": 4, "spacing": "linear"})
    return cfg.updated(changes)


def test_reference_run_shares_the_first_particles_and_the_data():
    small, wide = mf.simulate(config(10)), reference_run(config(10), 40)
    np.testing.assert_array_equal(wide.theta0[:10], small.theta0)
    sym_small = mf.simulate(config(10, **{"init.symmetric": True}))
    sym_wide = reference_run(config(10, **{"init.symmetric": True}), 40)
    np.testing.assert_array_equal(sym_wide.theta0[:10], sym_small.theta0)
    with pytest.raises(ValueError, match="M = 5"):
        reference_run(config(10), 5)


def test_compare_equals_direct_computations():
    cfg = config(12)
    res, ref = mf.simulate(cfg), reference_run(cfg, 48)
    X = mf.run_data(cfg).X_test
    found = compare(res, ref, X, method="exact")
    assert found["method"] == "exact"
    for k, (th, th_ref) in enumerate(zip(res.snapshots, ref.snapshots)):
        assert found["coupled_distance"][k] == pytest.approx(np.sqrt(np.mean(np.sum((th - th_ref[:12]) ** 2, 1))),
                                                             rel=1e-12)
        gap = twolayer.predict(th, X, res.config.network) - twolayer.predict(th_ref, X, ref.config.network)
        assert found["predictor_distance"][k] == pytest.approx(np.sqrt(np.mean(gap ** 2)), rel=1e-12)
        assert found["w2"][k] == pytest.approx(w2(th, th_ref, method="exact").value, rel=1e-12)
    assert found["coupled_distance"][0] == 0.0
    last = compare(res, ref, X, w2_at="last")
    assert np.isnan(last["w2"][:-1]).all()
    assert last["w2"][-1] == pytest.approx(found["w2"][-1])
    with pytest.raises(ValueError, match="record times"):
        compare(res, mf.simulate(cfg.updated({"flow.dt": 0.1})), X)
