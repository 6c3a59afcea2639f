"""Deep networks (``model/deep.py``, ``engine/deep_net.py``): central differences and PyTorch autograd for every
architecture and parameterisation, the time convention, the two-layer network they extend, the
infinite-width kernels they converge to, and deep runs through ``simulate``."""
import itertools

import numpy as np
import pytest

import meanfield as mf
from meanfield.engine import deep_net, threads
from meanfield.model import deep, ntk, twolayer
from meanfield.model.parameterizations import ARCHITECTURES, PARAMETERIZATIONS

from . import naive
from .conftest import fitted_slope, resumed_after_interrupt

KINDS = list(itertools.product(ARCHITECTURES, PARAMETERIZATIONS))


def small(depth, act="tanh", architecture="mlp", parameterization="ntk", m=7, d=3, res_scale=0.7):
    return deep.DeepNet(d, m, depth, act, architecture, parameterization, deep.c_sigma_of(act), res_scale)


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("architecture,parameterization", KINDS)
def test_jacobians_and_velocity_equal_central_differences(depth, act, architecture, parameterization, rng):
    net = small(depth, act, architecture, parameterization)
    params = net.init(rng)
    X, y = rng.standard_normal((5, net.d)), rng.standard_normal(5)
    jac = deep.jacobians(net, params, X)
    vel = deep.velocity(net, params, X, y, lam=0.1)
    for l, W in enumerate(params):
        def with_layer(Wl):
            changed = list(params)
            changed[l] = Wl
            return changed
        for j in range(len(y)):
            np.testing.assert_allclose(jac[l][j],
                                       naive.central_gradient(lambda Wl: deep.predict(net, with_layer(Wl), X)[j], W),
                                       rtol=1e-6, atol=1e-8)
        risk = lambda Wl: 0.5 * np.mean((deep.predict(net, with_layer(Wl), X) - y) ** 2)
        np.testing.assert_allclose(vel[l], -naive.central_gradient(risk, W) - 0.1 * W, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("architecture,parameterization", KINDS)
def test_the_kernels_are_the_jacobians_gram_matrices_and_set_the_predictions_velocity(architecture,
                                                                                      parameterization, rng):
    """H = sum_l J_l J_l^T, and along the flow du/dt = -(1/n) H loss'(u) (logistic loss here): the
    two-layer engine's time convention, checked by a central difference along the velocity."""
    net = small(3, "tanh", architecture, parameterization, m=6)
    params = net.init(rng)
    X, y = rng.standard_normal((4, 3)), np.array([1.0, -1.0, -1.0, 1.0])
    for J, K in zip(deep.jacobians(net, params, X), deep.layer_kernels(net, params, X)):
        flat = J.reshape(len(X), -1)
        np.testing.assert_allclose(K, flat @ flat.T, rtol=1e-13, atol=1e-15)
    v = deep.velocity(net, params, X, y, "logistic")
    eps = 1e-5
    du = (deep.predict(net, [w + eps * dw for w, dw in zip(params, v)], X)
          - deep.predict(net, [w - eps * dw for w, dw in zip(params, v)], X)) / (2 * eps)
    f = deep.predict(net, params, X)
    expected = -deep.tangent_kernel(net, params, X) @ twolayer.loss_derivative("logistic", f, y) / len(y)
    np.testing.assert_allclose(du, expected, rtol=1e-7, atol=1e-10)


def _torch_gradient(net, params, X, y, loss):
    """R and dR/dw_l by PyTorch autograd on the same network, written from the module's formulas."""
    torch = pytest.importorskip("torch")
    ws = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in params]
    Xt, yt = torch.tensor(X), torch.tensor(y)
    act = {"relu": torch.relu, "tanh": torch.tanh, "softplus": torch.nn.functional.softplus}[net.activation]
    mult = [s[0] for s in net.scales()]
    u = act(mult[0] * (Xt @ ws[0].T))
    for l in range(1, net.depth):
        branch = act(mult[l] * (u @ ws[l].T))
        u = u + net.res_scale * branch if net.resnet else branch
    f = mult[-1] * (u @ ws[-1])
    risk = ((f - yt) ** 2 / 2).mean() if loss == "squared" else torch.nn.functional.softplus(-yt * f).mean()
    risk.backward()
    return [w.grad.numpy() for w in ws]


