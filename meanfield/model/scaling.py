"""The regime switch: the only module that knows the exponent of m.

Model  f(x) = alpha * s(m) * sum_i a_i sigma(w_i . x),  s(m) = 1/m (mean_field) or 1/sqrt(m) (lazy).
Flow   d theta_i / dt = - time_factor * grad_{theta_i} R,  time_factor = 1 / (alpha^2 m s(m)^2),
so that the predictor moves at an O(1) rate in every regime and at every width.
"""
from __future__ import annotations

SCALINGS = ("mean_field", "lazy")
_EXPONENT = {"mean_field": 1.0, "lazy": 0.5}


def width_factor(m: int, scaling: str) -> float:
    """s(m) = m^-1 (mean_field) or m^-1/2 (lazy)."""
    return float(m) ** -_EXPONENT[scaling]


def output_scale(m: int, scaling: str, alpha: float = 1.0) -> float:
    """alpha * s(m): the factor in front of sum_i a_i sigma(w_i . x)."""
    return alpha * width_factor(m, scaling)


def time_factor(m: int, scaling: str, alpha: float = 1.0) -> float:
    """1 / (alpha^2 m s(m)^2): m / alpha^2 (mean_field), 1 / alpha^2 (lazy)."""
    return 1.0 / (alpha * alpha * m * width_factor(m, scaling) ** 2)


def learning_rate_from_dt(dt: float, m: int, scaling: str, alpha: float = 1.0) -> float:
    """Ordinary gradient-descent step size eta on R(theta) equivalent to one Euler step dt."""
    return dt * time_factor(m, scaling, alpha)


def dt_from_learning_rate(learning_rate: float, m: int, scaling: str, alpha: float = 1.0) -> float:
    """The dt whose Euler step equals plain gradient descent theta -= eta * grad R."""
    return learning_rate / time_factor(m, scaling, alpha)


def weight_decay_from_lam(lam: float, m: int, scaling: str, alpha: float = 1.0) -> float:
    """Coefficient wd of 'theta -= eta (grad R + wd theta)' equivalent to the potential lam |theta|^2/2."""
    return lam / time_factor(m, scaling, alpha)

