"""Where training stopped: critical points and certificates of global optimality.

The particles follow d theta_i / dt = -c grad_{theta_i} J (docs/conventions.md), with J the risk
plus the penalty (``twolayer.objective``). Here, for a run's model and data (samples or the exact
population risk), with theta (m, d + 1) and only the trained coordinates counted (P of them):

- ``gradient``, ``hessian``: grad J (m, d + 1) from the NumPy twins, and its Hessian (P, P):
  exact on samples (Gauss–Newton term plus the loss' times each neuron's second derivatives;
  between ReLU's kinks, where sigma'' = 0) and for the closed-form population kernels
  (``population.population_hessian``); central differences of the exact gradient, with the error
  estimated by Richardson (steps eps and 2 eps: 1e-9 relative for smooth kernels, 1e-6 where
  neurons are parallel, where the ReLU kernel is not smooth), for quadrature kernels, energy
  terms and parallel ReLU neurons.
- ``polish``: Levenberg–Marquardt steps on grad J = 0 (Newton's near the end: it does not prefer
  saddles or minima) from a trained state to the nearby critical point until |grad J| <= gtol,
  on the complement of the symmetry
  directions, where J is flat (per-neuron rescaling (w, a) -> (c w, a / c^q) of a q-homogeneous
  activation with both layers trained and lam = 0; moving output weight between two neurons
  with the same w; the O(p, q) mixing of neurons of the quadratic activation); the reduced
  Hessian's spectrum labels it "strict saddle", "local minimum" or "degenerate".
- ``certificate``: in the mean-field picture J is convex in the measure mu = (1/m) sum delta_i,
  and mu is a global minimiser iff its first variation

      psi(theta) = C E[loss'(f(x), y) a sigma(w . x)] + C^2 lam |theta|^2 / 2,   C = alpha s(m) m

  (f = C integral a sigma(w . x) dmu; c grad J_i = grad psi(theta_i) / m) is nowhere below its
  value on the support. For a positively homogeneous activation, psi's risk part is homogeneous
  in the trained coordinates, so (lam = 0) mu is global iff psi >= 0 on the unit sphere of the
  trained coordinates (Chizat & Bach 2018): ``certificate`` minimises psi there globally (a
  scrambled Sobol design of 2^14 points mapped to the sphere, then BFGS from the best 8),
  returning min psi, its minimiser (the birth direction: where a neuron should be added), and
  with lam > 0 a bound on J(mu) - min J from convexity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..model import activations, energy, population, twolayer
from ..model.scaling import output_scale, time_factor
from ..rules import LANDSCAPE, Subject, refuse
from ..store.results import Result

SPHERE_POINTS = 2 ** 14
REFINED = 8
STEP = 1e-6                # the certificate's central-difference step (relative to |u|): gradient error ~1e-12
STALL = 10                # polish stops when |grad J| has not halved in this many steps


@dataclass(frozen=True)
class Landscape:
    """A run's objective J on particles theta (m, d + 1): its config, and the samples (X, y) or the
    teacher of the population risk."""

    cfg: object
    X: np.ndarray | None
    y: np.ndarray | None
    teacher: np.ndarray | None

    @classmethod
    def of(cls, result) -> "Landscape":
        """The landscape a ``Result`` was trained on (two-layer, unweighted, not the tangent model)."""
        if not isinstance(result, Result):
            raise ConfigError.invalid("result", type(result).__name__, "a meanfield Result (what simulate returns) "
                                      "or a landscape.Landscape")
        cfg = result.config
        refuse(Subject(cfg, weights=result.weights), LANDSCAPE, " for meanfield.theory.landscape")
        exact = cfg.data.kind == "population"
        return cls(cfg, None if exact else result.data.X, None if exact else result.data.y, result.data.teacher)

    @property
    def exact(self) -> bool:
        return self.X is None

    @property
    def free(self) -> np.ndarray:
        """The trained coordinates of a particle, boolean (d + 1,)."""
        return twolayer.train_mask(self.cfg.network.train, self.cfg.network.d).astype(bool)

    def objective(self, theta) -> float:
        net, flow = self.cfg.network, self.cfg.flow
        risk = (population.population_risk(theta, self.teacher, net, self.cfg.data.teacher_activation,
                                           inputs=self.cfg.data.inputs, teacher_params=self.cfg.teacher_params)
                if self.exact
                else twolayer.risk(theta, self.X, self.y, net, flow.loss))
        return risk + twolayer.penalty(theta, net, flow)

    def gradient(self, theta) -> np.ndarray:
        """grad_{theta_i} J, (m, d + 1), zero on the frozen coordinates."""
        net, flow = self.cfg.network, self.cfg.flow
        v = (population.population_velocity(theta, self.teacher, net, flow, self.cfg.data.teacher_activation,
                                            inputs=self.cfg.data.inputs, teacher_params=self.cfg.teacher_params)
             + (energy.drift(theta, flow, self.free.astype(float)) if energy.active(flow) else 0.0)
             if self.exact else twolayer.velocity(theta, self.X, self.y, net, flow))
        return -v / time_factor(theta.shape[0], net.scaling, net.alpha)

    def hessian(self, theta, eps: float = 1e-5, estimate: bool = True) -> tuple[np.ndarray, float]:
        """(H, error): the Hessian of J in the trained coordinates (P, P), ordered particle by
        particle. Exact without energy terms on samples (``_sample_hessian``; error: 100 ulps of
        |H|) and for the population risk of a closed-form activation with a teacher of the same
        one (``population.population_hessian``), except where two of its ReLU neurons are
        parallel; otherwise central differences of ``gradient`` at steps eps, with error
        max |H_eps - H_2eps| / 3, the Richardson estimate (skipped with ``estimate=False``: Newton steps
        need no error)."""
        cfg = self.cfg
        if not energy.active(cfg.flow):
            if not self.exact:
                H = self._sample_hessian(theta)
                return H, 100 * np.finfo(float).eps * float(np.max(np.abs(H)))
            closed = cfg.network.activation in population.CLOSED_FORMS
            same_teacher = cfg.data.teacher_activation == cfg.network.activation and \
                np.array_equal(cfg.teacher_params, cfg.network.activation_params)
            if closed and same_teacher:
                full, error = population.population_hessian(theta, self.teacher, cfg.network, cfg.data.inputs)
                if np.isfinite(error):
                    free = np.broadcast_to(self.free, theta.shape).ravel()
                    m = theta.shape[0]
                    H = full.reshape(free.size, free.size)[np.ix_(free, free)]
                    H = H + cfg.flow.lam / time_factor(m, cfg.network.scaling, cfg.network.alpha) * np.eye(len(H))
                    return (H + H.T) / 2, error
        return self.differenced_hessian(theta, eps, estimate)

    def _sample_hessian(self, theta) -> np.ndarray:
        """The exact Hessian of J on samples: (1/n) sum_k [loss''_k g_k g_k^T + loss'_k D^2 f_k] plus
        the weight decay, g_k = grad f(x_k), D^2 f_k block-diagonal over neurons,
        s [[a sigma''(z) x x^T, sigma'(z) x], [sigma'(z) x^T, 0]] (sigma'' = 0 between ReLU kinks)."""
        net, flow = self.cfg.network, self.cfg.flow
        m, p = theta.shape
        d, X, y = p - 1, self.X, self.y
        act, loss = activations.activation(net.activation), activations.loss(flow.loss)
        params = net.activation_params
        s = output_scale(m, net.scaling, net.alpha)
        W, a = theta[:, :d], theta[:, d]
        Z = X @ W.T                                                            # (n, m)
        f = s * act.value(Z, params) @ a
        d1, d2 = loss.derivative(f, y) / len(y), loss.second(f, y) / len(y)     # (n,)
        S1, S2 = act.derivative(Z, params), act.second(Z, params)
        G = np.concatenate([s * (a * S1)[:, :, None] * X[:, None, :], s * act.value(Z, params)[:, :, None]],
                           axis=2)                                             # (n, m, d + 1): grad f_k
        G = G[:, :, self.free].reshape(len(y), -1)
        H = G.T @ (d2[:, None] * G)
        free = np.nonzero(self.free)[0]
        for i in range(m):
            block = np.zeros((p, p))
            block[:d, :d] = s * a[i] * (X.T * (d1 * S2[:, i])) @ X
            block[:d, d] = block[d, :d] = s * (d1 * S1[:, i]) @ X
            q = len(free)
            H[i * q:(i + 1) * q, i * q:(i + 1) * q] += block[np.ix_(free, free)]
        H += flow.lam / time_factor(m, net.scaling, net.alpha) * np.eye(len(H))
        return (H + H.T) / 2

    def differenced_hessian(self, theta, eps: float = 1e-5, estimate: bool = True) -> tuple[np.ndarray, float]:
        """(H, error) by central differences of ``gradient`` at steps eps; error: max |H_eps - H_2eps| / 3
        (NaN, and half the cost, with ``estimate=False``)."""
        def at(step):
            cols = []
            for i, k in zip(*np.nonzero(np.broadcast_to(self.free, theta.shape))):
                plus, minus = theta.copy(), theta.copy()
                plus[i, k] += step
                minus[i, k] -= step
                cols.append(((self.gradient(plus) - self.gradient(minus)) / (2 * step))[:, self.free].ravel())
            H = np.array(cols)
            return (H + H.T) / 2
        H = at(eps)
        return H, float(np.max(np.abs(H - at(2 * eps)))) / 3 if estimate else np.nan

    def symmetries(self, theta, tol: float = 1e-8) -> np.ndarray:
        """Directions (S, P) along which J is exactly flat at theta: per-neuron rescaling
        (w, a) -> (c w, a / c^q) of a q-homogeneous activation (both layers trained, lam = 0, no
        energy terms): direction (w, -q a); output weight moved between two neurons whose w agree
        within tol; and for the quadratic activation the rotations (same output sign) and boosts
        (opposite signs) mixing two neurons: f depends on sum_i sign(a_i) (v_i . x)^2, v_i =
        sqrt|a_i| w_i, only, which O(p, q) preserves."""
        net, d = self.cfg.network, self.cfg.network.d
        m, free = theta.shape[0], self.free
        W, a = theta[:, :d], theta[:, d]
        plain = self.cfg.flow.lam == 0 and not energy.active(self.cfg.flow)
        q = activations.activation(net.activation).homogeneity
        out = []

        def direction(entries):
            v = np.zeros(theta.shape)
            for (i, k), value in entries:
                v[i, k] = value
            return v[:, free].ravel()
        if q and net.train == "both" and plain:
            out += [direction([((i, k), W[i, k]) for k in range(d)] + [((i, d), -q * a[i])]) for i in range(m)]
        for i in range(m):
            for j in range(i + 1, m):
                if free[d] and np.linalg.norm(W[i] - W[j]) <= tol * (1 + np.linalg.norm(W[i])):
                    out.append(direction([((i, d), 1.0), ((j, d), -1.0)]))
                if net.activation == "quadratic" and free[0] and plain and a[i] * a[j] != 0:
                    ratio, sign = np.sqrt(abs(a[j] / a[i])), np.sign(a[i] * a[j])
                    out.append(direction([((i, k), ratio * W[j, k]) for k in range(d)]
                                         + [((j, k), -sign * W[i, k] / ratio) for k in range(d)]))
        return np.array(out).reshape(len(out), m * int(free.sum()))


@dataclass(frozen=True)
class CriticalPoint:
    """What ``polish`` found: theta (m, d + 1), |grad J|, Newton iterations, the reduced Hessian's
    spectrum (ascending), how many symmetry directions were factored out, the Hessian's error
    estimate and the label: "strict saddle", "local minimum" or "degenerate"."""

    theta: np.ndarray
    gradient_norm: float
    iterations: int
    spectrum: np.ndarray
    symmetries: int
    hessian_error: float
    label: str


def _complement(S: np.ndarray, P: int) -> np.ndarray:
    """An orthonormal basis (P, P - rank S) of the directions orthogonal to the rows of S."""
    if len(S) == 0:
        return np.eye(P)
    u, s, vt = np.linalg.svd(S, full_matrices=True)
    rank = int(np.sum(s > 1e-10 * s[0]))
    return vt[rank:].T


def particles(landscape: Landscape, theta) -> np.ndarray:
    """theta as a float64 copy, refused by name unless it is finite particles (k, network.d + 1)."""
    if not isinstance(landscape, Landscape):
        raise ConfigError.invalid("landscape", type(landscape).__name__, "a landscape.Landscape (Landscape.of(result))")
    shape = f"(k, network.d + 1 = {landscape.cfg.network.d + 1}) finite numbers"
    try:
        theta = np.array(theta, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError.invalid("theta", type(theta).__name__, shape) from None
    if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] != landscape.cfg.network.d + 1:
        raise ConfigError.invalid("theta.shape", theta.shape, shape)
    if not np.all(np.isfinite(theta)):
        raise ConfigError.invalid("theta", "non-finite values", shape)
    return theta


def polish(landscape: Landscape, theta, gtol: float = 1e-12, max_iter: int = 100) -> CriticalPoint:
    """Levenberg–Marquardt steps on grad J = 0 from theta (m, d + 1), on the complement of the
    symmetry directions: step = -(H^2 + mu I)^-1 H g, mu divided by 10 after a step that lowers
    |grad J| and multiplied by 10 (the step retried) after one that does not; mu -> 0 is Newton's
    step, so the convergence to a non-degenerate critical point (saddle or minimum alike) is
    quadratic. Stops at |grad J| <= gtol, or when |grad J| has not halved in STALL steps (a
    degenerate point, or the ReLU kernel's kink where neurons are parallel); then the reduced
    spectrum and label."""
    theta = particles(landscape, theta)
    free = np.broadcast_to(landscape.free, theta.shape)
    g = landscape.gradient(theta)
    iterations, mu, history = 0, None, [np.linalg.norm(g)]
    while history[-1] > gtol and iterations < max_iter:
        if len(history) > STALL and history[-1] > history[-1 - STALL] / 2:
            break                        # no halving of |grad J| in STALL steps: a degenerate point
        iterations += 1
        H, _ = landscape.hessian(theta, estimate=False)
        N = _complement(landscape.symmetries(theta), H.shape[0])
        Hr, gr = N.T @ H @ N, N.T @ g[free]
        square, rhs = Hr @ Hr, Hr @ gr
        size = max(np.trace(square) / len(square), np.finfo(float).tiny)
        mu = 1e-6 * size if mu is None else mu
        for _ in range(40):
            trial = theta.copy()
            trial[free] -= N @ np.linalg.solve(square + mu * np.eye(len(square)), rhs)
            g_trial = landscape.gradient(trial)
            if np.linalg.norm(g_trial) < np.linalg.norm(g):
                mu = max(mu / 10, 1e-14 * size)          # keeps square + mu I invertible in float64
                break
            mu *= 10
        else:
            break
        theta, g = trial, g_trial
        history.append(np.linalg.norm(g))
    H, error = landscape.hessian(theta)
    S = landscape.symmetries(theta)
    N = _complement(S, H.shape[0])
    spectrum = np.linalg.eigvalsh(N.T @ H @ N)
    tol = max(1e-8 * np.max(np.abs(spectrum)), 10 * error)
    label = "strict saddle" if spectrum[0] < -tol else "local minimum" if spectrum[0] > tol else "degenerate"
    return CriticalPoint(theta, float(np.linalg.norm(g)), iterations, spectrum, H.shape[0] - N.shape[1], error, label)


@dataclass(frozen=True)
class Certificate:
    """min_psi over the unit sphere of the trained coordinates; ``direction`` (d + 1,) its
    minimiser (the frozen coordinates: the particle group's fixed value); ``mean_psi`` =
    integral psi dmu (0 at a critical point); ``gap_bound``: J(mu) - min J <= gap_bound (lam > 0 and
    psi's risk part homogeneous of degree 1 or 2), else None; ``certified``: min_psi >= -tol * scale
    (scale = C |loss'(0, y)|, psi's size at the zero network) and mean_psi <= tol J(0) (then
    J(mu) - min J <= mean_psi), or where psi is not homogeneous (lam > 0, degree 1) gap_bound <= tol J(0)."""

    min_psi: float
    direction: np.ndarray
    certified: bool
    scale: float
    mean_psi: float
    gap_bound: float | None


def first_variation(landscape: Landscape, theta, points) -> np.ndarray:
    """psi at points (K, d + 1) for the measure of the particles theta (m, d + 1), shape (K,)."""
    cfg = landscape.cfg
    net, d = cfg.network, cfg.network.d
    m = theta.shape[0]
    C = output_scale(m, net.scaling, net.alpha) * m
    params = net.activation_params
    if landscape.exact:
        teacher = landscape.teacher
        moment = population.sphere_moment(net.activation, net.activation, d, cfg.data.inputs)
        moment_t = population.sphere_moment(net.activation, cfg.data.teacher_activation, d, cfg.data.inputs)
        Ks = population.kernel_matrices(net.activation, points[:, :d], theta[:, :d], params)[0] / moment
        Kt = population.kernel_matrices(net.activation, points[:, :d], teacher[:, :d], params,
                                        other=cfg.data.teacher_activation,
                                        other_params=cfg.teacher_params)[0] / moment_t
        correlation = (C / m) * Ks @ theta[:, d] - Kt @ teacher[:, d]            # E[(f - f*) sigma(w . x)]
    else:
        r = twolayer.loss_derivative(cfg.flow.loss, twolayer.predict(theta, landscape.X, net), landscape.y)
        correlation = twolayer.activation(net.activation, points[:, :d] @ landscape.X.T, params) @ r / len(r)
    masked = points * landscape.free
    return C * points[:, d] * correlation + C ** 2 * cfg.flow.lam * np.sum(masked * masked, axis=1) / 2


def _sphere_design(dim: int, count: int) -> np.ndarray:
    """count points (count, dim) spread over the unit sphere: a scrambled Sobol sequence (seed 0)
    through the Gaussian quantile, normalised; the same points every time."""
    from scipy.stats import norm, qmc

    u = qmc.Sobol(dim, scramble=True, seed=0).random(count)
    z = norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def certificate(result_or_landscape, theta=None, tol: float = 1e-6) -> Certificate:
    """The global-optimality certificate of the particles theta (default: the result's final
    ones), for a positively homogeneous activation and no energy terms (see the module)."""
    land = (result_or_landscape if isinstance(result_or_landscape, Landscape)
            else Landscape.of(result_or_landscape))
    theta = particles(land, result_or_landscape.theta if theta is None else theta)
    cfg = land.cfg
    net, d = cfg.network, cfg.network.d
    q = activations.activation(net.activation).homogeneity
    if q is None:
        raise ConfigError.invalid("network.activation", net.activation, "a positively homogeneous activation "
                                  "(relu, leaky_relu, linear, quadratic) for the certificate")
    if energy.active(cfg.flow):
        raise ConfigError.invalid("flow.potential / flow.interaction", "set", "none for the certificate (psi "
                                  "would depend on mu through the interaction)")
    if cfg.flow.lam > 0 and net.train == "both" and q > 1:
        raise ConfigError.invalid("flow.lam", cfg.flow.lam, f"0 for the certificate of a {net.activation} network "
                                  f"with both layers trained (psi's risk part is {q + 1}-homogeneous, the weight "
                                  "decay 2-homogeneous: far-out neurons of vanishing mass lower J without bound, "
                                  "so no measure is certified)")
    free = land.free
    m = theta.shape[0]
    C = output_scale(m, net.scaling, net.alpha) * m
    if net.train == "output":            # random features: psi(a; w_i) = a C g_i + C^2 lam a^2 / 2, per feature
        corr = first_variation(land, theta, np.hstack([theta[:, :d], np.ones((m, 1))])) - (
            C ** 2 * cfg.flow.lam / 2)
        candidates = [np.hstack([theta[:, :d], sign * np.ones((m, 1))]) for sign in (1.0, -1.0)]
        values = np.array([first_variation(land, theta, c) for c in candidates])
        k = np.unravel_index(np.argmin(values), values.shape)
        min_psi, direction = float(values[k]), candidates[k[0]][k[1]]
        infimum = (-corr ** 2 / (2 * C ** 2 * cfg.flow.lam) if cfg.flow.lam > 0 else None)
        homogeneity = 1
    else:
        from scipy.optimize import minimize

        groups = [None] if net.train == "both" else sorted(set(theta[:, d]))
        best = (np.inf, None)
        infimum = [] if cfg.flow.lam > 0 else None
        design = _sphere_design(int(free.sum()), SPHERE_POINTS)
        for a in groups:
            def lift(u, a=a):
                u = np.atleast_2d(u) / np.linalg.norm(np.atleast_2d(u), axis=1, keepdims=True)
                return u if a is None else np.hstack([u, np.full((len(u), 1), a)])
            values = first_variation(land, theta, lift(design))

            def psi_and_gradient(u, lift=lift):        # central differences, all 2 dim points in one call
                h = STEP * max(1.0, float(np.linalg.norm(u)))
                steps = np.vstack([np.zeros(len(u)), h * np.eye(len(u)), -h * np.eye(len(u))])
                psi = first_variation(land, theta, lift(u + steps))
                return float(psi[0]), (psi[1:len(u) + 1] - psi[len(u) + 1:]) / (2 * h)
            for start in design[np.argsort(values)[:REFINED]]:
                res = minimize(psi_and_gradient, start, method="BFGS", jac=True, options={"gtol": 1e-12})
                point = lift(res.x)[0]
                value = float(first_variation(land, theta, point[None])[0])
                if value < best[0]:
                    best = (value, point)
            group_min = min(best[0], float(values.min()))
            if infimum is not None:
                infimum.append((np.mean(theta[:, d] == a) if a is not None else 1.0, group_min))
        min_psi, direction = best
        homogeneity = q + (net.train == "both")
    psi_support = first_variation(land, theta, theta)
    mean_psi = float(np.mean(psi_support))
    if land.exact:
        norm_y = np.sqrt(2 * population.population_risk(theta * np.array([1.0] * d + [0.0]), land.teacher, net,
                                                        cfg.data.teacher_activation, inputs=cfg.data.inputs,
                                                        teacher_params=cfg.teacher_params))
    else:
        norm_y = float(np.sqrt(np.mean(twolayer.loss_derivative(cfg.flow.loss, np.zeros(len(land.y)), land.y) ** 2)))
    scale = C * norm_y
    gap = None
    if cfg.flow.lam > 0:
        if net.train == "output":
            gap = float(np.mean(psi_support - infimum))
        elif homogeneity == 1:
            decay = C ** 2 * cfg.flow.lam          # psi(r u) = r (psi(u) - decay / 2) + decay r^2 / 2, r >= 0
            gap = mean_psi + sum(mass * min(0.0, value - decay / 2) ** 2 for mass, value in infimum) / (2 * decay)
        elif homogeneity == 2:
            gap = mean_psi - min(0.0, min_psi) * 2 * land.objective(theta) / (C ** 2 * cfg.flow.lam)
    zero = scale ** 2 / (2 * C ** 2)                 # J at the zero network (squared loss)
    if gap is not None and (net.train != "both" or homogeneity != 2):
        certified = gap <= tol * zero
    else:                  # psi >= 0 on the sphere bounds J(mu) - min J by integral psi dmu (0 at critical points)
        certified = min_psi >= -tol * scale and mean_psi <= tol * zero
    return Certificate(min_psi, direction, bool(certified), scale, mean_psi, gap)


VERDICTS = {"local minimum": "trapped", "strict saddle": "saddle", "degenerate": "degenerate"}
CRITICAL = 1e-10          # |grad J| at which a polished point counts as critical


def verdict(result, tol: float = 1e-6) -> tuple[str, CriticalPoint, Certificate]:
    """Where a run stopped: "global" if ``certificate`` certifies its final particles or the
    critical point ``polish`` reaches from them; else, by that point's Hessian, "trapped" (a local
    minimum), "saddle" or "degenerate", or "unresolved" when the polish did not reach
    |grad J| <= CRITICAL. Returns (label, the CriticalPoint (unpolished for a run certified where
    it stopped), the Certificate)."""
    land = Landscape.of(result)
    cert = certificate(land, result.theta, tol)
    if cert.certified:                       # no polish needed: the spectrum where the run stopped
        return "global", polish(land, result.theta, max_iter=0), cert
    point = polish(land, result.theta)
    cert = certificate(land, point.theta, tol)
    if cert.certified:
        return "global", point, cert
    return (VERDICTS[point.label] if point.gradient_norm <= CRITICAL else "unresolved"), point, cert