@pytest.mark.parametrize("architecture,parameterization", KINDS)
@pytest.mark.parametrize("act,loss", [("relu", "squared"), ("tanh", "logistic"), ("softplus", "squared")])
def test_the_velocity_is_minus_the_pytorch_autograd_gradient_minus_the_decay(architecture, parameterization, act,
                                                                              loss, rng):
    """deep.velocity, as a list and written into a flat buffer, equals -dR/dw_l - lam w_l with
    dR/dw_l by PyTorch's autograd."""
    net = small(4, act, architecture, parameterization, m=40, d=5, res_scale=0.5)
    params = net.init(rng)
    X, y = rng.standard_normal((30, 5)), np.sign(rng.standard_normal(30))
    lam = 0.3
    ours = deep.velocity(net, params, X, y, loss, lam)
    flat = deep.velocity(net, params, X, y, loss, lam, out=np.full(net.size(), np.nan))
    np.testing.assert_array_equal(flat, net.flatten(ours))
    for mine, theirs, w in zip(ours, _torch_gradient(net, params, X, y, loss), params):
        expected = -theirs - lam * w
        np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-14 * np.max(np.abs(expected)))


def test_c_sigma_is_one_over_the_second_moment():
    """Du et al.'s c_sigma = 1 / E[sigma(g)^2]: 2 for ReLU, 1 for the identity, 1/3 for z^2."""
    for name, expected in (("relu", 2.0), ("linear", 1.0), ("quadratic", 1 / 3)):
        np.testing.assert_allclose(deep.c_sigma_of(name), expected, rtol=1e-12)


def test_parameterisations_differ_only_where_the_theory_says_at_initialisation():
    """From the same normal draws: ntk and standard compute the same function; mup's read-out is
    m^-1/2 smaller (f_mup = f_ntk / sqrt(m)); the effective weights of the other layers agree."""
    nets = {p: small(3, "relu", "mlp", p, m=64, d=4) for p in PARAMETERIZATIONS}
    X = np.random.default_rng(1).standard_normal((9, 4))
    f = {p: deep.predict(net, net.init(np.random.default_rng(5)), X) for p, net in nets.items()}
    np.testing.assert_allclose(f["standard"], f["ntk"], rtol=1e-12)
    np.testing.assert_allclose(f["mup"], f["ntk"] / np.sqrt(64), rtol=1e-12)


def test_depth_one_with_c_sigma_one_is_the_lazy_two_layer_network(rng):
    """Same predictor, same velocity field, same tangent kernel as the two-layer engine's twin."""
    d, m, n = 4, 50, 12
    net = deep.DeepNet(d, m, 1, "tanh", "mlp", "ntk", 1.0)
    params = net.init(rng)
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    theta = np.column_stack([params[0], params[1]])
    two = mf.Config(network={"m": m, "d": d, "activation": "tanh", "scaling": "lazy"}).network
    np.testing.assert_allclose(deep.predict(net, params, X), twolayer.predict(theta, X, two), rtol=1e-13)
    v = deep.velocity(net, params, X, y)
    np.testing.assert_allclose(np.column_stack([v[0], v[1]]), twolayer.velocity(theta, X, y, two, mf.Config().flow),
                               rtol=1e-12)
    np.testing.assert_allclose(deep.tangent_kernel(net, params, X), ntk.tangent_kernel(theta, X, two), rtol=1e-12)


def _unit_inputs(seed):
    X = np.random.default_rng(seed).standard_normal((6, 4))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("depth", [2, 3])
def test_the_empirical_kernel_converges_to_the_deep_relu_recursion_like_m_to_minus_half(depth):
    """H(0) -> Theta^(L) and the read-out's Gram matrix -> Sigma^(L) (ntk.deep_relu_kernels,
    c_sigma = 2): relative Frobenius error over 6 seeds, fitted slope near -1/2."""
    X = _unit_inputs(0)
    sigma, theta = ntk.deep_relu_kernels(X, depth)
    widths, errors = [64, 256, 1024], []
    for m in widths:
        net, errs = deep.DeepNet(4, m, depth), []
        for seed in range(6):
            layers = deep.layer_kernels(net, net.init(np.random.default_rng(seed)), X)
            errs.append(np.linalg.norm(sum(layers) - theta) / np.linalg.norm(theta))
            np.testing.assert_allclose(np.linalg.norm(layers[-1] - sigma) / np.linalg.norm(sigma), 0.0,
                                       atol=8 / np.sqrt(m))
        errors.append(np.mean(errs))
    assert fitted_slope(widths, errors) == pytest.approx(-0.5, abs=0.15)
    assert errors[-1] < 0.15


