"""The controller runs any system (``engine/system.py``): a fourth system is one class. The example
here is N independent Ornstein–Uhlenbeck particles, d x = -lam x dt + sqrt(2 T) dB, whose
Euler–Maruyama variance obeys an exact recursion and whose noiseless flow is x0 exp(-lam t); it
gets the controller's noise, schedule, adaptive steps, checkpoints and divergence check for free.
Also: the registry of observables agrees with the diagnostics' catalog.
"""
import numpy as np
import pytest

import meanfield as mf
from meanfield.engine import controller
from meanfield.engine.deep_net import DeepView
from meanfield.engine.observables import OBSERVABLES, TwoLayerView
from meanfield.engine.system import System
from meanfield.model.diagnostics import DIAGNOSTICS

from .conftest import resumed_after_interrupt


class OrnsteinUhlenbeck(System):
    """N particles in R, pulled to 0 at rate lam = cfg.flow.lam, with the controller's noise."""

    streams = ("noise",)

    def __init__(self, cfg: mf.Config, N: int = 4000):
        self.cfg, self.noise_shape = cfg, (N, 1)
        self.x0 = np.linspace(-1.0, 1.0, N)[:, None]
        self.first = self.observe(self.initial(), 0.0)

    def initial(self):
        return {"theta": self.x0.copy()}

    def advance(self, state, draws, noise, scale, k):
        x, lam, dt = state["theta"], self.cfg.flow.lam, self.cfg.flow.dt
        for s in range(k):
            x += -lam * dt * x + (scale[s] * noise[s] if len(noise) else 0.0)

    def drift(self, name):
        return lambda x: -self.cfg.flow.lam * x

    def observe(self, state, t):
        return {"train_risk": float(np.mean(state["theta"] ** 2) / 2)}

    def outcome(self, state):
        return {"theta": state["theta"], "theta0": self.x0, "stats": {}}


def ou_config(**flow):
    return mf.Config(seed=4, network={"m": 1, "d": 1}, data={"kind": "none"},
                     flow={"dt": 0.01, "t_end": 2.0, "lam": 1.5, **flow},
                     record={"n_records": 9, "spacing": "linear", "snapshots": False})


def test_a_new_system_gets_the_noise_and_its_variance_follows_the_exact_recursion():
    cfg = ou_config(temperature=0.2)
    result = controller.run(OrnsteinUhlenbeck(cfg))
    lam, dt, T = 1.5, 0.01, 0.2
    variance = np.mean(OrnsteinUhlenbeck(cfg).x0 ** 2)
    for _ in range(cfg.flow.n_steps):
        variance = (1 - lam * dt) ** 2 * variance + 2 * T * dt     # x0 is centred; noise independent
    np.testing.assert_allclose(2 * result.observables["train_risk"][-1], variance, rtol=4 * np.sqrt(2 / 4000))
    assert result.status == "completed"
    np.testing.assert_array_equal(result.t, np.linspace(0.0, 2.0, 9))


def test_a_new_system_takes_error_controlled_steps_to_its_exact_flow():
    result = controller.run(OrnsteinUhlenbeck(ou_config(integrator="tsit5", rtol=1e-9, atol=1e-12)))
    x0 = OrnsteinUhlenbeck(ou_config()).x0
    np.testing.assert_allclose(result.theta, x0 * np.exp(-1.5 * 2.0), rtol=1e-8, atol=1e-12)
    assert result.stats["steps"] < 100


def test_a_new_system_resumes_bit_for_bit_and_diverges_with_the_step_named(tmp_path, monkeypatch):
    cfg = ou_config(temperature=0.2).updated({"record.checkpoint_seconds": 0.0})
    whole = controller.run(OrnsteinUhlenbeck(cfg))
    resumed = resumed_after_interrupt(monkeypatch, 5, lambda **kw: controller.run(OrnsteinUhlenbeck(cfg), **kw),
                                      tmp_path)
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    np.testing.assert_array_equal(resumed.observables["train_risk"], whole.observables["train_risk"])
    with pytest.raises(mf.DivergenceError, match=r"\(step \d+\).*try a smaller flow.dt") as info:
        controller.run(OrnsteinUhlenbeck(ou_config(lam=300.0)))           # 1 - lam dt = -2: unstable steps
    assert info.value.parameter == "flow.dt"


def test_run_refuses_what_is_not_a_system():
    with pytest.raises(mf.ConfigError, match="system = 'Config'"):
        controller.run(ou_config())


def test_the_registry_of_observables_and_the_diagnostics_catalog_agree():
    views = {"two_layer": TwoLayerView, "deep": DeepView}
    registered = {o.name: o for o in OBSERVABLES if o.diagnostic}
    assert set(registered) == set(DIAGNOSTICS)
    for name, diagnostic in DIAGNOSTICS.items():
        has = {system for system, view in views.items() if all(hasattr(view, need) for need in registered[name].needs)}
        assert has == set(diagnostic.systems), name


