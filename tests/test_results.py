"""Saved results load back equal; damaged files are refused clearly; no pickle anywhere."""
import json

import numpy as np
import pytest

import meanfield as mf
from meanfield.store import files


@pytest.fixture(scope="module")
def result():
    cfg = mf.Config(network={"m": 8, "d": 2}, data={"n": 10, "n_test": 5}, flow={"dt": 0.1, "t_end": 1.0},
                    record={"n_records": 5})
    return mf.simulate(cfg)


def test_save_then_load_returns_an_equal_result(result, tmp_path):
    loaded = mf.Result.load(result.save(tmp_path / "run"))
    assert loaded.config == result.config
    assert loaded.status == result.status
    assert loaded.stats == result.stats
    for name in ("t", "snapshots", "theta", "theta0"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(result, name))
    assert loaded.observables.keys() == result.observables.keys()
    for name, values in result.observables.items():
        np.testing.assert_array_equal(loaded.observables[name], values)
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_saving_again_replaces_atomically_and_writes_the_observables_table(result, tmp_path):
    folder = result.save(tmp_path / "run")
    result.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "config.toml", "manifest.json", "observables.csv"]
    table = np.loadtxt(folder / "observables.csv", delimiter=",", skiprows=1)
    header = (folder / "observables.csv").read_text().splitlines()[0].split(",")
    assert header == ["t", *result.observables]
    np.testing.assert_array_equal(table[:, 0], result.t)
    np.testing.assert_array_equal(table[:, header.index("train_risk")], result.observables["train_risk"])


