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
    return PowerLaw(float(slope), float(np.exp(c)), stderr)
