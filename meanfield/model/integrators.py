"""The time integrators: explicit Runge–Kutta methods as Butcher tableaus, one entry per method.

A step of size dt from theta with stage drifts K_i = v(Y_i):

    Y_0 = theta,   Y_i = theta + dt sum_{j<i} a_ij K_j (+ kick),   theta' = theta + (dt sum_i b_i K_i + kick)

where ``kick`` = sqrt(2 T dt) mask xi is the Langevin noise of the step (one draw per step; the
stochastic Heun method adds it to the predictor too). Euler with noise is Euler–Maruyama.
Methods without ``noise`` (RK4, adaptive) integrate deterministic flows only: full batch,
temperature 0. "adaptive" is Dormand–Prince 5(4), whose ``embedded`` weights give the error
estimate that ``adaptive.py`` controls the step with.

The arithmetic of a stage point and of the update lives once, in ``_kernels.stage_point`` and
``_kernels.update``; every path (fused, BLAS, population, energy terms) steps through them.
``step`` is the readable NumPy twin, on any drift.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Integrator:
    """A Butcher tableau: a (s, s) strictly lower triangular, b (s,); ``order`` on smooth
    deterministic flows; ``noise``: allowed with a temperature or minibatches; ``embedded``: the
    weights b_hat (s,) of an embedded lower-order solution (error-controlled methods only)."""

    name: str
    a: tuple
    b: tuple
    order: int
    noise: bool
    embedded: tuple = ()

    @property
    def adaptive(self) -> bool:
        """True for an embedded pair, whose step size ``adaptive.py`` controls."""
        return bool(self.embedded)

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def tableau(self) -> tuple[np.ndarray, np.ndarray]:
        """(a (s, s), b (s,)) as the kernels take them, float64 and contiguous."""
        s = self.stages
        a = np.zeros((s, s))
        for i, row in enumerate(self.a):
            a[i, :len(row)] = row
        return a, np.array(self.b, dtype=np.float64)


INTEGRATORS = {i.name: i for i in (
    Integrator("euler", a=((),), b=(1.0,), order=1, noise=True),
    Integrator("heun", a=((), (1.0,)), b=(0.5, 0.5), order=2, noise=True),
    Integrator("rk4", a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), order=4,
               noise=False),
    # Dormand & Prince (1980), the pair of ode45 / RK45: 5th-order solution, 4th-order embedded one;
    # the last stage is the drift at the new point (first same as last: 6 drifts per step).
    Integrator("adaptive", a=((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
                              (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
                              (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
                              (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
               b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0), order=5, noise=False,
               embedded=(5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)),
)}
FIXED_STEP = tuple(name for name, method in INTEGRATORS.items() if not method.adaptive)


def step(theta: np.ndarray, drift: Callable[[np.ndarray], np.ndarray], dt: float, name: str = "euler",
         kick=0.0) -> np.ndarray:
    """One step of the method ``name`` from theta (m, d + 1) with drift(theta) -> (m, d + 1) and
    the noise ``kick`` (scalar 0 or (m, d + 1)); returns the new theta (NumPy twin of the kernels)."""
    method = INTEGRATORS[name]
    a, b = method.tableau
    K = []
    for i in range(method.stages):
        point = theta if i == 0 else theta + dt * sum(a[i, j] * K[j] for j in range(i)) + kick
        K.append(drift(point))
    return theta + (dt * sum(b[i] * K[i] for i in range(method.stages)) + kick)
