"""Deterministic quadratures of the initial law mu_0 of ``init``: weighted particles (theta_k, omega_k)
with sum_k omega_k g(theta_k) ~ E_{mu_0} g for smooth g, far faster than Monte Carlo's m^-1/2.

``initial_rule(network, init, level)`` builds the rule for the config's laws, before and after
the overall scale ``tau`` and the ``symmetric`` doubling, as a tensor product of
- w (in R^d): Gaussian N(0, w_scale^2 I): Gauss–Hermite for d = 1; polar for d = 2 (2 level
  equally spaced angles, exact for trigonometric polynomials of degree < 2 level, times a
  generalised Gauss–Laguerre rule in r^2 / 2 with ``level`` nodes); spherical for d = 3 (Gauss–
  Legendre in the polar cosine times 2 level equally spaced azimuths, times the same radial rule);
  tensor Gauss–Hermite for d >= 4 (level^d nodes). Uniform on the sphere of radius w_scale: the
  same direction rules (two points for d = 1), d <= 3. The direction rules are symmetric under
  u -> -u, so that only the even part in r of an integrand meets the radial rule in r^2 / 2: for
  smooth integrands the rules converge faster than any power of the level.
- a: Gaussian: Gauss–Hermite with ``level`` nodes; Rademacher: ±a_scale; constant, zero: one
  node; balanced (|a| = |w|, random sign): ±|w|.
Exactness (tested), n = level: a Gauss rule of n nodes integrates polynomials of degree <= 2n - 1
in its variable exactly (Gaussian a, Gaussian w for d = 1 and each coordinate for d >= 4); the
polar and spherical rules integrate every polynomial in w of total degree <= 2n - 1 exactly.
Shapes: theta (K, d + 1) = [w | a], omega (K,) summing to 1.
"""
from __future__ import annotations

import math

import numpy as np

from ..config import InitConfig, NetworkConfig
from ..errors import ConfigError

MAX_NODES = 10 ** 7        # a rule larger than this is refused (tensor rules grow as level^d)


