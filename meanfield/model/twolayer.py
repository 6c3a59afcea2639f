"""The network and its particle velocities in plain NumPy: readable, and the tests' oracle.

Shapes: ``theta`` (m, d + 1) with columns [w | a]; ``X`` (n, d); ``y`` (n,); ``f0`` (n,) or None.
With ``network.linearized`` the model is the tangent model at ``theta0`` (m, d + 1):
f_tangent(x) = alpha s(m) sum_i [a_i sigma(w0_i . x) + a0_i sigma'(w0_i . x) (w_i - w0_i) . x],
i.e. f(x; theta0) + grad f(x; theta0) . (theta - theta0).
"""
from __future__ import annotations

import numpy as np

from ..config import FlowConfig, NetworkConfig
from . import activations, energy, integrators
from .scaling import output_scale, time_factor

DEFAULT_PARAMS = NetworkConfig().activation_params


def activation(name: str, z: np.ndarray, params=None) -> np.ndarray:
    """sigma(z), elementwise, by the registry (``activations.py``); params = network.activation_params."""
    return activations.activation(name).value(z, DEFAULT_PARAMS if params is None else params)


def activation_derivative(name: str, z: np.ndarray, params=None) -> np.ndarray:
    """sigma'(z), elementwise (at a kink: the left derivative, e.g. 0 for ReLU at 0)."""
    return activations.activation(name).derivative(z, DEFAULT_PARAMS if params is None else params)


