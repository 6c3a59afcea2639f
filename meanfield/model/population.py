"""Exact population risk and its gradient for Gaussian inputs x ~ N(0, I_d) and a teacher network.

Student f(x) = alpha s(m) sum_i a_i sigma(w_i . x), teacher f*(x) = sum_j c_j sigma*(u_j . x):

    R = E[(f - f*)^2] / 2 = (alpha s)^2/2 a^T K a - alpha s a^T K* c + c^T K** c / 2,

with K_ii' = kappa(w_i, w_i'), kappa(w, w') = E[sigma(w.x) sigma(w'.x)]. kappa depends on
q = |w|^2, q' = |w'|^2 and rho = w.w' only, so grad_w kappa(w, w') = A w + B w' with
A = 2 d kappa/dq and B = d kappa/d rho = E[sigma'(w.x) sigma'(w'.x)] (Price's theorem). Closed
forms for relu (arc-cosine), erf (arcsin), linear, quadratic and leaky_relu, and for
piecewise_linear through bivariate normal orthant probabilities (``orthant``); Gauss–Hermite
quadrature on the 2-D Gaussian (w.x, w'.x) for the others, and for the student-teacher pairs
when the teacher's activation differs from the student's. ``pair_sums`` is the NumPy twin of
the compiled ``_kernels.population_sums``. ``population_hessian``: the exact Hessian of R from the
second partials of the closed forms (``pair_second``). Shapes: W (m, d), V (k, d) -> (m, k) matrices.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS, cross_terms
from .quadrature import gauss_hermite
from .scaling import time_factor
from .twolayer import DEFAULT_PARAMS, activation, activation_derivative, output_weights, train_mask

CLOSED_FORMS = tuple(a.name for a in ACTIVATIONS.values() if a.population == "closed form")
ORTHANT = tuple(a.name for a in ACTIVATIONS.values() if a.population == "orthant")         # NumPy only
EXACT = CLOSED_FORMS + ORTHANT
QUADRATURE = tuple(a.name for a in ACTIVATIONS.values() if a.population == "quadrature")   # smooth
SUPPORTED = EXACT + QUADRATURE
QUADRATURE_NODES = 96      # per axis; tanh: relative error 1e-11 (kappa), 1e-10 (A, B) at |w|^2 = 1, 1e-3 at 10
QUADRATURE_CHUNK = 256     # pairs evaluated at once (memory ~ chunk * nodes^2 * 8 bytes per array)


def pair_terms(name: str, q1, q2, rho, params=None, other: str | None = None, other_params=None):
    """(kappa, A, B) elementwise for squared norms q1, q2 and inner products rho (broadcast).

    other, other_params: the activation of the second network (a teacher's) and its parameters,
    when they differ from ``name`` and ``params``: kappa = E[sigma(w.x) other(v.x)], exact between
    two activations of the form l z + r relu(z) (relu, leaky_relu of any slopes, linear:
    ``activations.cross_terms``), by quadrature for the others."""
    q1, q2, rho = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, rho)))
    params = DEFAULT_PARAMS if params is None else params
    other_params = params if other_params is None else other_params
    if (other is not None and other != name) or not np.array_equal(other_params, params):
        other = name if other is None else other
        for activation_name in (name, other):
            if activation_name not in SUPPORTED:
                raise ValueError(f"activation {activation_name!r} has no population kernel here: allowed is one of "
                                 f"{', '.join(SUPPORTED)}")
        first, second = ACTIVATIONS[name].linear_relu, ACTIVATIONS[other].linear_relu
        if first is not None and second is not None:
            return cross_terms(first(params), second(other_params), q1, q2, rho)
        return _quadrature_terms(name, q1, q2, rho, params, other=other, other_params=other_params)
    entry = ACTIVATIONS[name] if name in ACTIVATIONS else None
    if entry is not None and entry.kernel is not None:
        return entry.kernel(q1, q2, rho, DEFAULT_PARAMS if params is None else params)
    if name in QUADRATURE:
        return _quadrature_terms(name, q1, q2, rho, params)
    raise ValueError(f"activation {name!r} has no exact population kernel here: allowed is one of "
                     f"{', '.join(SUPPORTED)} (quadrature cannot resolve its kinks)")


def mean_terms(name: str, q, params=None):
    """(E sigma(w . x), the coefficient of w in its gradient) elementwise in q = |w|^2, for x ~ N(0, I)
    and the exact activations (``EXACT``): the activation's ``mean``."""
    entry = ACTIVATIONS.get(name)
    if entry is None or entry.mean is None:
        raise ValueError(f"activation {name!r} has no closed-form mean here: allowed is one of "
                         f"{', '.join(n for n, a in ACTIVATIONS.items() if a.mean is not None)}")
    return entry.mean(np.asarray(q, dtype=float), DEFAULT_PARAMS if params is None else params)


KINKED = tuple(a.name for a in ACTIVATIONS.values() if a.kinked)   # not twice differentiable at parallel pairs


def pair_second(name: str, q1, q2, rho, params=None):
    """(F11, F12, F13, F33): the second partials of kappa = F(q1, q2, rho) for the closed forms,
    elementwise (F22, F23: F11, F13 with q1 and q2 swapped): the activation's ``kernel_second``
    (relu and leaky_relu: nan at nearly parallel pairs, ``activations.PARALLEL_SIN2``)."""
    q1, q2, rho = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, rho)))
    entry = ACTIVATIONS.get(name)
    if entry is None or entry.kernel_second is None:
        raise ValueError(f"activation {name!r} has no closed-form second derivatives here: allowed is one of "
                         f"{', '.join(CLOSED_FORMS)}")
    return entry.kernel_second(q1, q2, rho, DEFAULT_PARAMS if params is None else params)