@pytest.mark.parametrize("depth,res_scale", [(2, 1.0), (4, 0.5)])
def test_the_residual_kernels_meet_their_recursion_like_m_to_minus_half(depth, res_scale):
    """ntk.deep_resnet_relu_kernels (derived with the ReLU features' mean, which the residual
    stream carries: without it the NNGP is off by 57 % at depth 3): the empirical NNGP and NTK
    approach it like m^-1/2 over 6 seeds; at depth 1 it is the fully connected recursion."""
    X = _unit_inputs(1)
    np.testing.assert_allclose(ntk.deep_resnet_relu_kernels(X, 1, res_scale), ntk.deep_relu_kernels(X, 1),
                               rtol=1e-14, atol=1e-15)
    K, theta = ntk.deep_resnet_relu_kernels(X, depth, res_scale)
    widths, nngp, tangent = [64, 256, 1024], [], []
    for m in widths:
        net = deep.DeepNet(4, m, depth, architecture="resnet", res_scale=res_scale)
        layers = [deep.layer_kernels(net, net.init(np.random.default_rng(seed)), X) for seed in range(6)]
        nngp.append(np.mean([np.linalg.norm(L[-1] - K) / np.linalg.norm(K) for L in layers]))
        tangent.append(np.mean([np.linalg.norm(sum(L) - theta) / np.linalg.norm(theta) for L in layers]))
    for errors in (nngp, tangent):
        assert fitted_slope(widths, errors) == pytest.approx(-0.5, abs=0.15)
        assert errors[-1] < 0.1


def _deep_cfg(**network):
    return mf.Config(seed=2, network={"m": 48, "d": 4, "depth": 3, **network}, data={"n": 30, "n_test": 10},
                     flow={"dt": 0.05, "t_end": 1.0}, record={"n_records": 4,
                                                              "diagnostics": ["lambda_min", "kernel_change"]})


@pytest.mark.parametrize("architecture,parameterization", KINDS)
def test_a_deep_run_takes_the_integrators_steps_of_the_velocity_and_records_what_it_says(architecture,
                                                                                         parameterization):
    """simulate for depth >= 2: Heun steps of deep.velocity from the parameterisation's initial
    law; the records are the functions of the unflattened parameters they name."""
    cfg = _deep_cfg(architecture=architecture, parameterization=parameterization).updated({"flow.integrator": "heun"})
    result = mf.simulate(cfg)
    net, data = deep_net.network(cfg), result.data
    params = net.init(np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[1]))     # simulate's rng_init
    np.testing.assert_array_equal(net.flatten(params), result.theta0)
    theta = result.theta0.copy()
    drift = lambda v: net.flatten(deep.velocity(net, net.unflatten(v), data.X, data.y))
    for _ in range(cfg.flow.n_steps):
        k1 = drift(theta)
        k2 = drift(theta + cfg.flow.dt * k1)
        theta = theta + cfg.flow.dt * (0.5 * k1 + 0.5 * k2)
    np.testing.assert_allclose(result.theta, theta, rtol=1e-12, atol=1e-14)
    final = net.unflatten(result.theta)
    f = deep.predict(net, final, data.X)
    np.testing.assert_allclose(result.observables["train_risk"][-1], np.mean((f - data.y) ** 2) / 2, rtol=1e-12)
    H, H0 = deep.tangent_kernel(net, final, data.X), deep.tangent_kernel(net, net.unflatten(result.theta0), data.X)
    np.testing.assert_allclose(result.observables["lambda_min"][-1], np.linalg.eigvalsh(H)[0], rtol=1e-10)
    np.testing.assert_allclose(result.observables["kernel_change"][-1], np.linalg.norm(H - H0) / np.linalg.norm(H0),
                               rtol=1e-10)
    for l, (w, w0) in enumerate(zip(final, net.unflatten(result.theta0)), start=1):
        np.testing.assert_allclose(result.observables[f"weight_change_l{l}"][-1],
                                   np.linalg.norm(w - w0) / np.linalg.norm(w0), rtol=1e-12)
    assert result.observables["train_risk"][-1] < result.observables["train_risk"][0]


@pytest.mark.parametrize("rows", [5, 2 * deep.ROW_BLOCK + 3])
def test_gram_is_the_symmetric_product_with_the_same_bits_on_two_threads(rows):
    A = np.random.default_rng(rows).standard_normal((rows, 300))
    with deep.parallel(1):
        G = deep.gram(A)
    np.testing.assert_allclose(G, A @ A.T.copy(), rtol=0, atol=1e-15 * A.shape[1] * np.max(A * A))   # round-off
    np.testing.assert_array_equal(G, G.T)
    with deep.parallel(2):
        np.testing.assert_array_equal(deep.gram(A), G)


