"""Error-controlled integration of a deterministic flow y' = v(y) by any embedded Runge–Kutta pair
of ``model.integrators`` (``dopri5`` by default, alias ``adaptive``; ``bs3``, ``tsit5``): the
method is apart from the step-size controller below.

Why Dormand–Prince 5(4) by default: its 5th-order solution reaches the tolerances of the
closed-form checks (1e-10) in few steps, its last stage is the next step's first (6 drifts per
step), and it is the pair of ode45 / scipy's RK45, which users can compare against.
Bogacki–Shampine 3(2) is cheaper per step but needs (rtol)^(-1/3) steps instead of (rtol)^(-1/5):
at rtol = 1e-8 about 10x more; Tsitouras 5(4) has smaller error constants than DP5.

A step of size h from y gives the solution y_new and the embedded one y_hat;

    err = RMS over the trained coordinates of (y_new - y_hat) / (atol + rtol max(|y|, |y_new|)),

and the step is accepted when err <= 1 (and y_new is finite). The next step (Hairer, Nørsett &
Wanner, Solving ODEs I, II.4, and Gustafsson's PI controller with beta = 0.04):

    h_new = h * clip(0.9 err^-(1/(q + 1) - 0.75 beta) err_prev^beta, 1/5, 10),

q the embedded solution's order, not larger than h after a rejection, and at most
0.9 * S / rho, where S is the method's stability interval on the negative real axis (stored with
the method) and rho = |v(Y_s) - v(Y_s-1)| / |Y_s - Y_s-1| estimates the spectral radius of the
drift's Jacobian from its last two stages: a gradient flow's Jacobian (- c Hessian) has a real
spectrum. So steps stay stable, a trial that is not finite is rejected, and no accepted step can
blow up. Steps land exactly on the requested times: the step before one is shortened, and the
controller's proposal is kept across it.

The global error of a smooth flow is then proportional to the tolerance (measured in
tests/test_adaptive.py). ReLU on samples is not smooth: its drift jumps where a sample crosses a
neuron's hyperplane and chatters where the flow slides along one, every method drops to order 1,
and error control alone shrinks the step towards round-off; ``dt_floor`` bounds it from below
(steps taken there above the tolerance are counted as forced; docs/conventions.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..model.integrators import DOPRI5, Integrator

SAFETY = 0.9
GROWTH = (0.2, 10.0)            # the step changes by at least 1/5 and at most 10x per step
BETA = 0.04                     # PI controller: weight of the previous step's error
SMALLEST = 1e-13                # a step below SMALLEST * max(1, |t|) stalls the run
STALL_ATTEMPTS = 2000           # ... and so do this many steps that advance t by under STALL_PROGRESS of the gap
STALL_PROGRESS = 1e-4
BLOWUP = 1e8                    # particles this many times larger than at t0 (and than 1): the flow diverges
CHECK_EVERY = 64                # accepted steps between two divergence checks


class Stall(str):
    """Why the step size stalled (a discontinuous drift, or a tolerance the flow cannot meet): the
    controller refuses to go on, naming flow.dt_floor (not a divergence of the flow)."""


@dataclass
class Controller:
    """The step-size controller's state: the next step to try, the last accepted error, and
    counts (what a checkpoint saves, ``state``); ``fsal`` is the drift at the current point."""

    dt: float
    err_prev: float = 1e-4
    rejected_last: bool = False
    accepted: int = 0
    rejected: int = 0
    dt_min: float = math.inf          # over the steps the controller chose (not those shortened
    dt_max: float = 0.0               # to land on a record time)
    evaluations: int = 0
    forced: int = 0                   # steps at the floor accepted above the tolerance
    fsal: np.ndarray | None = field(default=None, repr=False, compare=False)

    def state(self) -> dict:
        """The JSON-able state (without ``fsal``, which a resumed run recomputes, to the same bits)."""
        return {"dt": self.dt, "err_prev": self.err_prev, "rejected_last": self.rejected_last,
                "accepted": self.accepted, "rejected": self.rejected, "evaluations": self.evaluations,
                "forced": self.forced,
                "dt_min": None if math.isinf(self.dt_min) else self.dt_min, "dt_max": self.dt_max}

    @classmethod
    def from_state(cls, state: dict) -> "Controller":
        return cls(**{**state, "dt_min": math.inf if state["dt_min"] is None else state["dt_min"]})

    def stats(self) -> dict:
        """What ``Result.stats`` reports: ``steps`` (accepted), ``rejected_steps``, ``forced_steps``
        (accepted at flow.dt_floor above the tolerance), the smallest and largest step the controller
        chose, and the drift evaluations."""
        return {"steps": self.accepted, "rejected_steps": self.rejected, "forced_steps": self.forced,
                "dt_min": None if math.isinf(self.dt_min) else self.dt_min,
                "dt_max": self.dt_max or None, "drift_evaluations": self.evaluations}


def exponent(method: Integrator) -> float:
    """The PI controller's error exponent, 1 / (q + 1) - 0.75 beta for an embedded solution of order q."""
    return 1 / (method.embedded_order + 1) - 0.75 * BETA


