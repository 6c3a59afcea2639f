"""One stepper: every path takes the steps of ``integrators.py``; each method has its order."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.engine import drifts
from meanfield.engine.problem import build
from meanfield.errors import ConfigError
from meanfield.model import energy, integrators, population, twolayer

from .conftest import fitted_slope

PATHS = {   # the same smooth flow (tanh, both layers trained) on each engine path
    "fused": {"flow.engine": "fused"},
    "blas": {"flow.engine": "blas"},
    "population": {"data.kind": "population", "network.activation": "erf", "data.teacher_activation": "erf"},
}


def smooth(path, **changes):
    cfg = mf.Config(seed=2, network={"m": 30, "d": 5, "activation": "tanh"},
                    data={"n": 40, "teacher_activation": "tanh", "teacher_m0": 2},
                    flow={"dt": 0.1, "t_end": 0.1}, record={"n_records": 2})
    return cfg.updated({**PATHS[path], **changes})


def drift_twin(cfg, data):
    """The NumPy drift of the run's flow: twolayer.velocity, or the population drift in NumPy."""
    if cfg.data.kind == "population":
        mask = twolayer.train_mask(cfg.network.train, cfg.network.d)
        return lambda at: (population.population_velocity(at, data.teacher, cfg.network, cfg.flow,
                                                          cfg.data.teacher_activation, compiled=False)
                           + energy.drift(at, cfg.flow, mask))
    return lambda at: twolayer.velocity(at, data.X, data.y, cfg.network, cfg.flow)


def test_the_tableaus_are_consistent_and_explicit():
    for method in integrators.INTEGRATORS.values():
        a, b = method.tableau
        np.testing.assert_allclose(b.sum(), 1.0, rtol=1e-15)
        np.testing.assert_array_equal(np.triu(a), 0.0)            # explicit: stage i uses stages j < i


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", integrators.FIXED_STEP)
def test_one_step_of_every_path_equals_the_numpy_twin(path, method):
    """With a potential and an interaction on, so that the energy terms go through every path."""
    cfg = smooth(path, **{"flow.integrator": method, "flow.lam": 0.05, "flow.potential.kind": "double_well",
                          "flow.potential.depth": 0.3, "flow.interaction.kind": "gaussian",
                          "flow.interaction.strength": 0.4})
    res = mf.simulate(cfg)
    expected = integrators.step(res.theta0, drift_twin(cfg, mf.run_data(cfg)), cfg.flow.dt, method)
    np.testing.assert_allclose(res.theta, expected, rtol=1e-11, atol=1e-13)
    if path != "population":
        data = mf.run_data(cfg)
        np.testing.assert_allclose(twolayer.step(res.theta0, data.X, data.y, cfg.network, cfg.flow), expected,
                                   rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["euler", "heun"])
def test_a_noisy_step_of_every_path_equals_the_twin_with_its_kick(path, method, rng):
    """Euler–Maruyama and stochastic Heun: the kick sqrt(2 T dt) mask xi enters the predictor and the update."""
    cfg = smooth(path, **{"flow.integrator": method, "flow.temperature": 0.3, "network.train": "hidden",
                          "flow.interaction.kind": "quadratic"})
    data = mf.run_data(cfg)
    theta0 = rng.standard_normal((30, 6))
    problem = build(cfg, data, theta0)
    noise, scale = rng.standard_normal((1,) + theta0.shape), np.array([np.sqrt(2 * 0.3 * cfg.flow.dt)])
    theta = theta0.copy()
    drifts.strategy(problem, len(problem.y)).advance(theta, problem.X, problem.y, problem.f0,
                                                     np.arange(len(problem.y))[None], noise, scale, 1)
    kick = scale[0] * problem.mask * noise[0]
    np.testing.assert_allclose(theta, integrators.step(theta0, drift_twin(cfg, data), cfg.flow.dt, method, kick),
                               rtol=1e-11, atol=1e-13)
    np.testing.assert_array_equal(theta[:, -1], theta0[:, -1])          # the frozen output layer gets no kick


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", integrators.FIXED_STEP)
def test_each_method_has_its_order_on_a_smooth_flow(path, method):
    """Global error at t = 1.6 against RK4 at dt / 8 of the finest step: fitted slopes 1, 2, 4."""
    t_end, dts = 1.6, [0.2, 0.1, 0.05, 0.025]
    reference = mf.simulate(smooth(path, **{"flow.integrator": "rk4", "flow.dt": dts[-1] / 8,
                                            "flow.t_end": t_end})).theta
    errors = [np.max(np.abs(mf.simulate(smooth(path, **{"flow.integrator": method, "flow.dt": dt,
                                                         "flow.t_end": t_end})).theta - reference)) for dt in dts]
    assert errors[-1] > 1e3 * np.finfo(float).eps * np.max(np.abs(reference))    # above round-off
    order = integrators.INTEGRATORS[method].order
    assert fitted_slope(dts, errors) == pytest.approx(order, abs=0.2)


def test_rk4_refuses_noise_and_minibatches_before_any_work():
    for changes, parameter in (({"flow.temperature": 0.1}, "flow.temperature"),
                               ({"flow.batch_size": 5}, "flow.batch_size")):
        with pytest.raises(ConfigError, match=parameter) as info:
            mf.Config(flow={"integrator": "rk4", **{k.split(".")[1]: v for k, v in changes.items()}})
        assert "rk4" in str(info.value)