def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of N(0, 1) with n nodes: exact for polynomials of degree <= 2n - 1 (NumPy's
    recurrence up to 150 nodes, where it is exact to rounding; above, where it overflows, SciPy's
    asymptotic rule, about 1e-14)."""
    if n > 150:
        from scipy.special import roots_hermitenorm  # scipy.special only when a rule needs it

        x, w = roots_hermitenorm(n)
    else:
        x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


def _radius(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """|g| for g ~ N(0, I_d): s = |g|^2 / 2 ~ Gamma(d / 2), generalised Gauss–Laguerre in s."""
    from scipy.special import roots_genlaguerre  # scipy.special only when a rule needs it

    s, w = roots_genlaguerre(n, d / 2 - 1)
    return np.sqrt(2 * s), w / w.sum()


def _directions(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """A rule for the uniform law on the unit sphere S^{d-1}, d <= 3: (K, d) points, (K,) weights."""
    if d == 1:
        return np.array([[1.0], [-1.0]]), np.array([0.5, 0.5])
    phi = np.pi * (np.arange(2 * n) + 0.5) / n                      # 2n equally spaced: trigonometric degree < 2n
    if d == 2:
        return np.column_stack([np.cos(phi), np.sin(phi)]), np.full(2 * n, 0.5 / n)
    z, wz = np.polynomial.legendre.leggauss(n)                      # the polar cosine is uniform on [-1, 1]
    rho = np.sqrt(1 - z ** 2)
    points = np.column_stack([np.outer(rho, np.cos(phi)).ravel(), np.outer(rho, np.sin(phi)).ravel(),
                              np.repeat(z, 2 * n)])
    return points, np.outer(wz / 2, np.full(2 * n, 0.5 / n)).ravel()


def _tensor(*rules):
    """The product of rules (points (K_i, p_i), weights (K_i,)): points (prod K, sum p)."""
    points, weights = np.zeros((1, 0)), np.ones(1)
    for p, w in rules:
        points = np.hstack([np.repeat(points, len(p), axis=0), np.tile(p, (len(points), 1))])
        weights = np.outer(weights, w).ravel()
    return points, weights


def w_rule(d: int, law: str, level: int) -> tuple[np.ndarray, np.ndarray]:
    """A rule for w / w_scale: N(0, I_d) or uniform on the unit sphere, (K, d) and (K,)."""
    if law == "sphere":
        if d > 3:
            raise ConfigError.invalid("network.d", d, "at most 3 for a quadrature of init.w_law = 'sphere'")
        return _directions(level, d)
    if d == 1:
        x, w = gauss_hermite(level)
        return x[:, None], w
    if d <= 3:
        u, wu = _directions(level, d)
        r, wr = _radius(level, d)
        points, weights = _tensor((r[:, None], wr), (u, wu))
        return points[:, :1] * points[:, 1:], weights
    x, w = gauss_hermite(level)
    return _tensor(*[(x[:, None], w)] * d)


def _gaussian_nodes(d: int, level: int) -> int:
    """How many nodes ``w_rule`` gives N(0, I_d) (1 for d = 0)."""
    return (1, level, 2 * level ** 2, 2 * level ** 3)[d] if d <= 3 else level ** d


def _check_level(level) -> None:
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise ConfigError.invalid("level", level, "an integer >= 1")


def _size(w_nodes: int, init: InitConfig, level: int) -> int:
    """The rule's node count: w_nodes times a's nodes, doubled when symmetric."""
    return w_nodes * {"gaussian": level, "rademacher": 2, "balanced": 2}.get(init.a_law, 1) * (1 + init.symmetric)


def _check_size(w_nodes: int, init: InitConfig, level: int, where: str) -> None:
    """Refuse a level whose rule would exceed MAX_NODES, before any work."""
    size = _size(w_nodes, init, level)
    if size > MAX_NODES:
        raise ConfigError.invalid("level", level, f"a level whose rule has at most {MAX_NODES} nodes for {where} "
                                  f"(about {size}); lower the level")


def _w_nodes(network: NetworkConfig, init: InitConfig, level: int) -> int:
    d = network.d
    return _gaussian_nodes(d, level) if init.w_law == "gaussian" else (2, 2 * level, 2 * level ** 2)[min(d, 3) - 1]


def rule_size(network: NetworkConfig, init: InitConfig, level: int) -> int:
    """How many nodes ``initial_rule`` gives at this level (without building it)."""
    return _size(_w_nodes(network, init, level), init, level)


def initial_rule(network: NetworkConfig, init: InitConfig, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted particles (theta (K, d + 1), omega (K,)) whose measure approximates the initial
    law of ``init.initial_particles``; ``level`` >= 1 refines every one-dimensional rule."""
    d = network.d
    _check_level(level)
    _check_size(_w_nodes(network, init, level), init, level, f"d = {d}")
    w, ww = w_rule(d, init.w_law, level)
    return _with_output_weights(init.w_scale * w, ww, init, level, d)