QUADRATURE_TOL = 1e-6      # warn when the estimated relative error of the quadrature exceeds this
_checked = {}              # activation -> largest q1 * q2 whose quadrature error was estimated


class QuadratureWarning(UserWarning):
    """The population kernels of a smooth activation are less accurate than QUADRATURE_TOL."""


def quadrature_error(name, q1, q2, rho, params=None, other=None) -> float:
    """Estimated relative error of the QUADRATURE_NODES rule for one pair (scalars), against a rule
    with twice the nodes: of kappa, and of the gradient grad_w kappa = A w + B w' (in size
    |A| |w| + |B| |w'|), whichever is larger."""
    args = [np.array([[v]], dtype=float) for v in (q1, q2, rho)]
    (k, A, B), (kf, Af, Bf) = ([float(t[0, 0]) for t in _quadrature_terms(name, *args, params, check=False, nodes=n,
                                                                         other=other)]
                               for n in (QUADRATURE_NODES, 2 * QUADRATURE_NODES))
    w, v = np.sqrt(q1), np.sqrt(q2)
    return max(abs(k - kf) / max(abs(kf), 1e-300),
               (abs(A - Af) * w + abs(B - Bf) * v) / max(abs(Af) * w + abs(Bf) * v, 1e-300))


def _check_quadrature(name, q1, q2, rho, params, other=None):
    """Warn (once per new largest norm) when the quadrature error on the widest pairs, the
    largest |w| against the largest |w'| and against itself, exceeds QUADRATURE_TOL."""
    at = np.unravel_index(np.argmax(q1 * q2), q1.shape)
    top, key = float(q1[at] * q2[at]), (name, other)
    if top <= 1.1 * _checked.get(key, 0.0):
        return
    _checked[key] = top
    error = max(quadrature_error(name, q1[at], q2[at], rho[at], params, other),
                quadrature_error(name, q1[at], q1[at], q1[at], params, other))
    if error > QUADRATURE_TOL:
        import warnings
        pair = name if other in (None, name) else f"{name} x {other}"
        warnings.warn(f"{pair} population kernels: the {QUADRATURE_NODES}-node quadrature is accurate to about "
                      f"{error:.1g} (relative) at |w|^2 = {max(q1[at], q2[at]):.3g}; the exact risk and its "
                      "gradient are only that exact at such weights", QuadratureWarning, stacklevel=3)


