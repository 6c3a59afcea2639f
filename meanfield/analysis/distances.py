"""Wasserstein distances (W2, and W1) between weighted particle measures. The only module that
uses POT (imported inside the functions that need it: ``import ot`` costs ~1 s).

Every function returns the distance itself, never its square. Inputs are validated before any solver sees
them: finite points of matching dimension, non-negative weights summing to one (NaN never
reaches POT, which returns 0 for a NaN cost).

Shapes: points x (N, k), y (M, k); weights a (N,), b (M,) (uniform when None).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import sqrtm

from ..errors import DistanceError

METHODS = ("auto", "exact", "sinkhorn", "sliced", "1d")
EXACT_PAIRS = 25_000_000      # "auto" solves exactly while N M (positive weights) is at most this: cost and
                              # plan 400 MB; 8192 x 1024 took 2.9 CPU s
DESCRIPTIONS = {"exact": "W2", "1d": "W2", "sliced": "sliced W2, a lower bound of W2",
                "sinkhorn": "entropic W2, an upper bound of W2"}


@dataclass(frozen=True)
class Distance:
    """A W2 value with the method that computed it and the method's settings."""

    value: float
    method: str
    details: dict = field(default_factory=dict)

    def __float__(self):
        return self.value

    def __str__(self):
        return f"{self.value:.6g} ({DESCRIPTIONS[self.method]})"

    def to_dict(self) -> dict:
        return {"value": self.value, "method": self.method, **self.details}


def _points(name, x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) == 0:
        raise DistanceError(f"{name} must be a non-empty array of points (N, k); got shape {x.shape}",
                            parameter=name, value=x.shape, allowed="shape (N, k), N >= 1")
    if not np.all(np.isfinite(x)):
        raise DistanceError(f"{name} holds non-finite values: a W2 distance needs finite points",
                            parameter=name, value="non-finite", allowed="finite values")
    return x


def _weights(name, w, n) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(w, dtype=float)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DistanceError(f"{name} must be {n} finite non-negative weights; got shape {w.shape}",
                            parameter=name, value=w.shape, allowed=f"{n} finite weights >= 0")
    total = w.sum()
    if abs(total - 1.0) > 1e-9:
        raise DistanceError(f"{name} sums to {total!r}; weights of a probability measure sum to 1",
                            parameter=name, value=float(total), allowed="weights summing to 1")
    return w / total


def validate(x, y, a=None, b=None):
    """Checked float64 copies (x, y, a, b); raises DistanceError on unusable input."""
    x, y = _points("x", x), _points("y", y)
    if x.shape[1] != y.shape[1]:
        raise DistanceError(f"x has dimension {x.shape[1]} and y {y.shape[1]}: they must match",
                            parameter="y", value=y.shape, allowed=f"points of dimension {x.shape[1]}")
    return x, y, _weights("a", a, len(x)), _weights("b", b, len(y))


def w2(x, y, a=None, b=None, method: str = "auto", n_projections: int = 200, seed: int = 0,
       reg: float = 0.01, max_iterations: int | None = None) -> Distance:
    """W2 between sum_i a_i delta_{x_i} and sum_j b_j delta_{y_j}.

    method: "exact" (POT's network simplex), "sinkhorn" (entropic, regularisation ``reg`` times
    the mean squared cost; biased upwards), "sliced" (``n_projections`` random directions from
    ``seed``; a lower bound of W2), "1d" (exact in one dimension, by sorting) or "auto" (exact
    while the points of positive weight make at most EXACT_PAIRS pairs; beyond, sliced, with a
    warning that names the approximation and method="exact"; 1d for one-dimensional points).
    Points of zero weight are dropped first (the distance does not change).
    max_iterations: the exact solver's cap (default max(1e5, 50 N M)); reaching it is an error.
    """
    if method not in METHODS:
        raise DistanceError(f"method = {method!r} is invalid: allowed is one of {', '.join(METHODS)}",
                            parameter="method", value=method, allowed=", ".join(METHODS))
    x, y, a, b = validate(x, y, a, b)
    x, a = x[a > 0], a[a > 0]
    y, b = y[b > 0], b[b > 0]
    if method == "auto":
        method = "1d" if x.shape[1] == 1 else ("exact" if len(x) * len(y) <= EXACT_PAIRS else "sliced")
        if method == "sliced":
            warnings.warn(f"meanfield: W2 between {len(x)} and {len(y)} points is computed sliced, a lower bound of "
                          f"W2 (exact needs {len(x) * len(y):.2g} pairs, above the {EXACT_PAIRS:.2g} that 'auto' "
                          "solves exactly): pass method='exact' for the exact distance", stacklevel=2)
    if method == "exact":
        return _exact(x, y, a, b, max_iterations)
    if method == "sinkhorn":
        return _sinkhorn(x, y, a, b, reg)
    if method == "sliced":
        return _sliced(x, y, a, b, n_projections, seed)
    if x.shape[1] != 1:
        raise DistanceError(f"method '1d' needs one-dimensional points; got dimension {x.shape[1]}",
                            parameter="method", value="1d", allowed="'exact', 'sinkhorn' or 'sliced'")
    return Distance(float(np.sqrt(_w2_squared_1d(x[:, 0], a, y[:, 0], b))), "1d")