def _with_output_weights(w, ww, init: InitConfig, level: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The rule (w (K, p), ww (K,)) times the rule of a's law (|w| over the first p columns for a
    balanced a; d: where a's column goes), mirrored when ``symmetric``, scaled by tau."""
    if init.a_law == "gaussian":
        x, wa = gauss_hermite(level)
        points, weights = _tensor((w, ww), (init.a_scale * x[:, None], wa))
    elif init.a_law in ("rademacher", "balanced"):
        size = np.linalg.norm(w, axis=1) if init.a_law == "balanced" else np.full(len(w), init.a_scale)
        points = np.vstack([np.column_stack([w, size]), np.column_stack([w, -size])])
        weights = np.concatenate([ww, ww]) / 2
    else:
        value = init.a_scale if init.a_law == "constant" else 0.0
        points, weights = np.column_stack([w, np.full(len(w), value)]), ww
    return _mirrored(points, weights, init, d)


def _mirrored(points, weights, init: InitConfig, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The rule with its mirrors (w, -a) when ``symmetric`` (a in column d), scaled by tau."""
    if init.symmetric:                                              # the mirrors (w, -a), half the mass each
        mirror = points.copy()
        mirror[:, d] *= -1.0
        points, weights = np.vstack([points, mirror]), np.concatenate([weights, weights]) / 2
    return np.ascontiguousarray(init.tau * points), weights / math.fsum(weights)


def reduced_rule(network: NetworkConfig, init: InitConfig, level: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A rule for the reduced particles (w_S, r, a) of ``reduced.py``, (K, k + 2) and (K,): w ~ N(0,
    w_scale^2 I_d) splits into w_S ~ N(0, w_scale^2 I_k) (``w_rule`` in k dimensions) and the
    independent r = |w_perp| ~ w_scale chi_(d - k) (generalised Gauss–Laguerre in r^2 / 2, ``level``
    nodes), then a's law as in ``initial_rule``. Exact for polynomials of degree <= 2 level - 1 in
    each factor (w_S's per coordinate for k >= 4)."""
    d = network.d
    if init.w_law != "gaussian":
        raise ConfigError.invalid("init.w_law", init.w_law, "'gaussian' for the reduced limit (an isotropic law "
                                  "that splits into independent w_S and |w_perp|)")
    _check_level(level)
    _check_size(_gaussian_nodes(k, level) * level, init, level, f"the reduced rule with k = {k}")
    wS, wS_weights = w_rule(k, "gaussian", level) if k else (np.zeros((1, 0)), np.ones(1))
    r, wr = _radius(level, d - k) if d > k else (np.zeros(1), np.ones(1))
    w, ww = _tensor((wS, wS_weights), (r[:, None], wr))
    return _with_output_weights(init.w_scale * w, ww, init, level, k + 1)


def reduced_sobol(network: NetworkConfig, init: InitConfig, level: int, k: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The reduced particles (w_S, r, a) of ``reduced_rule``'s law as 2^level equal-weight points of a
    scrambled Sobol sequence in k + 2 dimensions (``seed``: the scrambling, reproducible), mapped by the inverse
    distribution functions (normal for w_S and a Gaussian, chi_(d - k) for r): for large k, where
    tensor rules cannot reach, with an error near 1 / N for smooth integrands instead of N^-1/2."""
    from scipy.stats import chi, norm, qmc

    if init.w_law != "gaussian":
        raise ConfigError.invalid("init.w_law", init.w_law, "'gaussian' for the reduced limit")
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 20:
        raise ConfigError.invalid("level", level, "an integer from 1 to 20 (2^level Sobol points)")
    d = network.d
    u = qmc.Sobol(k + 2, scramble=True, seed=seed).random_base2(level)
    w = np.column_stack([norm.ppf(u[:, :k]), chi.ppf(u[:, k], d - k) if d > k else np.zeros(len(u))])
    w *= init.w_scale
    a = {"gaussian": init.a_scale * norm.ppf(u[:, k + 1]),
         "rademacher": init.a_scale * np.where(u[:, k + 1] < 0.5, -1.0, 1.0),
         "balanced": np.linalg.norm(w, axis=1) * np.where(u[:, k + 1] < 0.5, -1.0, 1.0),
         "constant": np.full(len(u), init.a_scale), "zero": np.zeros(len(u))}[init.a_law]
    return _mirrored(np.column_stack([w, a]), np.full(len(u), 1.0 / len(u)), init, k + 1)


FINE = 4000          # Gauss–Legendre nodes of the discrete measure from which reduced_rays' angle rule is drawn


def gauss_rule(x: np.ndarray, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n-node Gauss rule of the discrete measure sum_i w_i delta_{x_i} (w > 0, len(x) >> n):
    the Stieltjes procedure for its three-term recurrence, then Golub–Welsch. For a measure
    with a smooth density sampled by a fine Gauss–Legendre rule, the rule of the density itself."""
    alpha, beta = np.zeros(n), np.zeros(n)
    previous, current = np.zeros_like(x), np.full_like(x, 1.0 / np.sqrt(w.sum()))
    for j in range(n):
        alpha[j] = np.sum(w * x * current ** 2)
        following = (x - alpha[j]) * current - (beta[j] * previous if j else 0.0)
        norm = np.sqrt(np.sum(w * following ** 2))
        if j + 1 < n:
            beta[j + 1] = norm
        previous, current = current, following / norm
    nodes, vectors = np.linalg.eigh(np.diag(alpha) + np.diag(beta[1:], 1) + np.diag(beta[1:], -1))
    return nodes, w.sum() * vectors[0] ** 2


def reduced_rays(network: NetworkConfig, init: InitConfig, level: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rays for the reduced particles z = (w_S, r, a) of a positively 1-homogeneous activation with
    both layers trained: each node a unit vector (K, k + 2), its weight (K,) the integral of |z|^2
    over its ray under mu_0, so that sum_j omega_j g(z_j) = E g(z) for every 2-homogeneous g.
    Such a network's velocity is 1-homogeneous, so the flow carries rays to rays, scaled: these
    nodes are the limit, with the radius integrated exactly (the Cartesian rules meet the
    integrand's kink at z = 0 and converge irregularly). In (w, a) = rho (cos b omega, sin b), omega
    uniform on S^(d-1): b has the density cos^(d-1) b q(b)^(-(d+3)/2), q = cos^2 b / s_w^2 +
    sin^2 b / s_a^2 (``gauss_rule``, ``level`` nodes); omega's reduced part (s u, sqrt(1 - s^2)),
    s^2 ~ Beta(k / 2, (d - k) / 2) (Gauss–Jacobi, ``level`` nodes), u uniform on S^(k - 1)
    (``_directions``: k <= 3). The weights sum to E |z|^2 = tau^2 (d w_scale^2 + a_scale^2)."""
    from scipy.special import roots_jacobi, roots_legendre

    _check_level(level)
    for name, value, allowed in (("init.w_law", init.w_law, "'gaussian'"), ("init.a_law", init.a_law, "'gaussian'")):
        if value != "gaussian":
            raise ConfigError.invalid(name, value, f"{allowed} for the ray rule (a law with a density in (w, a))")
    if k > 3:
        raise ConfigError.invalid("k", k, "at most 3 teacher directions for the ray rule (rule='sobol' beyond)")
    d = network.d
    s_w, s_a = init.tau * init.w_scale, init.tau * init.a_scale
    b, wb = roots_legendre(FINE)                       # asymptotic formulas: 0.1 s (NumPy's eigenvalues: minutes)
    b = b * np.pi / 2
    q = np.cos(b) ** 2 / s_w ** 2 + np.sin(b) ** 2 / s_a ** 2
    log_density = (d - 1) * np.log(np.cos(b)) - (d + 3) / 2 * np.log(q)
    angles, angle_weights = gauss_rule(b, wb * np.exp(log_density - log_density.max()), level)
    angle_weights = angle_weights / angle_weights.sum() * (d * s_w ** 2 + s_a ** 2)
    if k and d > k:
        t, wt = roots_jacobi(level, (d - k) / 2 - 1, k / 2 - 1)     # (1 - x)^al (1 + x)^be on [-1, 1]
        s, ws = np.sqrt((1 + t) / 2), wt / wt.sum()                   # s^2 = (1 + x) / 2 ~ Beta(k / 2, (d - k) / 2)
    else:
        s, ws = np.full(1, 1.0 if k else 0.0), np.ones(1)
    u, wu = _directions(level, k) if k else (np.zeros((1, 0)), np.ones(1))
    direction, weights = _tensor((s[:, None], ws), (u, wu))          # omega's reduced part (s u, sqrt(1 - s^2))
    w_part = np.column_stack([direction[:, :1] * direction[:, 1:], np.sqrt(1 - direction[:, 0] ** 2)])
    points, weights = _tensor((angles[:, None], angle_weights), (w_part, weights))
    angle = points[:, 0]
    Z = np.column_stack([np.cos(angle)[:, None] * points[:, 1:], np.sin(angle)])
    return np.ascontiguousarray(Z), weights