def _quadrature_terms(name, q1, q2, rho, params, check=True, nodes=QUADRATURE_NODES, other=None, other_params=None):
    """Gauss–Hermite on xi ~ N(0, I_2): z1 = |w| xi_1, z2 = p xi_1 + r xi_2 with p = rho / |w|,
    r = sqrt(q2 - p^2); kappa = E[s(z1) s(z2)], B = E[s'(z1) s'(z2)], and from
    grad_w kappa . w/|w| = E[s'(z1) s(z2) xi_1] = A |w| + B p the coefficient A."""
    other = name if other is None else other
    other_params = params if other_params is None else other_params
    if check and q1.size:
        _check_quadrature(name, q1, q2, rho, params, other)
    nodes, weights = gauss_hermite(nodes)
    xi1, xi2 = nodes[None, :, None], nodes[None, None, :]
    weight = (weights[:, None] * weights[None, :])[None]
    norm1 = np.sqrt(q1).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(norm1 > 0, rho.ravel() / norm1, 0.0)
    r = np.sqrt(np.clip(q2.ravel() - p * p, 0.0, None))
    kappa, A, B = (np.empty(norm1.size) for _ in range(3))
    for start in range(0, norm1.size, QUADRATURE_CHUNK):
        part = slice(start, start + QUADRATURE_CHUNK)
        n1, p_, r_ = (v[part].reshape(-1, 1, 1) for v in (norm1, p, r))
        z1, z2 = n1 * xi1, p_ * xi1 + r_ * xi2
        s2 = activation(other, z2, other_params)
        d1 = activation_derivative(name, z1, params)
        kappa[part] = np.sum(weight * activation(name, z1, params) * s2, axis=(1, 2))
        B[part] = np.sum(weight * d1 * activation_derivative(other, z2, other_params), axis=(1, 2))
        g1 = np.sum(weight * d1 * s2 * xi1, axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            A[part] = np.where(n1.ravel() > 0, (g1 - B[part] * p_.ravel()) / n1.ravel(), 0.0)
    return kappa.reshape(q1.shape), A.reshape(q1.shape), B.reshape(q1.shape)


def kernel_matrices(name, W, V, params=None, other=None, other_params=None):
    """(K, A, B), each (m, k), for all pairs (w_i, v_j); ``other``, ``other_params``: the activation
    of the v_j and its parameters, when they differ."""
    q1, q2 = np.sum(W * W, axis=1), np.sum(V * V, axis=1)
    return pair_terms(name, q1[:, None], q2[None, :], W @ V.T, params, other, other_params)


def pair_sums(name, W, V, c, params=None, compiled=False, other=None, other_params=None):
    """(K c, A c, (B * c) V): shapes (m,), (m,), (m, d), for W (m, d), V (k, d), c (k,);
    ``other``, ``other_params``: the activation of the v_j and its parameters when they differ (a
    teacher's).

    ``compiled`` sums in ``_kernels.population_sums`` without forming the (m, k) matrices (closed
    forms of one activation with one set of parameters; the others stay here)."""
    same = other in (None, name) and (other_params is None or np.array_equal(other_params, params))
    if compiled and name in CLOSED_FORMS and same:
        from .. import _kernels

        m, d = W.shape
        Kc, Ac, BcV = np.empty(m), np.empty(m), np.empty((m, d))
        _kernels.population_sums(np.ascontiguousarray(W), np.ascontiguousarray(V), np.ascontiguousarray(V.T),
                                 np.ascontiguousarray(c),
                                 ACTIVATIONS[name].code, DEFAULT_PARAMS if params is None else params,
                                 _kernels.threads(), Kc, Ac, BcV)
        return Kc, Ac, BcV
    K, A, B = kernel_matrices(name, W, V, params, other, other_params)
    return K @ c, A @ c, (B * c[None, :]) @ V


def sphere_moment(name: str, other: str, d: int, inputs: str) -> float:
    """What Gaussian-input kernels are divided by to give the kernels of another input law: 1 for
    x ~ N(0, I_d); for x uniform on the unit sphere, E|g|^(2k) = 2^k Gamma(d/2 + k) / Gamma(d/2)
    when both activations are positively homogeneous of one degree k (then sigma(w.g) sigma(v.g)
    = |g|^(2k) sigma(w.x) sigma(v.x), with |g| independent of x = g / |g|)."""
    if inputs == "gaussian":
        return 1.0
    k = ACTIVATIONS[name].homogeneity
    if k is None or ACTIVATIONS[other].homogeneity != k:
        raise ValueError(f"the exact population risk on the sphere needs activations homogeneous of one degree "
                         f"(relu, leaky_relu, linear, quadratic); got {name!r} and {other!r}")
    from math import lgamma
    return float(np.exp(k * np.log(2.0) + lgamma(d / 2 + k) - lgamma(d / 2)))


def _terms(theta, teacher, network, teacher_activation, compiled, inputs="gaussian", weights=None,
           teacher_params=None):
    """Student and teacher sums (pair_sums), divided by the input law's moment
    (``sphere_moment``), and the output scale; a teacher of another activation or other parameters
    (``teacher_params``, default the network's) is paired with the students by ``pair_terms``."""
    d = theta.shape[1] - 1
    W = theta[:, :d]
    U, c = teacher[:, :d], teacher[:, d]
    params = network.activation_params
    ca, scale = output_weights(theta, network, weights)
    students = pair_sums(network.activation, W, W, ca, params, compiled)
    teachers = pair_sums(network.activation, W, U, c, params, compiled, other=teacher_activation,
                         other_params=teacher_params)
    moment = sphere_moment(network.activation, teacher_activation, d, inputs)
    if moment != 1.0:
        students, teachers = (tuple(t / moment for t in sums) for sums in (students, teachers))
    return students, teachers, scale


def population_risk(theta, teacher, network, teacher_activation="relu", compiled=False, inputs="gaussian",
                    weights=None, teacher_params=None) -> float:
    """R = E[(f(x) - f*(x))^2] / 2 for x ~ N(0, I_d) (or uniform on the unit sphere: ``inputs``);
    theta (m, d + 1), teacher (m0, d + 1) = [u | c]; weights (m,) of weighted particles, or None;
    teacher_params: the teacher's activation parameters (``Config.teacher_params``; default the
    network's)."""
    (Ka, _, _), (Kc, _, _), scale = _terms(theta, teacher, network, teacher_activation, compiled, inputs, weights,
                                           teacher_params)
    d = theta.shape[1] - 1
    a, U, c = output_weights(theta, network, weights)[0], teacher[:, :d], teacher[:, d]
    own = network.activation_params if teacher_params is None else teacher_params
    K_tt = kernel_matrices(teacher_activation, U, U, own)[0] / sphere_moment(
        teacher_activation, teacher_activation, d, inputs)
    return float(0.5 * scale ** 2 * a @ Ka - scale * a @ Kc + 0.5 * c @ K_tt @ c)


def predictor_norm(theta, network, compiled=False, inputs="gaussian", weights=None) -> float:
    """sqrt(E f(x)^2) = alpha s(m) sqrt(a^T K a) for x ~ N(0, I_d) (or on the sphere: ``inputs``)."""
    d = theta.shape[1] - 1
    a, scale = output_weights(theta, network, weights)
    Ka = pair_sums(network.activation, theta[:, :d], theta[:, :d], a, network.activation_params, compiled)[0] / \
        sphere_moment(network.activation, network.activation, d, inputs)
    return float(scale * np.sqrt(max(a @ Ka, 0.0)))


def population_gradient(theta, teacher, network, teacher_activation="relu", compiled=False,
                        inputs="gaussian", weights=None, teacher_params=None) -> np.ndarray:
    """grad_{theta_i} R for every particle, shape (m, d + 1): with grad_w kappa(w, v) = A w + B v,
    grad_a R = s^2 K a - s K* c and grad_{w_i} R = a_i [s^2 (A a)_i w_i + s^2 (B a W)_i
    - s (A* c)_i w_i - s (B* c U)_i]. Weighted particles: grad_{theta_i} R / omega_i, the
    gradient of the first variation (s = alpha, omega a in place of a inside the sums)."""
    (Ka, Aa, BaW), (Kc, Ac, BcU), scale = _terms(theta, teacher, network, teacher_activation, compiled, inputs,
                                                 weights, teacher_params)
    d = theta.shape[1] - 1
    W, a = theta[:, :d], theta[:, d]
    grad_W = a[:, None] * ((scale ** 2 * Aa - scale * Ac)[:, None] * W + scale ** 2 * BaW - scale * BcU)
    return np.hstack([grad_W, (scale ** 2 * Ka - scale * Kc)[:, None]])


def population_velocity(theta, teacher, network, flow, teacher_activation="relu", compiled=False,
                        inputs="gaussian", weights=None, teacher_params=None) -> np.ndarray:
    """The drift of docs/conventions.md with the exact population risk, shape (m, d + 1);
    weights (m,): weighted particles (mean-field scaling), whose velocity does not depend on them."""
    m, p = theta.shape
    factor = time_factor(m, network.scaling, network.alpha) if weights is None else 1 / network.alpha ** 2
    grad = population_gradient(theta, teacher, network, teacher_activation, compiled, inputs, weights,
                               teacher_params)
    v = -factor * grad - flow.lam * theta
    return v * train_mask(network.train, p - 1)


def population_hessian(theta, teacher, network, inputs="gaussian") -> tuple[np.ndarray, float]:
    """(H, error): the exact Hessian of R in all coordinates, (m, d + 1, m, d + 1), for a closed-form
    activation and a teacher of the same one; error: 100 ulps of max |H| divided by the smallest
    sin^2(angle) of a relu pair (the cancellation in q q' - rho^2), inf where a pair is parallel.

    With C(w, v) = d/dv grad_w kappa and D(w, v) = d/dw grad_w kappa (second partials of F):
    d2R/dw_i dw_l = s^2 a_i a_l C(w_i, w_l) (i != l); d2R/dw_i^2 = s^2 a_i sum_{k != i} a_k D(w_i, w_k)
    + s^2 a_i^2 S(w_i) - s a_i sum_j c_j D(w_i, u_j), with S = Hess kappa(w, w) / 2 (from the
    homogeneity kappa(w, w) = kappa_1 |w|^(2k) where there is one); d2R/dw_i da_l = s^2 a_i G_il
    + [i = l] (s^2 sum_k a_k G_ik - s sum_j c_j G*_ij), G_il = A_il w_i + B_il w_l;
    d2R/da_i da_l = s^2 K_il."""
    m, p = theta.shape
    d, name, params = p - 1, network.activation, network.activation_params
    W, U, c = theta[:, :d], teacher[:, :d], teacher[:, d]
    a, s = output_weights(theta, network)
    moment = sphere_moment(name, name, d, inputs)
    q, qu = np.sum(W * W, axis=1), np.sum(U * U, axis=1)
    off = ~np.eye(m, dtype=bool)

    def terms(V, qv):
        first = [t / moment for t in pair_terms(name, q[:, None], qv[None, :], W @ V.T, params)]
        second = [t / moment for t in pair_second(name, q[:, None], qv[None, :], W @ V.T, params)]
        return first, second
    (K, A, B), (F11, F12, F13, F33) = terms(W, q)
    (_, At, Bt), (F11t, _, F13t, F33t) = terms(U, qu)
    F11, F12, F13, F33 = (np.where(off, t, 0.0) for t in (F11, F12, F13, F33))     # self pairs: S below
    if not all(np.isfinite(t).all() for t in (F11, F12, F13, F33, F11t, F13t, F33t)):
        return np.full((m, p, m, p), np.nan), np.inf

    def slot_one(A_, F11_, F13_, F33_, V, weight):
        """sum_k weight_ik D(w_i, v_k), (m, d, d)."""
        b = (F13_ * weight) @ V
        return (np.einsum("i,xy->ixy", (A_ * weight).sum(1), np.eye(d))
                + 4 * np.einsum("i,ix,iy->ixy", (F11_ * weight).sum(1), W, W)
                + 2 * (np.einsum("ix,iy->ixy", W, b) + np.einsum("ix,iy->ixy", b, W))
                + np.einsum("ik,kx,ky->ixy", F33_ * weight, V, V))
    eye = np.eye(d)
    ww = (B[:, None, :, None] * eye[None, :, None, :] + 4 * np.einsum("il,ix,ly->ixly", F12, W, W)
          + 2 * np.einsum("il,ix,iy->ixly", F13, W, W) + 2 * np.einsum("il,lx,ly->ixly", F13.T, W, W)
          + np.einsum("il,lx,iy->ixly", F33, W, W)) * (s * s * np.outer(a, a))[:, None, :, None]
    k = ACTIVATIONS[name].homogeneity
    if k is not None:                          # kappa(w, w) = kappa_1 q^k: S = g'(q) I + 2 g''(q) w w^T
        kappa1 = float(pair_terms(name, 1.0, 1.0, 1.0, params)[0]) / moment
        g1, g2 = k * kappa1 * q ** (k - 1), k * (k - 1) * kappa1 * q ** max(k - 2, 0)
        S = g1[:, None, None] * eye + 2 * g2[:, None, None] * np.einsum("ix,iy->ixy", W, W)
    else:                                      # smooth (erf): D(w, w) + C(w, w) from the partials at (q, q, q)
        F = [t / moment for t in pair_second(name, q, q, q, params)]
        Ad, Bd = (t / moment for t in pair_terms(name, q, q, q, params)[1:])
        WW = np.einsum("ix,iy->ixy", W, W)
        S = (Ad + Bd)[:, None, None] * eye + (4 * F[0] + 4 * F[1] + 8 * F[2] + 2 * F[3])[:, None, None] * WW
    diagonal = (s * s * a[:, None, None] * slot_one(A, F11, F13, F33, W, a[None, :] * off)
                + ((s * a) ** 2)[:, None, None] * S - s * a[:, None, None] * slot_one(At, F11t, F13t, F33t, U,
                                                                                      c[None, :]))
    ww[np.arange(m), :, np.arange(m), :] = diagonal
    G = A[:, :, None] * W[:, None, :] + B[:, :, None] * W[None, :, :]               # (m, m, d): G_il
    Gt = At[:, :, None] * W[:, None, :] + Bt[:, :, None] * U[None, :, :]
    wa = s * s * a[:, None, None] * G                                               # (i, l, x)
    wa[np.arange(m), np.arange(m)] += s * s * np.einsum("k,ikx->ix", a, G) - s * np.einsum("j,ijx->ix", c, Gt)
    H = np.empty((m, p, m, p))
    H[:, :d, :, :d] = ww
    H[:, :d, :, d] = np.transpose(wa, (0, 2, 1))
    H[:, d, :, :d] = np.transpose(wa, (1, 0, 2))
    H[:, d, :, d] = s * s * K
    sin2 = 1.0
    if name in KINKED:
        with np.errstate(divide="ignore", invalid="ignore"):
            pairs = [1 - (W @ V.T) ** 2 / np.outer(q, qv) for V, qv in ((W, q), (U, qu))]
        sin2 = min(float(np.min(pairs[0][off], initial=1.0)), float(np.min(pairs[1], initial=1.0)), 1.0)
    return H, 100 * np.finfo(float).eps * float(np.max(np.abs(H))) / sin2