def w1(x, y, a=None, b=None, method: str = "auto", max_iterations: int | None = None) -> Distance:
    """W1 between sum_i a_i delta_{x_i} and sum_j b_j delta_{y_j}: the earth mover's distance
    with Euclidean cost. method: "exact" (POT's network simplex), "1d" (closed form on the line,
    the integral of |F_x - F_y|) or "auto" (1d for one-dimensional points, else exact)."""
    if method not in ("auto", "exact", "1d"):
        raise DistanceError(f"method = {method!r} is invalid: allowed is one of auto, exact, 1d",
                            parameter="method", value=method, allowed="auto, exact, 1d")
    x, y, a, b = validate(x, y, a, b)
    if method == "auto":
        method = "1d" if x.shape[1] == 1 else "exact"
    if method == "exact":
        return _exact(x, y, a, b, max_iterations, metric="euclidean")
    if x.shape[1] != 1:
        raise DistanceError(f"method '1d' needs one-dimensional points; got dimension {x.shape[1]}",
                            parameter="method", value="1d", allowed="'exact'")
    return Distance(_w1_1d(x[:, 0], a, y[:, 0], b), "1d")


def _w1_1d(u, a, v, b) -> float:
    """Exact W1 on the line: integral over t of |F_u(t) - F_v(t)|, the CDFs piecewise constant."""
    points = np.concatenate([u, v])
    order = np.argsort(points, kind="stable")
    jumps = np.concatenate([a, -b])[order]
    gaps = np.diff(points[order])
    return float(np.sum(np.abs(np.cumsum(jumps)[:-1]) * gaps))


def _exact(x, y, a, b, cap=None, metric="sqeuclidean") -> Distance:
    import ot

    cost = ot.dist(x, y, metric=metric)          # squared Euclidean for W2, Euclidean for W1
    cap = cap or max(100_000, 50 * len(x) * len(y))
    with warnings.catch_warnings():          # POT warns on the cap; we check result_code below
        warnings.filterwarnings("ignore", message="numItermax reached")
        value, log = ot.emd2(a, b, cost, numItermax=cap, log=True)
    if log.get("result_code") != 1:
        raise DistanceError(f"exact optimal transport did not converge ({log.get('warning')}, "
                            f"result code {log.get('result_code')}, {cap} iterations)",
                            parameter="method", value="exact", allowed="a solvable problem; try 'sliced'")
    value = max(float(value), 0.0)
    return Distance(float(np.sqrt(value)) if metric == "sqeuclidean" else value, "exact", {"iterations_cap": cap})


def _sinkhorn(x, y, a, b, reg) -> Distance:
    import ot

    cost = ot.dist(x, y)
    epsilon = reg * float(cost.mean())
    value, log = ot.sinkhorn2(a, b, cost, epsilon, log=True)
    if not np.isfinite(value):
        raise DistanceError(f"Sinkhorn did not converge (epsilon = {epsilon:.3g}); increase reg",
                            parameter="reg", value=reg, allowed="a larger regularisation")
    return Distance(float(np.sqrt(max(float(value), 0.0))), "sinkhorn",
                    {"epsilon": epsilon, "iterations": int(log.get("niter", -1))})


def _sliced(x, y, a, b, n_projections, seed) -> Distance:
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((x.shape[1], n_projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    px, py = x @ directions, y @ directions
    squares = [_w2_squared_1d(px[:, k], a, py[:, k], b) for k in range(n_projections)]
    return Distance(float(np.sqrt(np.mean(squares))), "sliced",
                    {"n_projections": n_projections, "seed": seed})


def _w2_squared_1d(u, a, v, b) -> float:
    """Exact W2^2 on the line: integral over levels s in (0, 1) of (F_u^-1(s) - F_v^-1(s))^2."""
    iu, iv = np.argsort(u, kind="stable"), np.argsort(v, kind="stable")
    u, a, v, b = u[iu], a[iu], v[iv], b[iv]
    cu, cv = np.cumsum(a), np.cumsum(b)
    cu[-1] = cv[-1] = 1.0
    levels = np.union1d(cu, cv)                                       # right ends of pieces
    widths = np.diff(np.concatenate([[0.0], levels]))
    qu = u[np.minimum(np.searchsorted(cu, levels, side="left"), len(u) - 1)]
    qv = v[np.minimum(np.searchsorted(cv, levels, side="left"), len(v) - 1)]
    return float(np.sum(widths * (qu - qv) ** 2))


def gaussian_w2(mean1, cov1, mean2, cov2) -> float:
    """Closed form W2 between N(mean1, cov1) and N(mean2, cov2):
    |m1 - m2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2), square root taken.

    For nearly equal covariances the trace subtracts nearly equal numbers: its absolute error is
    about 1e-16 tr(S1 + S2), so W2 below about 1e-8 sqrt(tr S) is round-off, not distance."""
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    s1, s2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    root2 = np.real(sqrtm(s2))
    cross = np.real(sqrtm(root2 @ s1 @ root2))
    value = float(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * cross))
    return float(np.sqrt(max(value, 0.0)))
