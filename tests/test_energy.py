"""The energy terms: kernels against their NumPy twins and finite differences, and the exactly
solvable McKean–Vlasov systems they make (data.kind = "none") at statistical tolerance."""
import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import gamma

import meanfield as mf
from meanfield import _kernels
from meanfield.config import FlowConfig
from meanfield.model import energy, twolayer

from . import naive

P = 4
MATRIX = (np.diag([1.0, 2.0, 0.5, 3.0]) + 0.3 * np.eye(P, k=1) + 0.3 * np.eye(P, k=-1)).tolist()
TERMS = {
    "quadratic potential": {"potential": {"kind": "quadratic", "matrix": MATRIX}},
    "quartic potential": {"potential": {"kind": "quartic", "strength": 0.7}},
    "double well": {"potential": {"kind": "double_well", "depth": 0.8, "center": 1.3}},
    "inner interaction": {"interaction": {"kind": "inner", "strength": 0.9}},
    "quadratic interaction": {"interaction": {"kind": "quadratic", "strength": 1.1}},
    "gaussian interaction": {"interaction": {"kind": "gaussian", "strength": -0.6, "bandwidth": 0.8}},
    "both": {"potential": {"kind": "double_well"}, "interaction": {"kind": "gaussian"}},
}


def test_the_kernels_codes_are_the_registries():
    assert _kernels.POTENTIAL_CODES == {name: t.code for name, t in energy.POTENTIALS.items()}
    assert _kernels.INTERACTION_CODES == {name: t.code for name, t in energy.INTERACTIONS.items()}


@pytest.mark.parametrize("term", TERMS)
@pytest.mark.parametrize("mask", [np.ones(P), np.array([1.0, 1.0, 1.0, 0.0])])
def test_compiled_drift_equals_the_numpy_twin_serial_and_parallel(term, mask, rng):
    flow = FlowConfig(**TERMS[term])
    theta = rng.standard_normal((300, P))            # > PAIR_BLOCK: several blocks
    expected, outs = energy.drift(theta, flow, mask), []
    for parallel in (False, True):
        out = np.full_like(theta, 0.25)              # the kernel adds to what is there
        _kernels.energy_drift(theta, mask, _kernels.NO_WEIGHTS, energy.kernel_form(flow, P), parallel, out)
        np.testing.assert_allclose(out - 0.25, expected, rtol=1e-12, atol=1e-14)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])  # the same bits serial and in parallel


@pytest.mark.parametrize("term", TERMS)
def test_drift_is_minus_m_times_the_gradient_of_the_energy(term, rng):
    """-m d/dtheta_i (E_mu V + (1/2) E W) = -grad V(theta_i) - (1/m) sum_j grad_1 W(theta_i, theta_j)."""
    flow = FlowConfig(**TERMS[term])
    theta = rng.standard_normal((7, P))
    numeric = naive.central_gradient(lambda t: energy.mean_energy(t, flow), theta)
    np.testing.assert_allclose(energy.drift(theta, flow, np.ones(P)), -7 * numeric, rtol=1e-7, atol=1e-8)


def test_the_objective_and_the_free_energy_count_every_term(rng):
    cfg = mf.Config(network={"m": 50, "d": 3, "scaling": "mean_field", "alpha": 2.0}, data={"n": 20},
                    flow={"lam": 0.3, **TERMS["both"]})
    theta = rng.standard_normal((50, 4))
    data = mf.run_data(cfg)
    risk = twolayer.risk(theta, data.X, data.y, cfg.network, "squared")
    factor = 1 / (2.0 ** 2 * 50 * (1 / 50) ** 2)                    # time_factor = 1 / (alpha^2 m s(m)^2)
    expected = risk + 50 / factor * (0.3 * np.mean(np.sum(theta ** 2, axis=1)) / 2
                                     + energy.mean_energy(theta, cfg.flow))
    np.testing.assert_allclose(twolayer.objective(theta, data.X, data.y, cfg.network, cfg.flow), expected, rtol=1e-13)


# --- exactly solvable systems -------------------------------------------------------------------