def test_a_stopping_rule_ends_a_run_at_the_first_record_below_its_threshold(tmp_path):
    """record.stop_below: the run ends at the first record whose risk is at most that fraction of
    R(0), with status "converged"; its records equal the full run's up to there; saved and loaded,
    and the command treats it as finished."""
    cfg = mf.Config(seed=2, network={"m": 50, "d": 3}, data={"n": 20}, flow={"dt": 0.1, "t_end": 100.0},
                    record={"n_records": 100, "spacing": "linear"})
    full = mf.simulate(cfg)
    stopped = mf.simulate(cfg.updated({"record.stop_below": 1e-2}))
    risk = full.observables["train_risk"]
    k = int(np.argmax(risk <= 1e-2 * risk[0]))
    assert stopped.status == "converged"
    assert len(stopped.t) == k + 1
    np.testing.assert_array_equal(stopped.observables["train_risk"], risk[:k + 1])
    np.testing.assert_array_equal(stopped.theta, full.snapshots[k])
    assert mf.Result.load(stopped.save(tmp_path / "saved")).status == "converged"
    with pytest.raises(mf.ConfigError, match="record.stop_below"):
        cfg.updated({"record.stop_below": 1.0})
    from meanfield.tools.cli import main
    config = tmp_path / "c.toml"
    config.write_text(cfg.updated({"record.stop_below": 1e-2}).to_toml())
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["arrays.npz", "config.toml", "manifest.json",
                                                                   "observables.csv"]


def test_one_record_is_the_final_state_only(tmp_path):
    cfg = mf.Config(seed=2, network={"m": 10, "d": 2}, data={"n": 12}, flow={"dt": 0.1, "t_end": 3.0},
                    record={"n_records": 2})
    both = mf.simulate(cfg)
    one = mf.simulate(cfg.updated({"record.n_records": 1}))
    np.testing.assert_array_equal(one.t, [3.0])
    np.testing.assert_array_equal(one.observables["train_risk"], both.observables["train_risk"][-1:])
    np.testing.assert_array_equal(one.snapshots, both.snapshots[-1:])
    np.testing.assert_array_equal(one.theta, both.theta)
    assert mf.Result.load(one.save(tmp_path / "one")) == one


def test_a_run_whose_diagnostics_cost_more_than_its_steps_says_so_before_it_starts():
    """Estimated before any step (prepare): the gibbs diagnostic at m = 1000, n = 100 costs about
    14 times a ReLU run's steps (measured: 4.0 CPU s against 0.29), estimated 7; the cheap
    diagnostics say nothing."""
    import warnings

    from meanfield.engine.controller import prepare
    cfg = mf.Config(seed=0, network={"m": 1000, "d": 2}, data={"n": 100},
                    flow={"dt": 0.05, "t_end": 100.0, "lam": 0.1, "temperature": 0.01},
                    record={"n_records": 25, "diagnostics": ["gibbs"]})
    with pytest.warns(UserWarning, match=r"record.diagnostics = \['gibbs'\] will cost about [5-9] times"):
        prepare(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare(cfg.updated({"record.diagnostics": ["pattern_flips", "margins", "masses"]}))


@pytest.mark.parametrize("at_call", [10, 13], ids=["chunk-ending-on-a-record", "mid-gap"])
def test_a_signal_held_during_a_chunk_stops_with_a_consistent_checkpoint(tmp_path, monkeypatch, at_call):
    """One step per chunk; a signal arrives during the 10th chunk (which ends on the record at step
    10) or the 13th (mid-gap): the run stops, its checkpoint holds every step done and the records up
    to it, and the resumed run equals the uninterrupted one bit for bit."""
    from contextlib import contextmanager

    from meanfield.engine import controller, interrupts
    monkeypatch.setattr(controller, "CHUNK_SECONDS", 1e-9)
    calls = {"n": 0}
    original = interrupts.Interrupts.held

    @contextmanager
    def held(self):
        with original(self):
            yield
            calls["n"] += 1
            if calls["n"] == at_call:
                self.requested = 2
    monkeypatch.setattr(interrupts.Interrupts, "held", held)
    cfg = mf.Config(seed=3, network={"m": 20, "d": 2}, data={"n": 15}, flow={"dt": 0.1, "t_end": 3.0},
                    record={"n_records": 4, "spacing": "linear"})
    with pytest.raises(KeyboardInterrupt):
        mf.simulate(cfg, checkpoint=tmp_path)
    import json

    from meanfield.store import checkpoint
    assert json.loads((tmp_path / checkpoint.STATE).read_text())["done"] == at_call     # every chunk's step kept
    monkeypatch.setattr(interrupts.Interrupts, "held", original)
    resumed = mf.simulate(cfg, checkpoint=tmp_path)
    assert resumed == mf.simulate(cfg)