def edit_json(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def forge(path, change):
    """Edit a sealed document and seal it again, as a forger would: the semantic checks must catch it."""
    document = json.loads(path.read_text())
    change(document)
    files.write_sealed(path, document)


def rewrite_theta(folder, theta_change):
    arrays = dict(np.load(folder / "arrays.npz"))
    theta_change(arrays["theta"])
    with open(folder / "arrays.npz", "wb") as handle:
        np.savez(handle, **arrays)


def set_nan(theta):
    theta[0, 0] = np.nan


def scale(theta):
    theta *= 1.0 + 1e-15


TAMPERING = {
    "status edited": (lambda f: edit_json(f / "manifest.json", lambda d: d.update(status="diverged")), "changed after"),
    "m edited": (lambda f: edit_json(f / "manifest.json", lambda d: d["config"]["network"].update(m=7)),
                 "changed after"),
    "done edited": (lambda f: edit_json(f / "manifest.json", lambda d: d["stats"].update(steps=3)), "changed after"),
    "theta rewritten": (lambda f: rewrite_theta(f, scale), "'theta'.*changed after"),
    "NaN in theta": (lambda f: rewrite_theta(f, set_nan), "'theta'.*changed after"),
    "field missing": (lambda f: forge(f / "manifest.json", lambda d: d.pop("stats")), "lacks the field 'stats'"),
    "horizon cut": (lambda f: forge(f / "manifest.json", lambda d: d["config"]["flow"].update(t_end=2.0)),
                    "does not match its SHA-256"),
    "status forged": (lambda f: forge(f / "manifest.json", lambda d: d.update(status="finished")), "status 'finished'"),
    "seal removed": (lambda f: edit_json(f / "manifest.json", lambda d: d.pop("sha256")), "no sha256 seal"),
    "format": (lambda f: forge(f / "manifest.json", lambda d: d.update(format_version=99)), "format_version 99"),
    "shape": (lambda f: forge(f / "manifest.json", lambda d: d["arrays"]["theta"].update(shape=[3, 3])), "'theta'"),
    "truncated": (lambda f: (f / "arrays.npz").write_bytes((f / "arrays.npz").read_bytes()[:200]),
                  "corrupted or truncated"),
    "garbage": (lambda f: (f / "manifest.json").write_text("{not json"), "unreadable"),
    "no manifest": (lambda f: (f / "manifest.json").unlink(), "no manifest.json"),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_an_edited_or_damaged_result_is_refused_naming_the_file(result, tmp_path, case):
    folder = result.save(tmp_path / "run")
    damage, match = TAMPERING[case]
    damage(folder)
    with pytest.raises(mf.CorruptedResultError, match=match) as info:
        mf.Result.load(folder)
    assert str(folder) in str(info.value)


def test_a_forged_completed_result_that_stops_early_is_refused(result, tmp_path):
    folder = result.save(tmp_path / "run")

    def cut(document):
        document["config"]["flow"]["t_end"] = 2.0
        document["config_sha256"] = files.json_sha256(document["config"])

    forge(folder / "manifest.json", cut)
    with pytest.raises(mf.CorruptedResultError, match="records end at t = 1"):
        mf.Result.load(folder)


def test_saving_onto_a_file_is_an_output_error(result, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(mf.OutputError, match="it is a file"):
        result.save(tmp_path / "file")


def test_pickled_arrays_are_refused(result, tmp_path):
    folder = result.save(tmp_path / "run")
    arrays = dict(np.load(folder / "arrays.npz"))
    arrays["theta"] = np.array([object()], dtype=object)
    with open(folder / "arrays.npz", "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(mf.CorruptedResultError):
        mf.Result.load(folder)


def test_divergence_stops_names_the_time_and_keeps_the_partial_result():
    cfg = mf.Config(network={"m": 20, "d": 3, "activation": "quadratic"}, data={"n": 20},
                    init={"tau": 3.0}, flow={"dt": 5.0, "t_end": 500.0}, record={"n_records": 30})
    with pytest.raises(mf.DivergenceError, match=r"diverged at t = .*smaller flow.dt") as info:
        mf.simulate(cfg)
    partial = info.value.result
    assert partial.status == "diverged"
    assert partial.t[-1] < 500.0
    assert len(partial.t) == len(partial.observables["train_risk"]) == len(partial.snapshots)
    quiet = mf.simulate(cfg, throw=False)
    assert quiet.status == "diverged"
    assert quiet.message == str(info.value)


def test_a_result_carries_the_data_and_teacher_it_used(result, tmp_path):
    data = mf.run_data(result.config)
    for name in ("X", "y", "X_test", "y_test", "teacher"):
        np.testing.assert_array_equal(getattr(result.data, name), getattr(data, name))
    np.testing.assert_array_equal(result.teacher, data.teacher)
    loaded = mf.Result.load(result.save(tmp_path / "run"))
    for name in ("X", "y", "X_test", "y_test", "teacher"):
        np.testing.assert_array_equal(getattr(loaded.data, name), getattr(data, name))
    cfg = result.config.updated({"network.bias": True, "network.d": 3, "data.kind": "arrays",
                                 "data.test_fraction": 0.2})
    X, y = np.random.default_rng(0).standard_normal((10, 2)), np.arange(10.0)
    own = mf.simulate(cfg, data=(X, y))
    assert own.teacher is None
    assert own.data.X.shape == (8, 3)                        # the constant bias column appended
    np.testing.assert_array_equal(own.data.X[:, 2], 1.0)
    np.testing.assert_array_equal(np.sort(np.concatenate([own.data.y, own.data.y_test])), y)


# --- a result that behaves like a Python object -------------------------------------------------

def test_repr_is_a_short_summary_and_results_compare_by_value(result, tmp_path):
    text = repr(result)
    assert len(text) < 600, text
    assert text.startswith("Result(status='completed', m=8, n=10, d=2, scaling='mean_field', t=0..1 (5 records)")
    assert f"train_risk={result.observables['train_risk'][-1]:.4g}" in text
    loaded = mf.Result.load(result.save(tmp_path / "run"))
    assert loaded == result                                   # stats (timings) aside
    other = mf.simulate(result.config.updated({"seed": 1}))
    assert other != result
    assert (result == "not a result") is False
    with pytest.raises(TypeError):
        hash(result)


@pytest.mark.parametrize("settings", [
    {},
    {"network.centered": True, "network.bias": True},
    {"network.linearized": True, "network.scaling": "lazy"},
    {"network.depth": 3, "network.m": 16},
], ids=["plain", "centered-bias", "linearized", "deep"])
def test_predict_gives_the_trained_networks_outputs(settings):
    """The risk of Result.predict on the training inputs is the run's last recorded training risk
    (the predictor the run trained, whatever its variant); a bias column is appended as for data."""
    from meanfield.model import twolayer
    cfg = mf.Config(seed=3, network={"m": 12, "d": 3}, data={"n": 15}, flow={"dt": 0.1, "t_end": 2.0},
                    record={"n_records": 3}).updated(settings)
    res = mf.simulate(cfg)
    X = res.data.X[:, :-1] if cfg.network.bias else res.data.X
    f = res.predict(X)
    assert f.shape == (15,)
    risk = np.mean(twolayer.loss(cfg.flow.loss, f, res.data.y))
    np.testing.assert_allclose(risk, res.observables["train_risk"][-1], rtol=1e-12)
    with pytest.raises(mf.DataError, match="X.shape"):
        res.predict(np.ones((4, 7)))


def test_weighted_particles_predict_with_their_weights():
    from meanfield.model import twolayer
    cfg = mf.Config(seed=1, network={"m": 6, "d": 2}, data={"n": 10}, flow={"dt": 0.1, "t_end": 1.0})
    weights = np.arange(1.0, 7.0) / 21.0
    res = mf.simulate(cfg, weights=weights)
    risk = np.mean(twolayer.loss(cfg.flow.loss, res.predict(res.data.X), res.data.y))
    np.testing.assert_allclose(risk, res.observables["train_risk"][-1], rtol=1e-12)


def test_to_pandas_is_the_observables_by_time(result):
    pandas = pytest.importorskip("pandas")
    frame = result.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == list(result.observables)
    np.testing.assert_array_equal(frame.index.to_numpy(), result.t)
    np.testing.assert_array_equal(frame["train_risk"].to_numpy(), result.observables["train_risk"])


def test_a_run_on_arrays_records_its_sample_count_and_the_folder_has_its_config(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 2)), rng.standard_normal(200)
    cfg = mf.Config(network={"m": 5, "d": 2}, data={"kind": "arrays", "test_fraction": 0.25},
                    flow={"dt": 0.1, "t_end": 0.5})
    res = mf.simulate(cfg, data=(X, y))
    assert res.config.data.n == 150 == len(res.data.y)
    folder = res.save(tmp_path / "run")
    assert mf.Config.from_toml(folder / "config.toml") == res.config