def none(m, d=1, seed=0, **flow):
    return mf.Config(seed=seed, network={"m": m, "d": d}, data={"kind": "none"},
                     init={"w_law": "gaussian", "a_law": "gaussian"}, flow=flow,
                     record={"n_records": 2, "snapshots": False})


def test_anisotropic_ornstein_uhlenbeck_covariance_follows_its_exact_recursion():
    """d theta = -A theta dt + sqrt(2T) dB: by Euler–Maruyama the covariance is exactly
    S' = (I - dt A) S (I - dt A)^T + 2 T dt I, started from S = I; stationary T A^-1 in the limit."""
    A = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])
    T, dt, steps, m = 0.4, 0.01, 100, 20_000
    res = mf.simulate(none(m, d=2, **{"dt": dt, "t_end": dt * steps, "temperature": T,
                                      "potential": {"kind": "quadratic", "matrix": A.tolist()}}))
    S, step = np.eye(3), np.eye(3) - dt * A
    for _ in range(steps):
        S = step @ S @ step.T + 2 * T * dt * np.eye(3)
    got = np.cov(res.theta.T)
    # the sample covariance's standard error: sqrt((S_kk S_ll + S_kl^2) / m)
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S ** 2) / m)
    assert np.max(np.abs(got - S) / se) < 5
    np.testing.assert_allclose(np.mean(res.theta, axis=0), 0.0, atol=5 * np.sqrt(np.max(np.diag(S)) / m))
    assert np.max(np.abs(S - T * np.linalg.inv(A))) > 0.05       # not yet stationary: the transient is tested


def test_quadratic_attraction_with_noise_centre_and_spread_laws_hold_for_every_m():
    """W = J |theta - theta'|^2 / 2: the centre of mass is a Brownian motion of variance 2 T t / m
    per coordinate, and E of the particles' sample variance follows s' = (1 - J dt)^2 s + 2 T dt."""
    J, T, dt, steps, m, seeds = 1.5, 0.5, 0.02, 50, 6, 60
    centre, spread = [], []
    for seed in range(seeds):
        cfg = none(m, d=2, seed=seed, **{"dt": dt, "t_end": dt * steps, "temperature": T,
                                         "interaction": {"kind": "quadratic", "strength": J}})
        res = mf.simulate(cfg)
        centre.append((res.theta.mean(axis=0) - res.theta0.mean(axis=0)) / math.sqrt(2 * T * dt * steps / m))
        spread.append(np.var(res.theta, axis=0, ddof=1))
    z = np.concatenate(centre)                                        # seeds x 3 standard normals
    assert abs(np.mean(z ** 2) - 1.0) < 4 * math.sqrt(2 / z.size)
    s = 1.0                                                          # the initial law's variance (w, a ~ N(0, 1))
    for _ in range(steps):
        s = (1 - J * dt) ** 2 * s + 2 * T * dt
    spread = np.concatenate(spread)
    assert abs(np.mean(spread) - s) < 5 * np.std(spread, ddof=1) / math.sqrt(spread.size)


@pytest.mark.parametrize("kind", ["double_well", "quartic"])
def test_confined_particles_reach_the_gibbs_measure_exp_minus_v_over_t(kind):
    """Independent particles in V with noise T: at equilibrium, the law of each coordinate
    (double well, separable) or of the radius (quartic, radial) is exp(-V / T), by quadrature."""
    T, m = 0.5, 8000
    potential = {"kind": kind, "depth": 0.5, "center": 1.0, "strength": 1.0}
    res = mf.simulate(none(m, d=1, **{"dt": 0.01, "t_end": 20.0, "temperature": T, "integrator": "heun",
                                      "potential": potential}))
    if kind == "double_well":
        density = lambda x: np.exp(-0.5 * (x * x - 1.0) ** 2 / T)
        Z = integrate.quad(density, -8, 8)[0]
        moments = [integrate.quad(lambda x: x ** k * density(x), -8, 8)[0] / Z for k in (2, 4)]
        samples = res.theta.ravel()
        got = [np.mean(samples ** 2), np.mean(samples ** 4)]
        se = [np.std(samples ** 2) / math.sqrt(samples.size), np.std(samples ** 4) / math.sqrt(samples.size)]
    else:                                                            # p = 2: E|theta|^2 = (4T/c)^(1/2) G(1) / G(1/2)
        r2 = np.sum(res.theta ** 2, axis=1)
        moments = [math.sqrt(4 * T) * gamma(1.0) / gamma(0.5)]
        got, se = [np.mean(r2)], [np.std(r2) / math.sqrt(m)]
    for g, expect, s in zip(got, moments, se):
        assert abs(g - expect) < 5 * s + 0.01 * expect                # 1 %: the scheme's O(dt^2) bias


