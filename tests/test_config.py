"""Configuration: valid files load, every invalid input gets its specific, named error."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.config import Config

BAD_VALUES = [
    ({"network": {"m": 0}}, "network.m", "integer >= 1"),
    ({"network": {"m": 2.5}}, "network.m", "integer"),
    ({"network": {"m": True}}, "network.m", "integer"),
    ({"network": {"d": 0}}, "network.d", "integer >= 1"),
    ({"network": {"d": 1, "bias": True}}, "network.d", ">= 2 when network.bias"),
    ({"network": {"activation": "rleu"}}, "network.activation", "did you mean 'relu'"),
    ({"network": {"scaling": "ntk"}}, "network.scaling", "'mean_field', 'lazy'"),
    ({"network": {"alpha": 0.0}}, "network.alpha", "> 0"),
    ({"network": {"alpha": float("nan")}}, "network.alpha", "finite"),
    ({"network": {"alpha": float("inf")}}, "network.alpha", "finite"),
    ({"network": {"alpha": "big"}}, "network.alpha", "real number"),
    ({"network": {"train": "all"}}, "network.train", "'both', 'hidden', 'output'"),
    ({"network": {"centered": 1}}, "network.centered", "true or false"),
    ({"init": {"w_law": "uniform"}}, "init.w_law", "'gaussian', 'sphere'"),
    ({"init": {"a_law": "ones"}}, "init.a_law", "'rademacher'"),
    ({"init": {"tau": -1.0}}, "init.tau", ">= 0"),
    ({"init": {"symmetric": True}, "network": {"m": 3}}, "network.m", "even"),
    ({"data": {"kind": "mnist"}}, "data.kind", "'teacher'"),
    ({"data": {"n": 0}}, "data.n", "integer >= 1"),
    ({"data": {"n_test": -1}}, "data.n_test", "integer >= 0"),
    ({"data": {"label_noise": -0.1}}, "data.label_noise", ">= 0"),
    ({"data": {"test_fraction": 1.0}}, "data.test_fraction", "[0, 1)"),
    ({"data": {"test_fraction": 0.2}}, "data.test_fraction", "data.kind = 'arrays'"),
    ({"flow": {"loss": "hinge"}}, "flow.loss", "'squared', 'logistic'"),
    ({"flow": {"dt": 0.0}}, "flow.dt", "> 0"),
    ({"flow": {"dt": -0.1}}, "flow.dt", "> 0"),
    ({"flow": {"dt": 0.1, "t_end": 0.01}}, "flow.t_end", ">= flow.dt"),
    ({"flow": {"lam": -1.0}}, "flow.lam", ">= 0"),
    ({"flow": {"temperature": -0.5}}, "flow.temperature", ">= 0"),
    ({"flow": {"temperature": float("nan")}}, "flow.temperature", "finite"),
    ({"flow": {"batch_size": -2}}, "flow.batch_size", ">= 0"),
    ({"flow": {"online": True}}, "flow.batch_size", ">= 1 when flow.online"),
    ({"flow": {"online": True, "batch_size": 4}, "data": {"kind": "random_labels"}}, "flow.online", "teacher"),
    ({"flow": {"integrator": "rk5"}}, "flow.integrator", "'euler', 'heun', 'rk4'"),
    ({"flow": {"threads": -1}}, "flow.threads", ">= 0"),
    ({"record": {"n_records": 0}}, "record.n_records", ">= 1"),
    ({"flow": {"integrator": "adaptive", "dt": 0.1, "t_end": 40.0, "dt_floor": 100.0}}, "flow.dt_floor",
     "below the horizon flow.t_end = 40"),
    ({"flow": {"integrator": "adaptive", "dt": 0.1, "t_end": 40.0, "dt_floor": 2.0},
      "record": {"n_records": 41, "spacing": "linear"}}, "flow.dt_floor", "the first record's time, 1"),
    ({"record": {"spacing": "log"}}, "record.spacing", "'geometric', 'linear'"),
    ({"record": {"divergence_factor": 0.5}}, "record.divergence_factor", "> 1"),
    ({"seed": -1}, "seed", ">= 0"),
    ({"seed": "abc"}, "seed", "integer"),
]


@pytest.mark.parametrize("values,parameter,allowed", BAD_VALUES)
def test_every_invalid_value_names_field_value_and_allowed(values, parameter, allowed):
    with pytest.raises(mf.ConfigError) as info:
        Config.from_dict(values)
    assert info.value.parameter == parameter
    assert parameter in str(info.value)
    assert allowed in str(info.value)


@pytest.mark.parametrize("values,key,suggestion", [
    ({"network": {"activaton": "relu"}}, "network.activaton", "network.activation"),
    ({"flow": {"temprature": 0.1}}, "flow.temprature", "flow.temperature"),
    ({"netwrk": {}}, "netwrk", "network"),
    ({"data": {"zzz": 1}}, "data.zzz", None),
])
def test_unknown_keys_suggest_the_closest_valid_key(values, key, suggestion):
    with pytest.raises(mf.ConfigError) as info:
        Config.from_dict(values)
    assert info.value.parameter == key
    if suggestion:
        assert f"did you mean '{suggestion}'" in str(info.value)


def test_toml_round_trip_and_example_config(tmp_path):
    cfg = Config(seed=7, network={"m": 12, "activation": "tanh", "alpha": 2.5},
                 flow={"dt": 0.03, "t_end": 0.6, "temperature": 0.1})
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert Config.from_toml(path) == cfg
    example = Config.from_toml(__file__.rsplit("/tests/", 1)[0] + "/scenarios/configs/teacher_student.toml")
    assert example.network.m > 1


def test_toml_errors_show_the_line_and_missing_files_are_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("seed = 1\n[network]\nm = = 3\n")
    with pytest.raises(mf.ConfigError, match="line 3"):
        Config.from_toml(path)
    with pytest.raises(mf.ConfigError, match="does not exist"):
        Config.from_toml(tmp_path / "missing.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(mf.ConfigError, match="cannot be read"):
        Config.from_toml(tmp_path / "binary.toml")


def test_updated_changes_dotted_keys_and_validates():
    cfg = Config().updated({"network.m": 7, "seed": 3})
    assert (cfg.network.m, cfg.seed) == (7, 3)
    with pytest.raises(mf.ConfigError, match="did you mean 'flow'"):
        cfg.updated({"flw.dt": 0.1})
    with pytest.raises(mf.ConfigError, match="network.m"):
        cfg.updated({"network.m": -1})


def test_configs_are_frozen():
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.network.m = 3


BAD_ARRAYS = [
    ((np.ones((5, 3)), np.ones(4)), "y.shape"),
    ((np.ones((5, 2)), np.ones(5)), "X.shape"),
    ((np.ones(5), np.ones(5)), "X.shape"),
    ((np.ones((0, 3)), np.ones(0)), "X.shape"),
    ((np.array([[1.0, np.nan, 0.0]]), np.ones(1)), "X[0, 1]"),
    ((np.ones((2, 3)), np.array([1.0, np.inf])), "y[1]"),
    ((np.array([["a", "b", "c"]]), np.ones(1)), "X.dtype"),
    ((np.ones((2, 3)), np.array(["x", "y"])), "y.dtype"),
    ((np.ones((2, 3)),), "data"),
    (42, "data"),
]


@pytest.mark.parametrize("arrays,parameter", BAD_ARRAYS)
def test_bad_arrays_are_refused_before_any_work(arrays, parameter):
    cfg = Config(network={"m": 4, "d": 3})
    with pytest.raises(mf.DataError) as info:
        mf.simulate(cfg, data=arrays)
    assert info.value.parameter == parameter


def test_user_arrays_with_bias_get_the_constant_column_and_a_test_split(rng):
    X, y = rng.standard_normal((40, 2)), rng.standard_normal(40)
    cfg = Config(network={"m": 10, "d": 3, "bias": True}, data={"kind": "arrays", "test_fraction": 0.25},
                 flow={"dt": 0.1, "t_end": 1.0})
    res = mf.simulate(cfg, data=(X, y))
    assert (res.stats["n_train"], res.stats["n_test"]) == (30, 10)
    assert np.isfinite(res.observables["test_risk"]).all()
    with pytest.raises(mf.DataError, match="columns"):
        mf.simulate(cfg, data=(np.ones((5, 3)), np.ones(5)))


def test_front_door_refusals(rng):
    cfg = Config(network={"m": 4, "d": 2}, data={"n": 10})
    with pytest.raises(mf.ConfigError, match="flow.batch_size"):
        mf.simulate(cfg.updated({"flow.batch_size": 11}))
    with pytest.raises(mf.ConfigError, match="flow.threads"):
        mf.simulate(cfg.updated({"flow.threads": 10_000}))
    with pytest.raises(mf.DataError, match="theta0"):
        mf.simulate(cfg, theta0=np.ones((4, 2)))
    with pytest.raises(mf.DataError, match="theta0"):
        mf.simulate(cfg, theta0=np.full((4, 3), np.nan))
    with pytest.raises(mf.ConfigError, match="GiB"):
        mf.simulate(cfg.updated({"network.m": 10**8, "network.d": 1000}))
    with pytest.raises(mf.ConfigError, match="Config"):
        mf.simulate({"network": {"m": 3}})
    with pytest.raises(mf.DataError, match="simulate"):
        mf.simulate(cfg.updated({"data.kind": "arrays"}))


def test_a_user_given_teacher_labels_the_data_and_is_checked():
    rows = [[1.0, 0.0, 0.0, 2.0], [0.0, 0.6, 0.8, -1.0]]
    cfg = mf.Config(network={"m": 6, "d": 3, "activation": "tanh"},
                    data={"teacher_m0": 2, "teacher_weights": rows, "teacher_activation": "tanh", "n": 9})
    data = mf.run_data(cfg)
    np.testing.assert_array_equal(data.teacher, rows)
    np.testing.assert_allclose(data.y, 2.0 * np.tanh(data.X[:, 0]) - np.tanh(0.6 * data.X[:, 1] + 0.8 * data.X[:, 2]),
                               rtol=1e-14)
    population = cfg.updated({"data.kind": "population"})
    np.testing.assert_array_equal(mf.run_data(population).teacher, rows)
    for changes, parameter in (({"data.teacher_m0": 3}, "data.teacher_m0"), ({"network.d": 4}, "data.teacher_weights"),
                               ({"data.kind": "random_labels"}, "data.kind"),
                               ({"data.teacher_weights": [[1.0, 2.0, 3.0, 4.0], [1.0]]}, "data.teacher_weights")):
        with pytest.raises(mf.ConfigError) as info:
            cfg.updated(changes)
        assert info.value.parameter == parameter


def test_diagnostics_are_validated_from_their_registry():
    from meanfield.model.diagnostics import DIAGNOSTICS

    with pytest.raises(mf.ConfigError, match="did you mean 'lambda_min'") as info:
        mf.Config(record={"diagnostics": ["lambda_mn"]})
    assert info.value.allowed == "one of " + ", ".join(repr(name) for name in DIAGNOSTICS)
    for diagnostic in DIAGNOSTICS.values():
        population = {"data": {"kind": "population"}, "record": {"diagnostics": [diagnostic.name]}}
        if diagnostic.samples:
            with pytest.raises(mf.ConfigError, match="sample-based"):
                mf.Config.from_dict(population)
        else:
            assert mf.Config.from_dict(population).record.diagnostics == (diagnostic.name,)