def advance(y: np.ndarray, t0: float, t1: float, drift: Callable[[np.ndarray], np.ndarray], ctrl: Controller,
            rtol: float, atol: float, counted=None, K=None, dt_floor: float = 0.0, method: Integrator = DOPRI5,
            check: Callable[[np.ndarray], str] | None = None) -> str:
    """Integrate y' = drift(y) from t0 to t1 by the embedded pair ``method``, moving y in place (any
    shape); ``counted``: a boolean array broadcasting to y, the coordinates the error norm counts
    (the trained ones; all if None); K: a work array (stages,) + y.shape for the stage drifts, or
    None; dt_floor: the smallest step, taken (and counted as forced) even when its error exceeds
    the tolerance (0: none); ``check``: y -> "" or why the flow diverges, called every CHECK_EVERY
    accepted steps. Returns "", or a ``Stall`` when the step stalls (below SMALLEST * max(1, |t|), or
    STALL_ATTEMPTS steps that advance t by under STALL_PROGRESS of the gap), or why the flow diverges
    (the particles grew BLOWUP-fold, or ``check`` said so)."""
    a, b = method.tableau
    e = b - np.array(method.embedded)
    power, stable = exponent(method), SAFETY * method.stability
    counted = np.ones(y.shape, dtype=bool) if counted is None else np.broadcast_to(counted, y.shape)
    if ctrl.fsal is None:
        ctrl.fsal, ctrl.evaluations = drift(y), ctrl.evaluations + 1
    K = np.empty((len(b),) + y.shape) if K is None else K
    t, t1 = float(t0), float(t1)
    window, attempts, limit = t, 0, BLOWUP * max(1.0, float(np.max(np.abs(y))))
    while t < t1:
        last = t + 1.01 * ctrl.dt >= t1
        h = t1 - t if last else ctrl.dt
        if h < SMALLEST * max(1.0, abs(t)):
            return Stall(f"the adaptive step fell to {h:.3g} at t = {t:.6g}: the flow cannot be followed to "
                         f"rtol = {rtol:g}, atol = {atol:g} (not finite, too stiff, or a discontinuous drift: "
                         "set flow.dt_floor)")
        attempts += 1
        if attempts == STALL_ATTEMPTS:
            if t - window < STALL_PROGRESS * (t1 - t0):
                return Stall(f"the adaptive step stalled at t = {t:.6g}: {STALL_ATTEMPTS} steps advanced t by "
                             f"{t - window:.3g} (steps of about {ctrl.dt:.3g}; a discontinuous drift, such as ReLU "
                             "on samples, shrinks them towards round-off): set flow.dt_floor, e.g. "
                             f"{1e-3 * (t1 - t0):.3g}")
            window, attempts = t, 0
        K[0] = ctrl.fsal
        points = [y]
        for i in range(1, len(b)):
            point = y.copy()
            for j in range(i):
                if a[i, j]:
                    point += (h * a[i, j]) * K[j]
            points.append(point)
            K[i] = drift(point)
        if method.fsal:
            new = points[-1]                          # the last stage's point is the new solution
            evaluations = len(b) - 1
        else:
            new = y + h * np.tensordot(b, K, axes=1)
            evaluations = len(b)
        ctrl.evaluations += evaluations
        err = _error(h * np.tensordot(e, K, axes=1), y, new, rtol, atol, counted)
        # at the floor: a step of dt_floor, or the step that lands on t1 once the controller is at the
        # floor (up to 1.01 dt_floor long: never forced, it was rejected forever before a record)
        at_floor = h <= dt_floor or (last and ctrl.dt <= dt_floor)
        forced = err > 1.0 and at_floor
        if (err <= 1.0 or forced) and math.isfinite(err) and np.all(np.isfinite(new)):
            ctrl.forced += forced
            proposal = h / float(np.clip(err ** power / ctrl.err_prev ** BETA / SAFETY, 1 / GROWTH[1], 1 / GROWTH[0]))
            if ctrl.rejected_last:
                proposal = min(proposal, h)
            step = float(np.linalg.norm(points[-1] - points[-2]))
            rho = float(np.linalg.norm(K[-1] - K[-2])) / step if step > 0 else 0.0
            if rho > 0:
                proposal = min(proposal, stable / rho)
            shortened = last and h < ctrl.dt
            if not shortened:
                ctrl.dt_min, ctrl.dt_max = min(ctrl.dt_min, h), max(ctrl.dt_max, h)
            y[...] = new
            t = t1 if last else t + h
            if ctrl.accepted % CHECK_EVERY == 0:
                if float(np.max(np.abs(y))) > limit:
                    return (f"the particles grew more than {BLOWUP:.0e}-fold (max |theta| = {np.max(np.abs(y)):.3g}) "
                            f"by t = {t:.6g}: the flow diverges")
                why = check(y) if check is not None else ""
                if why:
                    return f"{why} at t = {t:.6g}"
            ctrl.fsal = K[-1].copy() if method.fsal else drift(y)
            ctrl.evaluations += not method.fsal
            ctrl.dt = max(proposal, ctrl.dt if shortened else 0.0, dt_floor)
            ctrl.err_prev, ctrl.rejected_last, ctrl.accepted = max(err, 1e-4), False, ctrl.accepted + 1
        elif at_floor:
            return f"the drift is not finite within flow.dt_floor = {dt_floor:g} of t = {t:.6g}"
        else:
            shrink = GROWTH[0] if not math.isfinite(err) else max(GROWTH[0], SAFETY / err ** power)
            ctrl.dt, ctrl.rejected_last, ctrl.rejected = max(h * min(shrink, 1.0), dt_floor), True, ctrl.rejected + 1
    return ""


def _error(delta, y, new, rtol, atol, counted) -> float:
    """RMS of delta / (atol + rtol max(|y|, |new|)) over the counted coordinates (inf if not finite)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = delta[counted] / (atol + rtol * np.maximum(np.abs(y[counted]), np.abs(new[counted])))
        err = float(np.sqrt(np.mean(np.square(scaled)))) if scaled.size else 0.0
    return err if math.isfinite(err) else math.inf


def copied(controllers: dict | None) -> dict | None:
    """Copies of the controllers (what a checkpoint of the state keeps), or None."""
    return None if controllers is None else {k: Controller.from_state(c.state()) for k, c in controllers.items()}

