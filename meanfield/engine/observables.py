"""What is recorded along a run: one registry of observables (``OBSERVABLES``), shared by every
system. At a record a system gives a view of its state (``view(state, t)``), whose quantities are
each computed once, on first use; an observable is recorded for every system whose view has the
quantities it ``needs``, and a diagnostic only when named in ``record.diagnostics``. The
diagnostics' names, costs and systems are the leaf ``model.diagnostics``, which the config
validates against (a test checks that it and this registry agree).

- ``train_risk``, ``test_risk``: mean loss on the training / test samples (test: NaN if none);
  with ``data.kind = "population"`` both are the exact risk E[(f - f*)^2]/2 for x ~ N(0, I), and
  the reduced limit's is its population risk;
- ``objective``: the Lyapunov function J = R + lam alpha^2 m s(m)^2 sum_i |theta_i|^2 / 2 of the
  noiseless flow (see ``twolayer.objective``);
- ``displacement_mean``, ``displacement_max``: mean (weighted by omega for weighted particles)
  and max over i of |theta_i(t) - theta_i(0)|;
- ``balance_drift``: max_i |(a_i^2 - |w_i|^2)(t) - (a_i^2 - |w_i|^2)(0)|, conserved by the
  noiseless, unregularised flow of a 1-homogeneous activation (ReLU, leaky ReLU, linear);
- ``predictor_norm``: sqrt(mean_j f(x_j)^2) on the training inputs (sqrt(E f(x)^2) exactly on
  the population);
- deep networks: ``weight_change_l{l}`` = ||w_l(t) - w_l(0)||_F / ||w_l(0)||_F for each layer
  l = 1 .. L + 1 (L + 1: the read-out) and ``feature_update_l{l}``, the root mean square over
  training inputs and units of h^(l)(t) - h^(l)(0) (the "coordinate check").

Diagnostics, recorded when named in ``record.diagnostics``:
- ``lambda_min``, ``lambda_max``: smallest and largest eigenvalues of the tangent kernel H(theta_t) on
  the training inputs;
- ``kernel_change``: ||H(t) - H(0)||_F / ||H(0)||_F (deep networks: and ``kernel_change_l{l}``
  per layer);
- ``pattern_flips``: fraction of (neuron, training input) pairs whose sign of w_i . x_j differs
  from initialisation (the ReLU activation patterns);
- ``tangent_gap``: sqrt(mean_j (f(x_j) - f_tangent(x_j))^2), f_tangent the tangent model at theta_0
  trained in lockstep (same samples, same noise);
- ``masses``: total_mass, negative_mass and cone_mass of the 2-homogeneous projection in the
  predictor's normalisation (see ``measures.mass_summary``; cones of ``record.cone_angle``);
- ``free_energy``: the k-NN entropy of the particles (trained coordinates) and the free energy
  F = J time_factor / m - T H (see ``langevin.py``);
- ``gibbs``: gibbs_gap = T KL(mu || p_mu), the distance to the proximal Gibbs measure, an upper
  bound on F(mu) - min F;
- ``margins`` (labels ±1): min_margin = min_j y_j f(x_j); normalized_margin = min_margin /
  (alpha s(m) sum_i |theta_i|^2), i.e. divided by (1/m) sum_i |theta_i|^2 in the mean-field
  normalisation, invariant to theta -> c theta for a 2-homogeneous network; train_error and
  test_error, the fractions of y f(x) <= 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from ..model import langevin, measures, ntk, population, twolayer
from .problem import Problem


@dataclass(frozen=True)
class Observable:
    """An entry of the registry: ``compute(view) -> {name: value}`` for every view that has the
    quantities ``needs``; a ``diagnostic`` only when named in ``record.diagnostics``."""

    name: str
    needs: tuple
    compute: Callable
    diagnostic: bool = False

    def applies(self, view) -> bool:
        return all(hasattr(type(view), need) for need in self.needs)


def _values(*names) -> Callable:
    return lambda at: {name: getattr(at, name) for name in names}


def _per_layer(name: str, quantity: str) -> Callable:
    return lambda at: {f"{name}_l{l}": value for l, value in enumerate(getattr(at, quantity), start=1)}


def _relative_change(A, A0) -> float:
    return float(np.linalg.norm(A - A0) / np.linalg.norm(A0))


def _kernel_change(at) -> dict:
    layers = getattr(at, "layer_kernels", None)
    out = {} if layers is None else {f"kernel_change_l{l}": _relative_change(H, H0)
                                     for l, (H, H0) in enumerate(zip(layers, at.layer_kernels0), start=1)}
    return {**out, "kernel_change": _relative_change(at.kernel, at.kernel0)}


OBSERVABLES = (
    Observable("train_risk", ("train_risk",), _values("train_risk")),
    Observable("test_risk", ("test_risk",), _values("test_risk")),
    Observable("objective", ("objective",), _values("objective")),
    Observable("displacement", ("displacement_mean", "displacement_max"),
               _values("displacement_mean", "displacement_max")),
    Observable("balance_drift", ("balance_drift",), _values("balance_drift")),
    Observable("predictor_norm", ("predictor_norm",), _values("predictor_norm")),
    Observable("weight_change", ("weight_changes",), _per_layer("weight_change", "weight_changes")),
    Observable("feature_update", ("feature_updates",), _per_layer("feature_update", "feature_updates")),
    Observable("lambda_min", ("kernel",), lambda at: {"lambda_min": ntk.lambda_min(at.kernel)}, True),
    Observable("lambda_max", ("kernel",), lambda at: {"lambda_max": ntk.lambda_max(at.kernel)}, True),
    Observable("kernel_change", ("kernel", "kernel0"), _kernel_change, True),
    Observable("pattern_flips", ("pattern_flips",), _values("pattern_flips"), True),
    Observable("masses", ("masses",), lambda at: at.masses, True),
    Observable("free_energy", ("free_energy",), lambda at: at.free_energy, True),
    Observable("gibbs", ("gibbs_gap",), _values("gibbs_gap"), True),
    Observable("margins", ("margins",), lambda at: at.margins, True),
    Observable("tangent_gap", ("tangent_gap",), _values("tangent_gap"), True),
)
REGISTRY = {o.name: o for o in OBSERVABLES}


def observe(view, diagnostics=()) -> dict[str, float]:
    """Every observable of the registry that applies to ``view``, diagnostics only if named."""
    out = {}
    for observable in OBSERVABLES:
        if (not observable.diagnostic or observable.name in diagnostics) and observable.applies(view):
            out.update(observable.compute(view))
    return out


def pattern_flips(X: np.ndarray, theta: np.ndarray, theta0: np.ndarray) -> float:
    """Fraction of (input, neuron) pairs whose sign of w_i . x_j differs between theta0 and theta,
    over blocks of ntk.NEURON_BLOCK neurons (never an n x m array)."""
    d = X.shape[1]
    flips = 0
    for lo in range(0, theta.shape[0], ntk.NEURON_BLOCK):
        hi = lo + ntk.NEURON_BLOCK
        flips += np.count_nonzero((X @ theta[lo:hi, :d].T > 0) != (X @ theta0[lo:hi, :d].T > 0))
    return flips / (X.shape[0] * theta.shape[0])


def balance(theta: np.ndarray) -> np.ndarray:
    """a_i^2 - |w_i|^2 for every particle, shape (m,)."""
    return theta[:, -1] ** 2 - np.sum(theta[:, :-1] ** 2, axis=1)


def margins(predictions: np.ndarray, y: np.ndarray, theta: np.ndarray, out_scale: float) -> dict:
    """min_margin, normalized_margin and train_error of predictions f(x_j) (n,) for labels y = ±1."""
    products = y * predictions
    smallest = float(np.min(products))
    return {"min_margin": smallest,
            "normalized_margin": smallest / (out_scale * float(np.sum(theta ** 2))),
            "train_error": float(np.mean(products <= 0))}


class TwoLayerView:
    """A two-layer run's particles theta (m, d + 1) at one record time, and the quantities its
    observables read, each computed once, on first use, in float64 (float32 particles are widened
    exactly). theta_tangent: the lockstep tangent model's particles (or None)."""

    def __init__(self, problem: Problem, theta: np.ndarray, theta_tangent, time: float):
        self.problem, self.theta_tangent, self.time = problem, theta_tangent, time
        self.theta = np.asarray(theta, np.float64)
        self.cfg = problem.cfg

    @cached_property
    def train_pred(self) -> np.ndarray:
        return self.problem.predict(self.theta, self.problem.X, self.problem.f0)

    @cached_property
    def train_risk(self) -> float:
        problem = self.problem
        if problem.exact:
            net = self.cfg.network
            return population.population_risk(self.theta, problem.teacher, net, self.cfg.data.teacher_activation,
                                              compiled=True, inputs=self.cfg.data.inputs, weights=problem.weights,
                                              teacher_params=self.cfg.teacher_params)
        return float(np.mean(twolayer.loss(self.cfg.flow.loss, self.train_pred, problem.y))) if len(problem.y) else 0.0

    @cached_property
    def test_risk(self) -> float:
        p = self.problem
        if p.exact:
            return self.train_risk
        return p.risk(self.theta, p.X_test, p.y_test, p.f0_test) if len(p.y_test) else float("nan")

    @cached_property
    def objective(self) -> float:
        return self.train_risk + twolayer.penalty(self.theta, self.cfg.network, self.cfg.flow, self.problem.weights)

    @cached_property
    def _moved(self) -> np.ndarray:
        return np.linalg.norm(self.theta - self.problem.theta0, axis=1)

    @property
    def displacement_mean(self) -> float:
        weights = self.problem.weights
        return float(self._moved.mean() if weights is None else weights @ self._moved)

    @property
    def displacement_max(self) -> float:
        return float(self._moved.max())

    @property
    def balance_drift(self) -> float:
        return float(np.abs(balance(self.theta) - balance(self.problem.theta0)).max())

    @cached_property
    def predictor_norm(self) -> float:
        if self.problem.exact:
            return population.predictor_norm(self.theta, self.cfg.network, compiled=True, inputs=self.cfg.data.inputs,
                                             weights=self.problem.weights)
        return float(np.sqrt(np.mean(self.train_pred ** 2))) if len(self.train_pred) else 0.0

    @cached_property
    def kernel(self) -> np.ndarray:
        return self.problem.kernel(self.theta)

    @property
    def kernel0(self) -> np.ndarray:
        return self.problem.kernel0

    @property
    def pattern_flips(self) -> float:
        return pattern_flips(self.problem.X, self.theta, self.problem.theta0)

    @property
    def masses(self) -> dict:
        return measures.mass_summary(self.theta, self.problem.teacher, self.cfg.record.cone_angle,
                                     self.problem.out_scale)

    @cached_property
    def temperature(self) -> float:
        return float(langevin.temperature(self.cfg.flow, self.time))

    @property
    def free_energy(self) -> dict:
        return langevin.free_energy(self.problem, self.theta[:, self.problem.mask > 0], self.objective,
                                    self.temperature)

    @property
    def gibbs_gap(self) -> float:
        residuals = twolayer.loss_derivative(self.cfg.flow.loss, self.train_pred, self.problem.y)
        return langevin.gibbs_gap(self.problem, self.theta, residuals, self.temperature)

    @property
    def margins(self) -> dict:
        p = self.problem
        test_error = (float(np.mean(p.y_test * p.predict(self.theta, p.X_test, p.f0_test) <= 0)) if len(p.y_test)
                      else float("nan"))
        return {**margins(self.train_pred, p.y, self.theta, p.out_scale), "test_error": test_error}

    @property
    def tangent_gap(self) -> float:
        p = self.problem
        gap = self.train_pred - p.predict_tangent(self.theta_tangent, p.X, p.f0)
        return float(np.sqrt(np.mean(gap ** 2)))


def compute(problem: Problem, theta: np.ndarray, theta_tangent=None, time: float = 0.0) -> dict[str, float]:
    """The observables of a two-layer run at particles ``theta`` at ``time`` (``observe``)."""
    return observe(TwoLayerView(problem, theta, theta_tangent, time), problem.cfg.record.diagnostics)
