"""Quadratures of the initial law: exact moments, the config's laws, spectral convergence."""
import itertools
import math

import numpy as np
import pytest
from scipy.special import gamma

import meanfield as mf
from meanfield.config import InitConfig, NetworkConfig
from meanfield.model import quadrature
from meanfield.model.init import initial_particles


def double_factorial(k):
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def gaussian_moment(powers):
    """E prod g_i^k_i for g ~ N(0, I)."""
    return math.prod(double_factorial(k - 1) if k % 2 == 0 else 0 for k in powers)


def sphere_moment(powers):
    """E prod u_i^k_i for u uniform on S^{d-1}: the Gaussian moment over E|g|^(sum k)."""
    d, total = len(powers), sum(powers)
    if any(k % 2 for k in powers):
        return 0.0
    return gaussian_moment(powers) * gamma(d / 2) / (2 ** (total / 2) * gamma(d / 2 + total / 2))


def monomials(d, degree):
    return [p for p in itertools.product(range(degree + 1), repeat=d) if sum(p) <= degree]


@pytest.mark.parametrize("d,law", [(1, "gaussian"), (2, "gaussian"), (3, "gaussian"), (4, "gaussian"),
                                   (1, "sphere"), (2, "sphere"), (3, "sphere")])
@pytest.mark.parametrize("level", [3, 6])
def test_w_rules_integrate_the_documented_polynomials_exactly(d, law, level):
    """Gauss rules: degree 2n - 1 per variable (d = 1, and d >= 4 per coordinate); polar and
    spherical rules: total degree 2n - 1."""
    points, weights = quadrature.w_rule(d, law, level)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-14)
    assert np.all(weights > 0)
    degree = 2 * level - 1
    powers = monomials(d, degree) if d < 4 else [p for p in itertools.product(range(degree + 1), repeat=d)
                                                  if max(p) <= degree and sum(p) <= degree + 2]
    moment = gaussian_moment if law == "gaussian" else sphere_moment
    for p in powers:
        values = weights * np.prod(points ** np.array(p), axis=1)
        np.testing.assert_allclose(values.sum(), moment(p), rtol=1e-11, atol=1e-14 * np.abs(values).sum(),
                                   err_msg=str(p))     # odd moments vanish up to the round-off of the sum


def test_the_polar_rule_is_not_exact_past_its_degree():
    """The documented degree is sharp: cos(2n phi) is not integrated exactly by 2n angles."""
    level = 5
    points, weights = quadrature.w_rule(2, "sphere", level)
    x = points[:, 0] + 1j * points[:, 1]
    assert abs(np.sum(weights * (x ** (2 * level)).real) - 0.0) > 0.1


LAWS = [dict(w_law="gaussian", a_law="gaussian", w_scale=0.7, a_scale=1.3, tau=0.9),
        dict(w_law="sphere", a_law="rademacher", w_scale=1.5, a_scale=0.4),
        dict(w_law="gaussian", a_law="balanced", tau=2.0),
        dict(w_law="sphere", a_law="constant", a_scale=0.8, symmetric=True),
        dict(w_law="gaussian", a_law="zero")]


@pytest.mark.parametrize("law", LAWS, ids=lambda law: f"{law['w_law']}-{law['a_law']}")
def test_the_rule_integrates_like_the_sampled_initial_law(law, rng):
    """E g(theta) for a smooth non-polynomial g: the rule at a high level against 200 000 draws of
    init.initial_particles (within 5 standard errors)."""
    d = 2
    network, init = NetworkConfig(m=200_000, d=d), InitConfig(**law)
    theta, omega = quadrature.initial_rule(network, init, level=24)
    v = np.array([0.8, -0.5])

    def g(t):
        return np.tanh(t[:, :d] @ v + 0.3) * (1 + t[:, d]) ** 2 + np.cos(np.linalg.norm(t[:, :d], axis=1))

    samples = g(initial_particles(network, init, np.random.default_rng(5)))
    assert abs(np.sum(omega * g(theta)) - samples.mean()) < 5 * samples.std() / math.sqrt(len(samples))
    np.testing.assert_allclose(omega.sum(), 1.0, rtol=1e-14)
    assert theta.shape == (len(omega), d + 1)


def test_the_rule_converges_far_faster_than_monte_carlo_for_a_smooth_integrand():
    """E exp(sin(w . v + 0.3)) a^2, d = 2: the error falls by more than 2^8 when the level doubles."""
    network, init = NetworkConfig(d=2), InitConfig(a_law="gaussian")

    def integral(level):
        theta, omega = quadrature.initial_rule(network, init, level)
        return np.sum(omega * np.exp(np.sin(theta[:, 0] + 0.5 * theta[:, 1] + 0.3)) * theta[:, 2] ** 2)

    reference = integral(48)
    errors = [abs(integral(level) - reference) for level in (4, 8, 16)]
    assert errors[0] > 1e-4
    assert errors[2] < 1e-7
    assert math.log2(errors[1] / errors[2]) > 8


def test_bad_levels_and_laws_are_refused_before_any_work():
    for level in (0, 2.5, True):
        with pytest.raises(mf.ConfigError, match="level"):
            quadrature.initial_rule(NetworkConfig(d=2), InitConfig(), level)
    with pytest.raises(mf.ConfigError, match="network.d"):
        quadrature.initial_rule(NetworkConfig(d=5), InitConfig(w_law="sphere"), 4)
    with pytest.raises(mf.ConfigError, match="at most"):
        quadrature.initial_rule(NetworkConfig(d=8), InitConfig(), 20)