EMBEDDED = [m for name, m in integrators.INTEGRATORS.items() if m.adaptive and name == m.name]


def _order_conditions(a, b):
    """The elementary weights of the rooted trees up to order 5, minus their 1 / gamma (zero when
    the tableau (a, weights b) satisfies them): {order: [residuals]}."""
    c = a.sum(axis=1)
    Ac, Ac2, Ac3, AAc = a @ c, a @ c ** 2, a @ c ** 3, a @ (a @ c)
    return {1: [b.sum() - 1],
            2: [b @ c - 1 / 2],
            3: [b @ c ** 2 - 1 / 3, b @ Ac - 1 / 6],
            4: [b @ c ** 3 - 1 / 4, b @ (c * Ac) - 1 / 8, b @ Ac2 - 1 / 12, b @ AAc - 1 / 24],
            5: [b @ c ** 4 - 1 / 5, b @ (c ** 2 * Ac) - 1 / 10, b @ (c * Ac2) - 1 / 15, b @ (c * AAc) - 1 / 30,
                b @ Ac ** 2 - 1 / 20, b @ Ac3 - 1 / 20, b @ (a @ (c * Ac)) - 1 / 40, b @ (a @ Ac2) - 1 / 60,
                b @ (a @ AAc) - 1 / 120]}


@pytest.mark.parametrize("method", EMBEDDED, ids=lambda m: m.name)
def test_the_embedded_pairs_satisfy_their_order_conditions_and_not_one_more(method):
    """The solution to its order, the embedded one to its own and not beyond (so that their
    difference estimates the error); first same as last; the stored stability bound within the
    method's real stability interval |R(-x)| <= 1, R(z) = 1 + z b^T (I - z a)^-1 1."""
    a, b = method.tableau
    embedded = np.array(method.embedded)
    for weights, order in ((b, method.order), (embedded, method.embedded_order)):
        conditions = _order_conditions(a, weights)
        for k in range(1, order + 1):
            np.testing.assert_allclose(conditions[k], 0.0, atol=1e-13, err_msg=f"{method.name} order {k}")
    assert max(abs(r) for r in _order_conditions(a, embedded)[method.embedded_order + 1]) > 1e-6
    assert method.fsal
    s = len(b)
    R = lambda z: 1 + z * b @ np.linalg.solve(np.eye(s) - z * a, np.ones(s))
    grid = np.linspace(0.0, 4.0, 40001)
    interval = grid[np.argmax([abs(R(-x)) > 1 + 1e-12 for x in grid])]
    assert 0.95 * interval <= method.stability <= interval


@pytest.mark.parametrize("method", EMBEDDED, ids=lambda m: m.name)
def test_each_embedded_pair_and_its_embedded_solution_have_their_orders(method):
    """Fixed steps of the NumPy twin on y' = y (1 - y), y(0) = 0.1 (exact: the logistic curve) to
    t = 2: global errors fitted over five step sizes fall like dt^order (measured 5.12, 2.97, 5.15
    for dopri5, bs3, tsit5), and with the embedded weights, on finer steps (the next order's term
    still shows at coarse ones), like dt^embedded_order (4.00, 2.09, 4.00)."""
    exact = 1 / (1 + 9 * np.exp(-2.0))
    drift = lambda y: y * (1 - y)
    hat = integrators.Integrator("hat", method.a, method.embedded, method.embedded_order, False)
    for name, order, steps in ((method.name, method.order, np.array([16, 23, 32, 45, 64])),
                               ("hat", method.embedded_order, np.array([64, 90, 128, 181, 256]))):
        errors = []
        for n in steps:
            y = np.array([0.1])
            for _ in range(n):
                y = integrators.step(y, drift, 2.0 / n, name, methods={**integrators.INTEGRATORS, "hat": hat})
            errors.append(abs(y[0] - exact))
        assert fitted_slope(2.0 / steps, errors) == pytest.approx(order, abs=0.2), name


@pytest.mark.parametrize("method", ["euler", "heun", "rk4"])
@pytest.mark.parametrize("p", [1, 3, 101])
def test_the_stage_loop_without_kicks_updates_theta_as_one_flat_row_with_the_same_bits(method, p, monkeypatch):
    """``drifts.integrate`` hands theta (m, p) to the update as one row (1, m p), so that its loop
    is vectorised whatever p is: the same bits as the update on (m, p), after three steps of a
    nonlinear drift."""
    from meanfield import _kernels
    a, b = integrators.INTEGRATORS[method].tableau
    stages, m = len(b), 257
    theta0 = np.random.default_rng(p).standard_normal((m, p))

    def drift(at, s, out):
        np.multiply(np.sin(at), -1.3 - s, out=out)

    def run():
        theta = theta0.copy()
        buffers = {"K": np.empty((stages, m, p)), "point": np.empty((m, p) if stages > 1 else (0, 0))}
        drifts.integrate(theta, (a, b), 0.05, buffers, np.ones(p), drifts.NONE3, drifts.NONE1, 3, drift)
        return theta
    flat, update, shapes = run(), _kernels.update, []

    def by_rows(theta, K, *rest):                 # the update on (m, p), as before
        shapes.append(theta.shape)
        update(theta.reshape(m, p), K.reshape(stages, m, p), *rest)
    monkeypatch.setattr(_kernels, "update", by_rows)
    np.testing.assert_array_equal(flat, run())
    assert shapes == [(1, m * p)] * 3
    assert not np.array_equal(flat, theta0)                      # it moved
