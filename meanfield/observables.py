"""What is recorded along a run. Each observable is a scalar function of the particles.

- ``train_risk``, ``test_risk``: mean loss on the training / test samples (test: NaN if none);
- ``objective``: the Lyapunov function J = R + lam alpha^2 m s(m)^2 sum_i |theta_i|^2 / 2 of the
  noiseless flow (see ``model.objective``);
- ``displacement_mean``, ``displacement_max``: mean and max over i of |theta_i(t) - theta_i(0)|;
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

import numpy as np

from . import langevin, measures, model, ntk, population
from .problem import Problem
from .scaling import time_factor

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


def compute(problem: Problem, theta: np.ndarray, theta_tangent=None, time: float = 0.0) -> dict[str, float]:
    """Every observable of NAMES, and the requested diagnostics, at the particles ``theta`` at
    ``time``; ``theta_tangent``: the lockstep tangent model's particles (for ``tangent_gap``)."""
    cfg = problem.cfg
    net = cfg.network
    train_pred = problem.predict(theta, problem.X, problem.f0)
    if problem.exact:
        train_risk = test_risk = population.population_risk(theta, problem.teacher, net, net.activation, compiled=True)
    else:
        train_risk = (float(np.mean(model.loss(cfg.flow.loss, train_pred, problem.y)))
                      if len(problem.y) else 0.0)
        test_risk = (problem.risk(theta, problem.X_test, problem.y_test, problem.f0_test)
                     if len(problem.y_test) else float("nan"))
    penalty = 0.5 * float(np.sum((theta * problem.mask) ** 2))
    objective = train_risk + cfg.flow.lam * penalty / time_factor(net.m, net.scaling, net.alpha)
    moved = np.linalg.norm(theta - problem.theta0, axis=1)
    drift = np.abs(balance(theta) - balance(problem.theta0))
    out = {
        "train_risk": train_risk,
        "test_risk": test_risk,
        "objective": objective,
        "displacement_mean": float(moved.mean()),
        "displacement_max": float(moved.max()),
        "balance_drift": float(drift.max()),
        "predictor_norm": (population.predictor_norm(theta, net, compiled=True) if problem.exact else
                           float(np.sqrt(np.mean(train_pred ** 2))) if len(train_pred) else 0.0),
    }
    wanted = cfg.record.diagnostics
    if "lambda_min" in wanted or "kernel_change" in wanted:
        H = problem.kernel(theta)
        if "lambda_min" in wanted:
            out["lambda_min"] = ntk.lambda_min(H)
        if "kernel_change" in wanted:
            out["kernel_change"] = float(np.linalg.norm(H - problem.kernel0) / np.linalg.norm(problem.kernel0))
    if "pattern_flips" in wanted:
        out["pattern_flips"] = pattern_flips(problem.X, theta, problem.theta0)
    if "masses" in wanted:
        out.update(measures.mass_summary(theta, problem.teacher, cfg.record.cone_angle, problem.out_scale))
    T = float(langevin.temperature(cfg.flow, time))
    if "free_energy" in wanted:
        out.update(langevin.free_energy(problem, theta[:, problem.mask > 0], objective, T))
    if "gibbs" in wanted:
        residuals = model.loss_derivative(cfg.flow.loss, train_pred, problem.y)
        out["gibbs_gap"] = langevin.gibbs_gap(problem, theta, residuals, T)
    if "margins" in wanted:
        out.update(margins(train_pred, problem.y, theta, problem.out_scale))
        out["test_error"] = (float(np.mean(problem.y_test * problem.predict(theta, problem.X_test, problem.f0_test) <= 0))
                             if len(problem.y_test) else float("nan"))
    if "tangent_gap" in wanted:
        gap = train_pred - problem.predict_tangent(theta_tangent, problem.X, problem.f0)
        out["tangent_gap"] = float(np.sqrt(np.mean(gap ** 2)))
    return out
