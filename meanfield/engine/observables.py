"""What is recorded along a run: every observable is a function of the particles at a record
time, and the diagnostics are a registry (``DIAGNOSTICS``: name, cost, whether it needs training
samples, and the function). ``record.diagnostics`` is validated from it. Quantities several
observables share (predictions, risk, objective, tangent kernel) are computed once per record
(``Record``).

- ``train_risk``, ``test_risk``: mean loss on the training / test samples (test: NaN if none);
- ``objective``: the Lyapunov function J = R + lam alpha^2 m s(m)^2 sum_i |theta_i|^2 / 2 of the
  noiseless flow (see ``twolayer.objective``);
- ``displacement_mean``, ``displacement_max``: mean (weighted by omega for weighted particles)
  and max over i of |theta_i(t) - theta_i(0)|;
- ``balance_drift``: max_i |(a_i^2 - |w_i|^2)(t) - (a_i^2 - |w_i|^2)(0)|, conserved by the
  noiseless, unregularised flow of a 1-homogeneous activation (ReLU, leaky ReLU, linear);
- ``predictor_norm``: sqrt(mean_j f(x_j)^2) on the training inputs.

With ``data.kind = "population"`` the risks are exact: train_risk = test_risk = E[(f - f*)^2]/2
for x ~ N(0, I), and predictor_norm = sqrt(E f(x)^2).

Lazy-regime diagnostics, recorded when named in ``record.diagnostics`` (each costs O(n^2 m)):
- ``lambda_min``: smallest eigenvalue of the tangent kernel H(theta_t) on the training inputs;
- ``kernel_change``: ||H(t) - H(0)||_F / ||H(0)||_F;
- ``pattern_flips``: fraction of (neuron, training input) pairs whose sign of w_i . x_j differs
  from initialisation (the ReLU activation patterns);
- ``tangent_gap``: sqrt(mean_j (f(x_j) - f_lin(x_j))^2), f_lin the tangent model at theta_0
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

NAMES = ("train_risk", "test_risk", "objective", "displacement_mean", "displacement_max",
         "balance_drift", "predictor_norm")


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


class Record:
    """The particles theta (m, d + 1) at one record time, and what the observables share,
    each computed once, on first use. theta_tangent: the lockstep tangent model's particles."""

    def __init__(self, problem: Problem, theta: np.ndarray, theta_tangent, time: float):
        self.problem, self.theta, self.theta_tangent, self.time = problem, theta, theta_tangent, time
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
                                              compiled=True, inputs=self.cfg.data.inputs, weights=problem.weights)
        return float(np.mean(twolayer.loss(self.cfg.flow.loss, self.train_pred, problem.y))) if len(problem.y) else 0.0

    @cached_property
    def objective(self) -> float:
        return self.train_risk + twolayer.penalty(self.theta, self.cfg.network, self.cfg.flow, self.problem.weights)

    @cached_property
    def kernel(self) -> np.ndarray:
        return self.problem.kernel(self.theta)

    @cached_property
    def temperature(self) -> float:
        return float(langevin.temperature(self.cfg.flow, self.time))


def _base(at: Record) -> dict:
    problem, theta = at.problem, at.theta
    if problem.exact:
        test_risk = at.train_risk
        norm = population.predictor_norm(theta, at.cfg.network, compiled=True, inputs=at.cfg.data.inputs,
                                         weights=problem.weights)
    else:
        test_risk = (problem.risk(theta, problem.X_test, problem.y_test, problem.f0_test)
                     if len(problem.y_test) else float("nan"))
        norm = float(np.sqrt(np.mean(at.train_pred ** 2))) if len(at.train_pred) else 0.0
    moved = np.linalg.norm(theta - problem.theta0, axis=1)
    return {"train_risk": at.train_risk, "test_risk": test_risk, "objective": at.objective,
            "displacement_mean": float(moved.mean() if problem.weights is None else problem.weights @ moved), "displacement_max": float(moved.max()),
            "balance_drift": float(np.abs(balance(theta) - balance(problem.theta0)).max()),
            "predictor_norm": norm}


def _test_error(at: Record) -> float:
    p = at.problem
    if not len(p.y_test):
        return float("nan")
    return float(np.mean(p.y_test * p.predict(at.theta, p.X_test, p.f0_test) <= 0))


def _tangent_gap(at: Record) -> float:
    gap = at.train_pred - at.problem.predict_tangent(at.theta_tangent, at.problem.X, at.problem.f0)
    return float(np.sqrt(np.mean(gap ** 2)))


@dataclass(frozen=True)
class Diagnostic:
    """A diagnostic named in ``record.diagnostics``: ``compute(record) -> {name: value}``."""

    name: str
    compute: Callable[[Record], dict]
    cost: str                    # per record
    samples: bool                # needs training samples (not with data.kind = "population")


DIAGNOSTICS = {d.name: d for d in (
    Diagnostic("lambda_min", lambda at: {"lambda_min": ntk.lambda_min(at.kernel)}, "O(n^2 m d + n^3)", True),
    Diagnostic("kernel_change", lambda at: {"kernel_change": float(
        np.linalg.norm(at.kernel - at.problem.kernel0) / np.linalg.norm(at.problem.kernel0))}, "O(n^2 m d)", True),
    Diagnostic("pattern_flips", lambda at: {"pattern_flips": pattern_flips(at.problem.X, at.theta, at.problem.theta0)},
               "O(n m d)", True),
    Diagnostic("masses", lambda at: measures.mass_summary(at.theta, at.problem.teacher, at.cfg.record.cone_angle,
                                                          at.problem.out_scale), "O(m m0 d)", False),
    Diagnostic("free_energy", lambda at: langevin.free_energy(at.problem, at.theta[:, at.problem.mask > 0],
                                                              at.objective, at.temperature), "O(m^2 d)", False),
    Diagnostic("gibbs", lambda at: {"gibbs_gap": langevin.gibbs_gap(
        at.problem, at.theta, twolayer.loss_derivative(at.cfg.flow.loss, at.train_pred, at.problem.y), at.temperature)},
        "O(S n d), S importance samples", True),
    Diagnostic("margins", lambda at: {**margins(at.train_pred, at.problem.y, at.theta, at.problem.out_scale),
                                      "test_error": _test_error(at)}, "O(n m d)", True),
    Diagnostic("tangent_gap", lambda at: {"tangent_gap": _tangent_gap(at)}, "O(n m d), and a second run in lockstep",
               True),
)}


def compute(problem: Problem, theta: np.ndarray, theta_tangent=None, time: float = 0.0) -> dict[str, float]:
    """Every observable of NAMES, and the requested diagnostics (in registry order), at the
    particles ``theta`` at ``time``; ``theta_tangent``: the lockstep tangent model's particles."""
    at = Record(problem, theta, theta_tangent, time)
    out = _base(at)
    for diagnostic in DIAGNOSTICS.values():
        if diagnostic.name in problem.cfg.record.diagnostics:
            out.update(diagnostic.compute(at))
    return out