def test_curie_weiss_magnetisation_solves_its_fixed_point_equation():
    """Inner interaction W = -J a a' in the double well V = (a^2 - 1)^2 / 4, noise T, a trained
    alone: the stationary law is exp(-(V(a) - J M a) / T) with M its own mean (self-consistency),
    solved by scipy; the ordered phase, started from a = 1."""
    J, T, m = 1.0, 0.6, 8000
    cfg = mf.Config(network={"m": m, "d": 1, "train": "output"}, data={"kind": "none"},
                    init={"a_law": "constant", "a_scale": 1.0},
                    flow={"dt": 0.01, "t_end": 25.0, "temperature": T, "integrator": "heun",
                          "potential": {"kind": "double_well", "depth": 0.25, "center": 1.0},
                          "interaction": {"kind": "inner", "strength": J}},
                    record={"n_records": 2, "snapshots": False})
    res = mf.simulate(cfg)

    def mean(M):
        weight = lambda a: np.exp(-(0.25 * (a * a - 1) ** 2 - J * M * a) / T)
        return integrate.quad(lambda a: a * weight(a), -8, 8)[0] / integrate.quad(weight, -8, 8)[0]

    M = optimize.brentq(lambda M: mean(M) - M, 0.05, 3.0)
    assert M > 0.5                                                   # the ordered phase
    a = res.theta[:, -1]
    assert abs(np.mean(a) - M) < 5 * np.std(a) / math.sqrt(m) + 0.01 * M
    np.testing.assert_array_equal(res.theta[:, 0], res.theta0[:, 0])    # w frozen


def test_free_energy_and_gibbs_gap_account_for_the_potential_at_equilibrium():
    """Double well plus weight decay, noise T, no interaction: the particles' free energy tends to
    its minimum -T log Z, Z = (int exp(-(V(x) + lam x^2 / 2) / T) dx)^p, and the Gibbs gap to ~0."""
    T, lam = 0.5, 0.1
    cfg = mf.Config(network={"m": 3000, "d": 1}, data={"kind": "none"},
                    flow={"dt": 0.01, "t_end": 20.0, "temperature": T, "lam": lam, "integrator": "heun",
                          "potential": {"kind": "double_well", "depth": 0.5}},
                    record={"n_records": 2, "diagnostics": ["gibbs", "free_energy"]})
    res = mf.simulate(cfg)
    z = integrate.quad(lambda x: np.exp(-(0.5 * (x * x - 1) ** 2 + lam * x * x / 2) / T), -8, 8)[0]
    assert abs(res.observables["free_energy"][-1] - (-T * 2 * math.log(z))) < 0.05 * T * 2     # k-NN entropy bias
    gap = res.observables["gibbs_gap"]
    assert gap[0] > 0.5
    assert abs(gap[-1]) < 0.03


@pytest.mark.parametrize("kind", ["inner", "quadratic"])
def test_the_interaction_energy_through_the_mean_equals_the_pair_sum(kind, rng):
    flow = FlowConfig(interaction={"kind": kind, "strength": 0.7})
    theta, omega = rng.standard_normal((40, P)), rng.dirichlet(np.ones(40))
    term = energy.INTERACTIONS[kind]
    for weights, w in ((None, np.full(40, 1 / 40)), (omega, omega)):
        pairs = 0.5 * w @ term.value(theta, theta, flow.interaction) @ w
        np.testing.assert_allclose(energy.interaction_energy(theta, flow, weights), pairs, rtol=1e-12)