def loss(name: str, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pointwise loss: squared (f - y)^2 / 2, logistic log(1 + exp(-y f))."""
    return activations.loss(name).value(f, y)


def loss_derivative(name: str, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d loss / d f."""
    return activations.loss(name).derivative(f, y)


def _features_at(theta, theta0, network):
    """The particles whose features the model uses: theta0 for the tangent model, else theta."""
    if not network.linearized:
        return theta
    if theta0 is None:
        raise ValueError("the tangent model (network.linearized) needs theta0")
    return theta0


def output_weights(theta, network, weights=None):
    """(coefficients, prefactor) with f = prefactor sum_i coefficient_i sigma(w_i . x): (a, alpha s(m)),
    or (omega a, alpha) for weighted particles."""
    a = theta[:, -1]
    if weights is None:
        return a, output_scale(theta.shape[0], network.scaling, network.alpha)
    return weights * a, network.alpha


def predict(theta: np.ndarray, X: np.ndarray, network: NetworkConfig, f0=None, theta0=None,
            weights=None) -> np.ndarray:
    """f(x_j) = alpha s(m) sum_i a_i sigma(w_i . x_j) - f0_j (or the tangent model's), shape (n,);
    weights (m,): f = alpha sum_i omega_i a_i sigma(w_i . x_j) (weighted particles)."""
    d = X.shape[1]
    W, (a, scale) = theta[:, :d], output_weights(theta, network, weights)
    base = _features_at(theta, theta0, network)
    Z0 = X @ base[:, :d].T                                                        # (n, m)
    f = activation(network.activation, Z0, network.activation_params) @ a
    if network.linearized:
        slope = activation_derivative(network.activation, Z0, network.activation_params)
        f = f + ((X @ W.T - Z0) * slope) @ base[:, d]
    f = scale * f
    return f if f0 is None else f - f0


def risk(theta, X, y, network: NetworkConfig, loss_name: str, f0=None, theta0=None, weights=None) -> float:
    """Empirical risk mean_j loss(f(x_j), y_j); 0 for an empty data set."""
    if len(y) == 0:
        return 0.0
    return float(np.mean(loss(loss_name, predict(theta, X, network, f0, theta0, weights), y)))


def train_mask(train: str, d: int) -> np.ndarray:
    """1 for the coordinates of theta that move, 0 for the frozen ones, shape (d + 1,)."""
    mask = np.ones(d + 1)
    if train == "hidden":
        mask[d] = 0.0
    elif train == "output":
        mask[:d] = 0.0
    return mask


def risk_gradient(theta, X, y, network: NetworkConfig, loss_name: str, f0=None, theta0=None,
                  weights=None) -> np.ndarray:
    """grad_{theta_i} R for every particle, shape (m, d + 1); for weighted particles
    grad_{theta_i} R / omega_i (the gradient of the first variation)."""
    m, p = theta.shape
    d = p - 1
    if len(y) == 0:
        return np.zeros_like(theta)
    base = _features_at(theta, theta0, network)
    W, a = base[:, :d], base[:, d]
    Z = X @ W.T                                                                   # (n, m)
    r = loss_derivative(loss_name, predict(theta, X, network, f0, theta0, weights), y)    # (n,)
    scale = output_weights(theta, network, weights)[1] / len(y)
    grad_a = scale * activation(network.activation, Z, network.activation_params).T @ r
    slope = activation_derivative(network.activation, Z, network.activation_params)    # (n, m)
    grad_W = scale * a[:, None] * ((slope * r[:, None]).T @ X)
    return np.hstack([grad_W, grad_a[:, None]])


def velocity(theta, X, y, network: NetworkConfig, flow: FlowConfig, f0=None, theta0=None, weights=None) -> np.ndarray:
    """Drift of every particle (no noise), shape (m, d + 1):

    v_i = mask * ( - grad_{theta_i} R / (alpha^2 m s(m)^2) - lam theta_i ), plus the energy terms'
    drift (``energy.drift``); weighted particles: - grad_{theta_i} R / (alpha^2 omega_i), the same
    velocity field.
    """
    m, p = theta.shape
    factor = time_factor(m, network.scaling, network.alpha) if weights is None else 1 / network.alpha ** 2
    v = -factor * risk_gradient(theta, X, y, network, flow.loss, f0, theta0, weights) - flow.lam * theta
    v = v * train_mask(network.train, p - 1)
    return v + energy.drift(theta, flow, train_mask(network.train, p - 1), weights) if energy.active(flow) else v


def step(theta, X, y, network: NetworkConfig, flow: FlowConfig, f0=None, theta0=None, kick=0.0,
         weights=None) -> np.ndarray:
    """One step of flow.integrator of size flow.dt from theta, with the Langevin ``kick``
    (sqrt(2 T dt) mask xi, or 0): the NumPy twin of a step of every engine path."""
    return integrators.step(theta, lambda at: velocity(at, X, y, network, flow, f0, theta0, weights), flow.dt,
                            flow.integrator, kick)


def objective(theta, X, y, network: NetworkConfig, flow: FlowConfig, f0=None, theta0=None, weights=None) -> float:
    """The Lyapunov function of the noiseless flow, J = R + lam alpha^2 m s(m)^2 sum_i |mask theta_i|^2 / 2
    (+ the energy terms, ``penalty``).

    The drift is v_i = -(1 / (alpha^2 m s(m)^2)) grad_{theta_i} J; in the mean-field regime with
    alpha = 1, J = R + lam mean_i |theta_i|^2 / 2 (the regularised risk of the measure).
    """
    return risk(theta, X, y, network, flow.loss, f0, theta0, weights) + penalty(theta, network, flow, weights)


def penalty(theta, network: NetworkConfig, flow: FlowConfig, weights=None) -> float:
    """The part of J beyond the risk: alpha^2 m s(m)^2 sum_i (lam |mask theta_i|^2 / 2 + V(theta_i)
    + (1/2m) sum_j W(theta_i, theta_j)), i.e. m / time_factor times the energy terms of F (with
    weights: alpha^2 times the terms, each mean over particles weighted by omega)."""
    m, p = theta.shape
    masked = theta * train_mask(network.train, p - 1) if flow.lam else None
    if masked is not None:
        np.square(masked, out=masked)                                  # one temporary, not two
    if weights is not None:
        scale = network.alpha ** 2
        decay = flow.lam * 0.5 * float(weights @ np.sum(masked, axis=1)) if flow.lam else 0.0
        return scale * (decay + (energy.mean_energy(theta, flow, weights) if energy.active(flow) else 0.0))
    factor = time_factor(m, network.scaling, network.alpha)
    terms = m * energy.mean_energy(theta, flow) / factor if energy.active(flow) else 0.0
    return flow.lam * 0.5 * float(np.sum(masked)) / factor + terms if flow.lam else terms
