"""Fitted exponents: least squares on log-log data, with a standard error."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """y ~ prefactor * x^slope, fitted on logs; ``stderr`` is the slope's standard error."""

    slope: float
    prefactor: float
    stderr: float
    points: int = 0

    def __call__(self, x):
        return self.prefactor * np.asarray(x, dtype=float) ** self.slope

    def to_dict(self) -> dict:
        return {"slope": self.slope, "prefactor": self.prefactor, "stderr": self.stderr}


def power_law(x, y) -> PowerLaw:
    """Fit log y = slope log x + c; x, y positive arrays of the same length >= 2."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = x.shape == y.shape and len(x) >= 2 and np.all(np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0))
    if not ok:
        raise ValueError("power_law needs two arrays of the same length >= 2, positive and finite")
    lx, ly = np.log(x), np.log(y)
    A = np.vstack([lx, np.ones_like(lx)]).T
    (slope, c), *_ = np.linalg.lstsq(A, ly, rcond=None)
    dof = len(lx) - 2
    if dof > 0:
        resid = ly - A @ np.array([slope, c])
        stderr = float(np.sqrt(resid @ resid / dof / np.sum((lx - lx.mean()) ** 2)))
    else:
        stderr = float("nan")
    return PowerLaw(float(slope), float(np.exp(c)), stderr, len(lx))


def seed_slopes(x, values, confidence: float = 0.95) -> dict:
    """Fit y ~ x^slope once per seed; the mean slope with a Student-t interval over seeds.

    x (k,) positive; values (k, seeds) positive. Returns slope, ci_low, ci_high, slopes, confidence
    and sizes (k, the points each fit used).
    """
    x = np.asarray(x, dtype=float)
    values = np.asarray(values, dtype=float).reshape(len(x), -1)
    fits = [power_law(x, values[:, s]) for s in range(values.shape[1])]
    return slope_interval(fits, confidence)


def slope_interval(fits: list[PowerLaw], confidence: float = 0.95) -> dict:
    """Mean slope of several fits with a Student-t interval over them; for a single fit, its own
    interval (standard error, points - 2 degrees of freedom, at least 1)."""
    from scipy import stats

    slopes = [f.slope for f in fits]
    if len(fits) >= 2:
        mean, spread, dof = float(np.mean(slopes)), float(np.std(slopes, ddof=1) / np.sqrt(len(fits))), len(fits) - 1
    else:
        mean, spread, dof = fits[0].slope, fits[0].stderr, max(fits[0].points - 2, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * spread)
    return {"slope": mean, "ci_low": mean - half, "ci_high": mean + half, "slopes": slopes,
            "confidence": confidence, "sizes": min(f.points for f in fits)}


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """The Student-t interval of the mean of values (k >= 2 independent draws, e.g. one per seed)."""
    from scipy import stats

    values = np.asarray(values, dtype=float).ravel()
    if len(values) < 2:
        raise ValueError("mean_interval needs at least two values")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return float(np.mean(values)) - half, float(np.mean(values)) + half
