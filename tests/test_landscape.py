"""meanfield.landscape: the Hessian, the Newton polish to critical points and their labels, and the
certificate of global optimality from the first variation psi."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.theory import landscape as L

K0 = 3


def safran_shamir(m, t_end=200.0):
    """Safran & Shamir's model: sum_i relu(w_i . x) (lazy scaling, a = sqrt(m) fixed), teacher of
    K0 orthonormal neurons, x ~ N(0, I_K0), exact population risk."""
    return mf.Config(seed=0, network={"m": m, "d": K0, "scaling": "lazy", "train": "hidden"},
                     init={"w_scale": 1 / np.sqrt(K0), "a_law": "constant", "a_scale": float(np.sqrt(m))},
                     data={"kind": "population", "teacher_m0": K0, "teacher_orthonormal": True},
                     flow={"dt": 0.05, "t_end": t_end, "integrator": "adaptive", "rtol": 1e-10},
                     record={"n_records": 2})


def teacher_of(cfg):
    return mf.simulate(cfg.updated({"flow.t_end": 0.05, "flow.integrator": "euler"}))


def random_features(lam, t_end):
    return mf.Config(seed=1, network={"m": 12, "d": 3, "train": "output"}, data={"n": 40},
                     flow={"dt": 0.1, "t_end": t_end, "lam": lam, "integrator": "adaptive", "rtol": 1e-11},
                     record={"n_records": 2})


def test_the_hessian_of_a_quadratic_objective_is_exact_to_its_stated_error():
    """Output-layer training: J is quadratic in a, with Hessian Phi^T Phi / (m^2 n) + lam / m."""
    res = mf.simulate(random_features(0.05, 0.1))
    land = L.Landscape.of(res)
    H, error = land.hessian(res.theta)
    X, m = res.data.X, res.theta.shape[0]
    Phi = np.maximum(X @ res.theta[:, :3].T, 0.0)
    exact = Phi.T @ Phi / (m * m * len(X)) + 0.05 / m * np.eye(m)
    np.testing.assert_allclose(H, exact, rtol=0, atol=1e-9 * np.max(np.abs(exact)))
    assert error < 1e-8 * np.max(np.abs(exact))


@pytest.mark.parametrize("activation, loss, train", [("tanh", "squared", "both"), ("softplus", "logistic", "both"),
                                                     ("erf", "squared", "hidden"), ("relu", "squared", "both"),
                                                     ("quadratic", "squared", "output")])
def test_the_exact_sample_hessian_is_the_jacobian_of_the_exact_gradient(activation, loss, train):
    """Against central differences of the gradient, within their Richardson error (ReLU: no sample
    on a kink, where sigma'' = 0)."""
    cfg = mf.Config(seed=3, network={"m": 6, "d": 3, "activation": activation, "train": train}, data={"n": 25},
                    flow={"dt": 0.05, "t_end": 0.5, "lam": 0.1, "loss": loss}, record={"n_records": 2})
    res = mf.simulate(cfg)
    land = L.Landscape.of(res)
    H, _ = land.hessian(res.theta)
    differenced, error = land.differenced_hessian(res.theta)
    assert error < 1e-9 * np.max(np.abs(H))
    np.testing.assert_allclose(H, differenced, rtol=0, atol=max(3 * error, 1e-10 * np.max(np.abs(H))))
    np.testing.assert_array_equal(H, H.T)


def population_run(activation, inputs="gaussian", train="both"):
    cfg = mf.Config(seed=3, network={"m": 5, "d": 3, "activation": activation, "train": train},
                    data={"kind": "population", "teacher_m0": 2, "inputs": inputs, "teacher_activation": activation},
                    flow={"dt": 0.05, "t_end": 0.5, "lam": 0.1}, record={"n_records": 2})
    return mf.simulate(cfg)


def test_the_exact_population_hessian_of_a_linear_network_is_the_closed_form():
    """sigma = id: R = |r|^2 / 2 with r = s sum_i a_i w_i - sum_j c_j u_j, so d2R/dw_i dw_l = s^2 a_i a_l I,
    d2R/dw_i da_l = s^2 a_i w_l + [i = l] s r, d2R/da_i da_l = s^2 w_i . w_l (plus lam / m)."""
    res = population_run("linear")
    theta, (m, p) = res.theta, res.theta.shape
    W, a, d = theta[:, :3], theta[:, 3], 3
    s = 1 / m
    r = s * a @ W - res.teacher[:, 3] @ res.teacher[:, :3]
    exact = np.zeros((m, p, m, p))
    exact[:, :d, :, :d] = s * s * np.einsum("i,l,xy->ixly", a, a, np.eye(d))
    wa = s * s * np.einsum("i,lx->ixl", a, W) + s * np.einsum("il,x->ixl", np.eye(m), r)
    exact[:, :d, :, d], exact[:, d, :, :d] = wa, np.transpose(wa, (2, 0, 1))
    exact[:, d, :, d] = s * s * W @ W.T
    exact = exact.reshape(m * p, m * p) + 0.1 / m * np.eye(m * p)
    H, error = L.Landscape.of(res).hessian(theta)
    np.testing.assert_allclose(H, exact, rtol=0, atol=1e-15)
    assert error < 1e-13 * np.max(np.abs(H))


@pytest.mark.parametrize("activation, inputs, train", [("relu", "gaussian", "both"), ("relu", "sphere", "hidden"),
                                                       ("leaky_relu", "gaussian", "both"),
                                                       ("erf", "gaussian", "both"), ("erf", "gaussian", "output"),
                                                       ("quadratic", "gaussian", "both"),
                                                       ("quadratic", "sphere", "hidden")])
def test_the_exact_population_hessian_is_the_jacobian_of_the_exact_gradient(activation, inputs, train):
    """Against Richardson-extrapolated central differences of the gradient ((4 H_h - H_2h) / 3, error
    O(h^4) + round-off: measured 1e-12 .. 4e-12 relative at h = 3e-4), no pair of neurons parallel;
    the exact one is symmetric to round-off before symmetrising and states an error of a few ulps."""
    res = population_run(activation, inputs, train)
    land = L.Landscape.of(res)
    H, error = land.hessian(res.theta)
    extrapolated = (4 * land.differenced_hessian(res.theta, 3e-4)[0] - land.differenced_hessian(res.theta, 6e-4)[0]) / 3
    scale = np.max(np.abs(H))
    assert error < 1e-12 * scale
    np.testing.assert_allclose(H, extrapolated, rtol=0, atol=2e-11 * scale)
    full, _ = L.population.population_hessian(res.theta, res.teacher, res.config.network, inputs)
    full = full.reshape(res.theta.size, res.theta.size)
    np.testing.assert_allclose(full, full.T, rtol=0, atol=1e-15 * scale)


def test_the_population_hessian_is_differenced_where_relu_neurons_are_parallel():
    """A student neuron on a teacher neuron: the ReLU kernel is not twice differentiable there, so
    the Hessian is the differenced one with its Richardson error (1e-6 relative, not 1e-14)."""
    res = population_run("relu")
    theta = res.theta.copy()
    theta[0, :3] = 2 * res.teacher[0, :3]
    land = L.Landscape.of(res)
    H, error = land.hessian(theta)
    assert not np.isfinite(L.population.population_hessian(theta, res.teacher, res.config.network)[1])
    differenced, differenced_error = land.differenced_hessian(theta)
    np.testing.assert_array_equal(H, differenced)
    assert error == differenced_error


@pytest.mark.parametrize("exact", [False, True])
def test_psi_is_the_first_variation_whose_gradient_moves_the_particles(exact):
    """m grad_{theta_i} J = grad psi(theta_i) (central differences of psi), with lam > 0."""
    cfg = mf.Config(seed=3, network={"m": 7, "d": 3}, data={"n": 25}, flow={"dt": 0.05, "t_end": 0.5, "lam": 0.1},
                    record={"n_records": 2})
    if exact:
        cfg = cfg.updated({"data.kind": "population", "data.teacher_m0": 2})
    res = mf.simulate(cfg)
    land = L.Landscape.of(res)
    theta, h = res.theta, 1e-6
    numeric = np.zeros_like(theta)
    for k in range(theta.shape[1]):
        step = np.zeros_like(theta)
        step[:, k] = h
        numeric[:, k] = (L.first_variation(land, theta, theta + step)
                         - L.first_variation(land, theta, theta - step)) / (2 * h)
    np.testing.assert_allclose(numeric, theta.shape[0] * land.gradient(theta), rtol=1e-6, atol=1e-9)


def test_the_rescaling_and_duplicate_directions_are_flat_at_a_critical_point():
    """Both layers trained, mean-field, student = teacher (a global minimum) with one neuron split
    in two: H s = 0 for the per-neuron rescalings and the output-weight split."""
    cfg = mf.Config(seed=0, network={"m": 4, "d": K0}, data={"kind": "population", "teacher_m0": K0},
                    flow={"dt": 0.05, "t_end": 0.05}, record={"n_records": 2})
    res = mf.simulate(cfg)
    U, c = res.teacher[:, :K0], res.teacher[:, K0]
    theta = np.vstack([np.hstack([U, 4 * c[:, None]]), np.hstack([U[:1], [[0.0]]])])
    theta[0, K0], theta[3, K0] = 4 * c[0] * 0.3, 4 * c[0] * 0.7            # neuron 0 split between rows 0 and 3
    land = L.Landscape.of(res)
    np.testing.assert_allclose(land.gradient(theta), 0.0, atol=1e-13)
    H, error = land.hessian(theta)
    S = land.symmetries(theta)
    assert len(S) == 4 + 1
    assert error < 1e-5 * np.max(np.abs(H))       # the ReLU kernel is not smooth at parallel neurons: 1e-6
    np.testing.assert_allclose(S @ H, 0.0, atol=10 * error)       # to the Hessian's stated error
    point = L.polish(land, theta)
    assert point.symmetries == 5
    assert point.label == "degenerate" or point.spectrum[0] > -1e-8
    assert L.certificate(land, theta).certified


def test_a_student_equal_to_the_teacher_is_certified_global():
    cfg = safran_shamir(K0)
    res = teacher_of(cfg)
    theta = res.theta.copy()
    theta[:, :K0] = res.teacher[:, :K0]
    cert = L.certificate(res, theta)
    assert cert.certified
    assert abs(cert.min_psi) < 1e-12 * cert.scale


def test_a_student_missing_a_teacher_neuron_is_refused_with_the_birth_direction_at_it():
    """Two students started near teacher neurons 1 and 2 of three, trained and polished to the
    critical point (|grad J| <= 1e-12): psi < 0 somewhere, and its minimiser is within 40 degrees
    of the missing third teacher neuron (measured: 36.7), farther from the others (115)."""
    cfg = safran_shamir(2)
    U = teacher_of(cfg).teacher[:, :K0]
    rng = np.random.default_rng(0)
    theta0 = np.hstack([U[:2] + 0.1 * rng.standard_normal((2, K0)), np.full((2, 1), np.sqrt(2))])
    res = mf.simulate(cfg, theta0=theta0)
    land = L.Landscape.of(res)
    point = L.polish(land, res.theta)
    assert point.gradient_norm <= 1e-12
    assert point.label in ("strict saddle", "local minimum")
    cert = L.certificate(land, point.theta)
    assert not cert.certified
    assert cert.min_psi < -0.05 * cert.scale
    angles = np.degrees(np.arccos(np.clip(U @ cert.direction[:K0], -1, 1)))
    assert angles[2] < 40.0
    assert angles[2] < angles[:2].min()
    label, polished, _ = L.verdict(res)
    assert label == L.VERDICTS[point.label]
    np.testing.assert_array_equal(polished.theta, point.theta)


def test_symmetric_students_stop_at_a_strict_saddle():
    """Two identical students stay identical under the flow; polished, their critical point is a
    strict saddle (splitting them lowers J)."""
    cfg = safran_shamir(2)
    U = teacher_of(cfg).teacher[:, :K0]
    theta0 = np.hstack([np.tile(U[0] + 0.3 * U[1], (2, 1)), np.full((2, 1), np.sqrt(2))])
    res = mf.simulate(cfg, theta0=theta0)
    point = L.polish(L.Landscape.of(res), res.theta)
    assert point.gradient_norm <= 1e-12
    assert point.label == "strict saddle"
    assert point.spectrum[0] < -0.1


def test_the_random_feature_bound_holds_and_the_converged_run_is_the_convex_optimum():
    """Output layer only, lam > 0: J is a strictly convex quadratic in a whose minimum scipy finds;
    early in the run 0 <= J - J* <= gap_bound, and at convergence the run is certified at J*."""
    from scipy.optimize import minimize

    lam = 0.05
    early, late = mf.simulate(random_features(lam, 0.5)), mf.simulate(random_features(lam, 400.0))
    land = L.Landscape.of(early)
    theta = early.theta.copy()

    def J(a):
        theta[:, -1] = a
        return land.objective(theta)

    def grad(a):
        theta[:, -1] = a
        return land.gradient(theta)[:, -1]
    best = minimize(J, np.zeros(len(theta)), jac=grad, method="BFGS", options={"gtol": 1e-13})
    J_star = best.fun
    gap = land.objective(early.theta) - J_star
    cert = L.certificate(land, early.theta)
    assert 0 < gap <= cert.gap_bound
    assert not cert.certified
    final = L.certificate(land, late.theta)
    np.testing.assert_allclose(land.objective(late.theta), J_star, rtol=1e-10)
    assert final.gap_bound < 1e-9
    assert final.certified


def test_the_certificate_refuses_what_it_cannot_decide():
    cfg = mf.Config(network={"m": 5, "d": 2, "activation": "tanh"}, data={"n": 10}, flow={"t_end": 0.01},
                    record={"n_records": 2})
    with pytest.raises(mf.ConfigError, match="network.activation"):
        L.certificate(mf.simulate(cfg))
    quadratic = mf.simulate(cfg.updated({"network.activation": "quadratic", "flow.lam": 1e-3}))
    with pytest.raises(mf.ConfigError, match="flow.lam"):        # 3-homogeneous psi, 2-homogeneous decay
        L.certificate(quadratic)
    deep = mf.simulate(cfg.updated({"network.depth": 2}))
    with pytest.raises(mf.ConfigError, match="network.depth"):
        L.Landscape.of(deep)