def test_deep_runs_are_bit_identical_on_any_thread_count_and_round_trip_through_a_folder(tmp_path):
    cfg = _deep_cfg(m=300).updated({"flow.batch_size": 8, "flow.loss": "logistic", "data.kind": "random_labels"})
    one, two = (mf.simulate(cfg.updated({"flow.threads": k})) for k in (1, 2))
    assert two.stats["threads"] == min(2, threads.usable_cpus())
    np.testing.assert_array_equal(one.theta, two.theta)
    online = mf.simulate(_deep_cfg(m=300).updated({"flow.batch_size": 8, "flow.online": True}))
    assert online.observables["train_risk"][-1] < online.observables["train_risk"][0]
    loaded = mf.Result.load(one.save(tmp_path / "deep"))
    np.testing.assert_array_equal(loaded.theta, one.theta)
    np.testing.assert_array_equal(loaded.observables["feature_update_l3"], one.observables["feature_update_l3"])


@pytest.mark.parametrize("changes,name", [({"network.scaling": "lazy"}, "network.scaling"),
                                          ({"network.alpha": 4.0}, "network.alpha"),
                                          ({"network.train": "output"}, "network.train"),
                                          ({"flow.temperature": 0.1}, "flow.temperature"),
                                          ({"record.diagnostics": ["masses"]}, "record.diagnostics"),
                                          ({"network.parameterization": "mu_p"}, "network.parameterization")])
def test_what_deep_runs_do_not_take_is_refused_by_name(changes, name):
    with pytest.raises(mf.ConfigError, match=name.replace(".", r"\.")):
        _deep_cfg().updated(changes)


def test_deep_runs_refuse_given_particles_and_weights():
    cfg = _deep_cfg()
    for kwargs, name in (({"theta0": np.zeros((48, 5))}, "theta0"), ({"weights": np.full(48, 1 / 48)}, "weights")):
        with pytest.raises(mf.ConfigError, match=name):
            mf.simulate(cfg, **kwargs)


def test_an_interrupted_deep_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path, monkeypatch):
    """Minibatch SGD (the batch generator's state is saved too): interrupted at the 4th record,
    resumed from the checkpoint, it ends exactly where the uninterrupted run does."""
    cfg = _deep_cfg(architecture="resnet").updated({"flow.batch_size": 8, "record.checkpoint_seconds": 0.0})
    whole = mf.simulate(cfg)
    resumed = resumed_after_interrupt(monkeypatch, 3, lambda **kw: mf.simulate(cfg, **kw), tmp_path)
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    np.testing.assert_array_equal(resumed.t, whole.t)
    for name, values in whole.observables.items():
        np.testing.assert_array_equal(resumed.observables[name], values, err_msg=name)
    with pytest.raises(mf.ConfigError, match="config"):
        mf.simulate(cfg.updated({"flow.lam": 0.1}), checkpoint=tmp_path)


def test_a_diverging_deep_run_stops_with_the_step_named():
    """Standard parameterisation with a large step: the risk passes record.divergence_factor x
    max(1, R(0)), the two-layer runs' limit."""
    cfg = _deep_cfg(parameterization="standard", m=256).updated({"flow.dt": 2.0, "flow.t_end": 20.0})
    result = mf.simulate(cfg, throw=False)
    assert result.status == "diverged"
    risk = result.observables["train_risk"]
    assert risk[-1] > cfg.record.divergence_factor * max(1.0, risk[0])
    with pytest.raises(mf.DivergenceError, match="flow.dt"):
        mf.simulate(cfg)


FAULTS_PER_STEP = """
import resource, sys
import numpy as np
import meanfield as mf
from meanfield.engine import deep_net, memory
from meanfield.model import deep
if sys.argv[1] == "without":
    memory.hold_heap_top = lambda nbytes: False
net = deep.DeepNet(10, 1024, 3, "relu", "mlp", "ntk", 2.0, 1.0)
rng = np.random.default_rng(0)
theta, X, y = net.flatten(net.init(rng)), rng.standard_normal((256, 10)), rng.standard_normal(256)
flow, buffers = mf.Config().flow, deep_net.stage_buffers(net, "euler")
for _ in range(3):
    deep_net.advance(net, flow, theta, [(X, y)], buffers)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    deep_net.advance(net, flow, theta, [(X, y)], buffers)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def test_a_deep_step_keeps_its_activations_memory_instead_of_faulting_it_back_in():
    """(n, m, d, L) = (256, 1024, 10, 3): the step's (n, m) arrays come back from the heap's top
    (``memory.hold_heap_top``) rather than from the system: a few page faults per step, against
    thousands (22 MB) with glibc's default trimming. Each case in a fresh process (the pad is
    process-wide)."""
    import ctypes
    import subprocess
    import sys
    if not hasattr(ctypes.CDLL(None), "mallopt"):
        pytest.skip("not glibc: no mallopt")
    faults = {case: float(subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, case], capture_output=True,
                                         text=True, check=True).stdout) for case in ("with", "without")}
    assert faults["without"] > 2000, faults                  # the oracle can fail: glibc trims by default
    assert faults["with"] < 50, faults
