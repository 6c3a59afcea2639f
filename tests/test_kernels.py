"""Every compiled kernel equals its NumPy twin in twolayer.py; the twin's gradients equal finite differences."""
import itertools

import numpy as np
import pytest

from meanfield import _kernels
from meanfield.config import ACTIVATIONS, LOSSES, FlowConfig, NetworkConfig
from meanfield.model import activations, energy, integrators, scaling as mf_scaling, twolayer
from meanfield.model.scaling import output_scale, time_factor

M, D, N = 7, 3, 11


@pytest.fixture
def problem(rng):
    theta = rng.standard_normal((M, D + 1))
    X = rng.standard_normal((N, D))
    y = np.where(rng.standard_normal(N) > 0, 1.0, -1.0)
    f0 = 0.1 * rng.standard_normal(N)
    return theta, X, y, f0


def kernel_args(net, flow):
    os_ = output_scale(net.m, net.scaling, net.alpha)
    return (os_, os_ * time_factor(net.m, net.scaling, net.alpha), activations.ACTIVATIONS[net.activation].code,
            net.activation_params, activations.LOSSES[flow.loss].code, flow.lam, twolayer.train_mask(net.train, net.d))


@pytest.mark.parametrize("activation,loss", list(itertools.product(ACTIVATIONS, LOSSES)))
def test_velocity_kernel_equals_numpy_twin(problem, activation, loss):
    theta, X, y, f0 = problem
    rows = np.arange(N)
    for scaling, train, alpha in itertools.product(("mean_field", "lazy"), ("both", "hidden", "output"), (1.0, 2.5)):
        net = NetworkConfig(m=M, d=D, activation=activation, scaling=scaling, alpha=alpha, train=train)
        flow = FlowConfig(loss=loss, lam=0.3)
        expected = twolayer.velocity(theta, X, y, net, flow, f0)
        os_, vs, act, slope, loss_code, lam, mask = kernel_args(net, flow)
        serial = _kernels.velocity(theta, X, y, f0, rows, os_, vs, act, slope, loss_code, lam, mask, parallel=False)
        parallel = _kernels.velocity(theta, X, y, f0, rows, os_, vs, act, slope, loss_code, lam, mask, parallel=True)
        np.testing.assert_allclose(serial, expected, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(parallel, serial, rtol=1e-13, atol=1e-15)
        f = _kernels.predict(theta, X, os_, act, slope)
        np.testing.assert_allclose(f, twolayer.predict(theta, X, net), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(_kernels.predict(theta, X, os_, act, slope, parallel=False), f, rtol=1e-13)


@pytest.mark.parametrize("activation,loss", list(itertools.product(ACTIVATIONS, LOSSES)))
def test_risk_gradient_equals_central_differences(problem, activation, loss):
    theta, X, y, f0 = problem
    net = NetworkConfig(m=M, d=D, activation=activation, scaling="lazy", alpha=1.7)
    grad = twolayer.risk_gradient(theta, X, y, net, loss, f0)
    h = 1e-6
    numeric = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[idx] = h
        numeric[idx] = (twolayer.risk(theta + step, X, y, net, loss, f0)
                        - twolayer.risk(theta - step, X, y, net, loss, f0)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_the_kernels_codes_are_the_registries_and_unknown_codes_raise(problem):
    """Codes are fixed in the registry and written as literals in _kernels (what the Numba cache
    sees); a code no entry has raises instead of computing some other function."""
    assert {a.name: a.code for a in activations.ACTIVATIONS.values()} == _kernels.ACTIVATION_CODES
    assert {loss.name: loss.code for loss in activations.LOSSES.values()} == _kernels.LOSS_CODES
    assert ACTIVATIONS == tuple(activations.ACTIVATIONS)
    assert len({a.code for a in activations.ACTIVATIONS.values()}) == len(ACTIVATIONS)
    theta, X, y, f0 = problem
    net, flow = NetworkConfig(m=M, d=D), FlowConfig()
    args = list(kernel_args(net, flow))
    rows = np.arange(N, dtype=np.int64)
    unknown_activation = max(a.code for a in activations.ACTIVATIONS.values()) + 1       # the first code no entry has
    unknown_loss = max(loss.code for loss in activations.LOSSES.values()) + 1
    for position, code in ((2, unknown_activation), (2, -1), (4, unknown_loss)):
        bad = list(args)
        bad[position] = code
        with pytest.raises(ValueError, match="unknown"):
            _kernels.velocity(theta, X, y, f0, rows, *bad)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        twolayer.activation("swish", X)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        twolayer.loss("hinge", y, y)


def test_activation_derivatives_equal_central_differences():
    z = np.linspace(-3.07, 2.93, 41)        # avoids the kinks at 0 (relu) and 0.5, 1.5 (piecewise_linear)
    h = 1e-6
    for name in ACTIVATIONS:
        numeric = (twolayer.activation(name, z + h) - twolayer.activation(name, z - h)) / (2 * h)
        np.testing.assert_allclose(twolayer.activation_derivative(name, z), numeric, rtol=1e-7, atol=1e-9)


def test_compiled_tanh_is_within_3_ulps_of_numpy_and_keeps_signs_zeros_and_nan():
    """The kernels' own tanh (range reduction and a Taylor polynomial, no libm call) against
    np.tanh over 24 orders of magnitude and at the special values."""
    import numba

    @numba.njit
    def compiled(z, out):
        for i in range(z.size):
            out[i] = _kernels._tanh(z[i])

    rng = np.random.default_rng(3)
    z = np.concatenate([rng.standard_normal(20_000) * 10.0 ** e for e in range(-12, 13, 2)]
                       + [np.array([0.0, -0.0, 18.9, 19.1, 20.0, 40.0, 1e300, np.inf, -np.inf, np.nan])])
    out = np.empty_like(z)
    compiled(z, out)
    exact = np.tanh(z)
    finite = np.isfinite(z)
    ulps = np.abs(out[finite] - exact[finite]) / np.spacing(np.abs(exact[finite]))
    np.testing.assert_array_less(ulps, 3.5)
    np.testing.assert_array_equal(np.signbit(out[finite]), np.signbit(exact[finite]))    # tanh(-0) = -0
    np.testing.assert_array_equal(out[-3:-1], [1.0, -1.0])
    assert np.isnan(out[-1])


def test_velocity_is_minus_time_factor_gradient_minus_decay(problem):
    theta, X, y, f0 = problem
    for scaling in ("mean_field", "lazy"):
        net = NetworkConfig(m=M, d=D, activation="tanh", scaling=scaling, alpha=3.0)
        flow = FlowConfig(lam=0.25)
        expected = (-time_factor(M, scaling, 3.0) * twolayer.risk_gradient(theta, X, y, net, "squared", f0)
                    - 0.25 * theta)
        np.testing.assert_allclose(twolayer.velocity(theta, X, y, net, flow, f0), expected, rtol=1e-12)
    assert time_factor(M, "mean_field", 3.0) == pytest.approx(M / 9.0)
    assert time_factor(M, "lazy", 3.0) == pytest.approx(1 / 9.0)


@pytest.mark.parametrize("heun", [False, True])
def test_advance_equals_numpy_euler_maruyama_with_minibatches(problem, rng, heun):
    theta, X, y, f0 = problem
    net = NetworkConfig(m=M, d=D, activation="softplus", scaling="mean_field", alpha=1.5, train="both")
    flow = FlowConfig(loss="logistic", lam=0.2, dt=0.05)
    k, B = 6, 4
    idx = np.stack([rng.permutation(N)[:B] for _ in range(k)])
    noise = rng.standard_normal((k, M, D + 1))
    scale = np.full(k, np.sqrt(2 * 0.1 * flow.dt))
    os_, vs, act, slope, loss_code, lam, mask = kernel_args(net, flow)
    expected = theta.copy()
    for s in range(k):
        rows = idx[s]
        v = twolayer.velocity(expected, X[rows], y[rows], net, flow, f0[rows])
        if heun:
            pred = expected + flow.dt * v + scale[s] * noise[s]
            v = 0.5 * (v + twolayer.velocity(pred, X[rows], y[rows], net, flow, f0[rows]))
        expected = expected + flow.dt * v + scale[s] * noise[s]
    got = theta.copy()
    a, b = integrators.INTEGRATORS["heun" if heun else "euler"].tableau
    buffers = (np.empty(B), np.empty((len(b),) + theta.shape), np.empty_like(theta),
               np.empty(_kernels.work_size(M, B, D, act)))
    model = (os_, vs, act, slope, _kernels.NO_WEIGHTS, loss_code, lam, mask)
    _kernels.advance(got, theta, X, y, f0, idx, noise, scale, k, model, (a, b, flow.dt),
                     energy.kernel_form(flow, D + 1),
                     False, True, buffers)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tangent_model_kernels_equal_numpy_twin_and_finite_differences(problem, rng, activation):
    theta0, X, y, f0 = problem
    theta = theta0 + 0.3 * rng.standard_normal(theta0.shape)
    rows = np.arange(N)
    for train in ("both", "hidden", "output"):
        net = NetworkConfig(m=M, d=D, activation=activation, scaling="lazy", alpha=2.0, train=train, linearized=True)
        flow = FlowConfig(loss="squared", lam=0.1)
        os_, vs, act, slope, loss_code, lam, mask = kernel_args(net, flow)
        expected = twolayer.velocity(theta, X, y, net, flow, f0, theta0)
        for parallel in (False, True):
            got = _kernels.velocity(theta, X, y, f0, rows, os_, vs, act, slope, loss_code, lam, mask,
                                    theta0=theta0, parallel=parallel)
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(_kernels.predict(theta, X, os_, act, slope, theta0),
                                   twolayer.predict(theta, X, net, theta0=theta0), rtol=1e-10, atol=1e-13)
    # at theta0 the tangent model is the network; its gradient is the network's gradient at theta0
    lin = NetworkConfig(m=M, d=D, activation=activation, linearized=True)
    plain = NetworkConfig(m=M, d=D, activation=activation)
    np.testing.assert_allclose(twolayer.predict(theta0, X, lin, theta0=theta0), twolayer.predict(theta0, X, plain),
                               rtol=1e-12)
    grad = twolayer.risk_gradient(theta, X, y, lin, "logistic", f0, theta0)
    h, numeric = 1e-6, np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[idx] = h
        numeric[idx] = (twolayer.risk(theta + step, X, y, lin, "logistic", f0, theta0)
                        - twolayer.risk(theta - step, X, y, lin, "logistic", f0, theta0)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_learning_rate_helpers_reproduce_plain_gradient_descent(problem):
    theta, X, y, _ = problem
    for scaling, alpha in (("mean_field", 1.0), ("lazy", 2.0), ("mean_field", 0.5)):
        net = NetworkConfig(m=M, d=D, activation="tanh", scaling=scaling, alpha=alpha)
        lr, wd = 0.3, 0.01                    # a paper's step size and weight decay
        dt = mf_scaling.dt_from_learning_rate(lr, M, scaling, alpha)
        lam = wd * mf_scaling.time_factor(M, scaling, alpha)
        assert mf_scaling.learning_rate_from_dt(dt, M, scaling, alpha) == pytest.approx(lr)
        assert mf_scaling.weight_decay_from_lam(lam, M, scaling, alpha) == pytest.approx(wd)
        gd = theta - lr * (twolayer.risk_gradient(theta, X, y, net, "squared") + wd * theta)
        euler = theta + dt * twolayer.velocity(theta, X, y, net, FlowConfig(lam=lam))
        np.testing.assert_allclose(euler, gd, rtol=1e-12)


@pytest.mark.parametrize("activation,loss", list(itertools.product(ACTIVATIONS, LOSSES)))
@pytest.mark.parametrize("chunk", [1024, 4])         # 4: three sample tiles, the last one partial
def test_blas_drift_equals_numpy_twin(problem, activation, loss, chunk, monkeypatch):
    monkeypatch.setattr(_kernels, "CHUNK", chunk)
    import meanfield as mf
    from meanfield.engine import drifts
    from meanfield.engine.problem import build
    from meanfield.model.data import Dataset
    theta, X, y, f0 = problem
    for scaling, train, alpha in itertools.product(("mean_field", "lazy"), ("both", "hidden", "output"), (1.0, 2.5)):
        cfg = mf.Config(network={"m": M, "d": D, "activation": activation, "scaling": scaling, "alpha": alpha,
                                 "train": train}, flow={"loss": loss, "lam": 0.3, "engine": "blas"})
        prob = build(cfg, Dataset(X, y, X[:0], y[:0]), theta)
        prob = type(prob)(**{**prob.__dict__, "f0": f0})
        assert prob.path == "blas"
        out = drifts.blas_drift(prob, theta, X, y, f0, drifts.Blas(prob, N).buffers, np.empty_like(theta))
        np.testing.assert_allclose(out, twolayer.velocity(theta, X, y, cfg.network, cfg.flow, f0), rtol=1e-10,
                                   atol=1e-13)


@pytest.mark.parametrize("changes", [{}, {"flow.integrator": "heun", "flow.temperature": 0.01},
                                     {"flow.batch_size": 16}, {"flow.online": True, "flow.batch_size": 16}])
def test_blas_and_fused_engines_give_the_same_run_and_thread_counts_do_not_matter(changes):
    import meanfield as mf
    cfg = mf.Config(seed=4, network={"m": 300, "d": 12, "activation": "tanh"},
                    data={"n": 200, "teacher_activation": "tanh"}, flow={"dt": 0.05, "t_end": 1.0},
                    record={"n_records": 4}).updated(changes)
    fused = mf.simulate(cfg.updated({"flow.engine": "fused"}))
    blas = mf.simulate(cfg.updated({"flow.engine": "blas"}))
    np.testing.assert_allclose(blas.snapshots, fused.snapshots, rtol=1e-9, atol=1e-12)
    one, two = (mf.simulate(cfg.updated({"flow.engine": "blas", "flow.threads": k})) for k in (1, 2))
    np.testing.assert_array_equal(one.snapshots, blas.snapshots)
    np.testing.assert_array_equal(two.snapshots, blas.snapshots)
    assert mf.Config(network={"m": 300}, data={"n": 200}).updated(changes).flow.engine == "auto"


@pytest.mark.parametrize("n,m,d,path", [(10, 10, 5, "fused"), (200, 1000, 1, "fused"), (200, 1000, 3, "fused"),
                                        (200, 1000, 4, "blas"), (100, 300, 16, "blas"), (60, 400, 64, "blas")])
def test_auto_engine_path_for_each_d_equals_the_numpy_oracle(n, m, d, path):
    """The path "auto" picks for (n, m, d), run by simulate, equals Euler steps of twolayer.velocity."""
    import meanfield as mf
    from meanfield.engine.problem import build
    cfg = mf.Config(seed=1, network={"m": m, "d": d, "activation": "relu"}, data={"n": n, "n_test": 0},
                    flow={"dt": 0.05, "t_end": 0.25}, record={"n_records": 2})
    result = mf.simulate(cfg)
    data = mf.run_data(cfg)
    assert build(cfg, data, result.theta0).path == path
    theta = result.theta0.copy()
    for _ in range(cfg.flow.n_steps):
        theta = theta + cfg.flow.dt * twolayer.velocity(theta, data.X, data.y, cfg.network, cfg.flow)
    np.testing.assert_allclose(result.theta, theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("m,B", [(7, 11), (300, 200), (513, 129)])
def test_small_d_relu_kernel_equals_the_general_kernel_and_the_numpy_twin(rng, d, m, B):
    """_relu_drift_small_d (odd and even m and B, several blocks of neurons and samples, weighted
    particles, a mask, weight decay) against twolayer.velocity and _network_drift; the same bits
    for 1 and 2 threads."""
    theta, X = rng.standard_normal((m, d + 1)), rng.standard_normal((B + 5, d))
    y, f0 = rng.standard_normal(B + 5), 0.1 * rng.standard_normal(B + 5)
    rows = rng.permutation(B + 5)[:B]
    omega = rng.random(m)
    omega /= omega.sum()
    net = NetworkConfig(m=m, d=d, activation="relu", scaling="mean_field", alpha=1.3, train="both")
    flow = FlowConfig(loss="squared", lam=0.05)
    _, vs, act, slope, loss_code, lam, mask = kernel_args(net, flow)
    os_ = net.alpha                               # weighted particles: f = alpha sum_i omega_i a_i relu(w_i . x)
    mask[0] = 0.0
    expected = twolayer.velocity(theta, X[rows], y[rows], net, flow, f0[rows], weights=omega)
    expected[:, 0] = 0.0
    out = {}
    for threads in (1, 2):
        _kernels.set_threads(threads)
        r, vel = np.empty(B), np.empty_like(theta)
        _kernels.small_d_drift(theta, X, y, f0, rows, os_, vs, slope, omega, loss_code, lam, mask,
                               np.full(_kernels.work_size(m, B, d, act), np.nan), r, vel)
        out[threads] = vel
    _kernels.set_threads(0)
    np.testing.assert_array_equal(out[2], out[1])
    np.testing.assert_allclose(out[1], expected, rtol=1e-11, atol=1e-14)
    general = np.empty_like(theta)
    _kernels._network_drift(theta, X, y, f0, rows, os_, vs, act, slope, omega, loss_code, lam, mask,
                            np.empty((d + 1, m)), np.empty(B), general)
    np.testing.assert_allclose(out[1], general, rtol=1e-12, atol=1e-15)


def test_engine_choice_is_validated():
    import meanfield as mf
    with pytest.raises(mf.ConfigError, match="flow.engine"):
        mf.Config(network={"linearized": True}, flow={"engine": "blas"})


def test_blas_tiles_are_the_fewest_and_as_even_as_a_multiple_of_8_allows():
    """``blas_plan``'s tile sizes: as few tiles as the largest size allows, padded by fewer than 8
    rows each (the last tile of (1000, 10000, 100) used to pad 512 x 2 - 1000 = 24 samples: 2.4 %
    more product flops for nothing), never larger than the count."""
    for most in (4, 64, 512, 1024):
        for count in range(1, 3000, 7):
            size = _kernels._even(count, most)
            tiles = -(-count // size)
            assert tiles == -(-count // most), (count, most, size)
            assert size <= min(most, count), (count, most, size)
            assert tiles * size - count < 8 * tiles, (count, most, size)
    assert _kernels.blas_plan(10000, 1000, 100)[:2] == (504, 504)


@pytest.mark.parametrize("chunk", [1024, 64])
def test_blas_path_recomputing_its_tiles_gives_the_same_bits_on_any_thread_count(monkeypatch, chunk):
    """Tiles kept or recomputed in per-thread buffers: identical runs, for 1 and 2 threads."""
    monkeypatch.setattr(_kernels, "CHUNK", chunk)
    import meanfield as mf
    from meanfield.engine import drifts
    from meanfield.engine.problem import build
    cfg = mf.Config(seed=3, network={"m": 300, "d": 6, "activation": "tanh"}, data={"n": 150},
                    flow={"dt": 0.05, "t_end": 0.5, "engine": "blas"}, record={"n_records": 3})
    kept = mf.simulate(cfg)
    monkeypatch.setattr(_kernels, "RECOMPUTE_MIN_ENTRIES", 0)
    assert _kernels.blas_plan(300, 150, 6) == (64, {1024: 150, 64: 56}[chunk], True)   # 150 = 3 x 50, padded to 56
    for threads in (1, 2):
        run = cfg.updated({"flow.threads": threads})
        _kernels.set_threads(threads)
        buffers = drifts.Blas(build(run, mf.make_data(run, np.random.default_rng(0)), kept.theta0), 150).buffers
        assert buffers["Z"].shape[0] == threads < 5                # per-thread buffers, 5 blocks
        np.testing.assert_array_equal(mf.simulate(run).snapshots, kept.snapshots)


def test_a_stored_matrix_that_would_not_fit_is_recomputed_instead_of_refusing_the_run(monkeypatch):
    """With little free memory (simulated), d = 40 (where tiles are normally kept) recomputes its
    tiles: the run is not refused, allocates nothing of size m x B, and gives the same bits."""
    import meanfield as mf
    from meanfield.engine import drifts, memory
    from meanfield.engine.problem import build
    m, n = 300, 600
    cfg = mf.Config(seed=5, network={"m": m, "d": 40, "activation": "tanh"}, data={"n": n},
                    flow={"dt": 0.05, "t_end": 0.3, "engine": "blas"}, record={"n_records": 3})
    assert memory.blas_plan(m, n, 40)[2] is False                          # enough memory: tiles kept
    monkeypatch.setattr(memory, "CHUNK_BYTES", 0)
    kept = mf.simulate(cfg)
    free = int(1.9 * 8 * m * n)
    monkeypatch.setattr(memory, "available_bytes", lambda: free)
    assert 8 * m * n > memory.STORED_SHARE * free                           # the m x B matrix would not fit
    assert memory.blas_plan(m, n, 40)[2] is True
    assert memory.estimated_bytes(cfg) <= free                              # the run is not refused
    problem = build(cfg, mf.make_data(cfg, np.random.default_rng(0)), kept.theta0)
    assert drifts.Blas(problem, n).buffers["Z"].size < m * n
    recomputed = mf.simulate(cfg)
    np.testing.assert_array_equal(recomputed.snapshots, kept.snapshots)
    relu = cfg.updated({"network.activation": "relu"})                     # ReLU: its signs, recomputed too
    assert memory.blas_plan(m, n, 40, relu=True)[2] is True
    problem = build(relu, mf.make_data(relu, np.random.default_rng(0)), kept.theta0)
    assert drifts.Blas(problem, n).buffers["signs"].size == 0
    recomputed = mf.simulate(relu)
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 ** 40)
    assert memory.blas_plan(m, n, 40, relu=True)[2] is False
    assert drifts.Blas(problem, n).buffers["signs"].size >= m * n         # a byte per entry
    np.testing.assert_array_equal(mf.simulate(relu).snapshots, recomputed.snapshots)


def test_blocked_diagnostics_equal_the_whole_matrix_formulas(monkeypatch, rng):
    """The tangent kernel and the pattern-flip fraction, summed over blocks of neurons, equal the
    formulas evaluated on the whole n x m matrix at once."""
    import meanfield as mf
    from meanfield.engine import observables
    from meanfield.model import ntk, twolayer
    net = mf.NetworkConfig(m=50, d=4, activation="tanh")
    theta, theta0 = rng.standard_normal((50, 5)), rng.standard_normal((50, 5))
    X = rng.standard_normal((12, 4))
    whole = ntk.tangent_kernel(theta, X, net)
    flips = observables.pattern_flips(X, theta, theta0)
    monkeypatch.setattr(ntk, "NEURON_BLOCK", 7)
    np.testing.assert_allclose(ntk.tangent_kernel(theta, X, net), whole, rtol=1e-12)
    assert observables.pattern_flips(X, theta, theta0) == flips
    Z, Z0 = X @ theta[:, :4].T, X @ theta0[:, :4].T
    assert flips == np.mean((Z > 0) != (Z0 > 0))
    dZ = twolayer.activation_derivative("tanh", Z) * theta[:, 4]
    S = twolayer.activation("tanh", Z)
    np.testing.assert_allclose(whole, ((X @ X.T) * (dZ @ dZ.T) + S @ S.T) / 50, rtol=1e-12)


BIG_RUN = """
import resource, sys
import meanfield as mf
from meanfield.engine import memory
GiB = 2 ** 30
memory.available_bytes = lambda: 8 * GiB - resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
cfg = mf.Config(network={"m": 1_500_000, "d": 100}, data={"n": 1000}, flow={"dt": 0.05, "t_end": 0.05},
                record={"n_records": 2, "snapshots": False})
assert memory.blas_plan(1_500_000, 1000, 100)[2] is True
res = mf.simulate(cfg)
print(res.status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB, memory.estimated_bytes(cfg) / GiB)
"""


@pytest.mark.slow
def test_a_million_and_a_half_neurons_at_d_100_run_within_8_gib():
    """m = 1.5 million, (n, d) = (1000, 100), on a machine that has 8 GiB free: the m x n matrix
    (12 GB) is not stored but recomputed tile by tile, only the work arrays the run uses are
    allocated, and the whole run (one step, two records: about 6 CPU-minutes) peaks below 8 GiB,
    as estimated before it starts."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", BIG_RUN], capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    status, peak, estimate = proc.stdout.split()
    assert status == "completed"
    assert float(peak) < 8.0
    assert float(estimate) >= 0.8 * float(peak)
