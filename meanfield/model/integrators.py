"""The time integrators: explicit Runge–Kutta methods as Butcher tableaus, one entry per method.

A step of size dt from theta with stage drifts K_i = v(Y_i):

    Y_0 = theta,   Y_i = theta + dt sum_{j<i} a_ij K_j (+ kick),   theta' = theta + (dt sum_i b_i K_i + kick)

where ``kick`` = sqrt(2 T dt) mask xi is the Langevin noise of the step (one draw per step; the
stochastic Heun method adds it to the predictor too). Euler with noise is Euler–Maruyama.
Methods without ``noise`` (RK4 and the embedded pairs) integrate deterministic flows only: full
batch, temperature 0. The embedded pairs, Dormand–Prince 5(4) ("dopri5", alias "adaptive"),
Bogacki–Shampine 3(2) ("bs3") and Tsitouras 5(4) ("tsit5"), carry the ``embedded`` weights whose
error estimate ``engine/adaptive.py`` controls the step with; any embedded tableau added here works
there.

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
    deterministic flows; ``noise``: allowed with a temperature or minibatches. An embedded pair
    (error-controlled steps, ``engine/adaptive.py``) adds ``embedded``, the weights b_hat (s,) of
    a solution of order ``embedded_order``, and ``stability``, a lower bound on the length of its
    stability interval on the negative real axis (|R(-x)| <= 1 for x in [0, stability]: a gradient
    flow's Jacobian has a real spectrum, so this bounds its stable steps; the exact lengths, 3.3066
    for dopri5, 2.5127 for bs3 and 3.5068 for tsit5, are checked in the tests)."""

    name: str
    a: tuple
    b: tuple
    order: int
    noise: bool
    embedded: tuple = ()
    embedded_order: int = 0
    stability: float = 0.0

    @property
    def adaptive(self) -> bool:
        """True for an embedded pair, whose step size ``adaptive.py`` controls."""
        return bool(self.embedded)

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def fsal(self) -> bool:
        """First same as last: the last stage is evaluated at the new point (its drift is the next
        step's first), i.e. a's last row is b and b's last weight is 0."""
        return bool(self.b) and self.b[-1] == 0 and tuple(self.a[-1]) == tuple(self.b[:-1])

    @property
    def tableau(self) -> tuple[np.ndarray, np.ndarray]:
        """(a (s, s), b (s,)) as the kernels take them, float64 and contiguous."""
        s = self.stages
        a = np.zeros((s, s))
        for i, row in enumerate(self.a):
            a[i, :len(row)] = row
        return a, np.array(self.b, dtype=np.float64)


# Dormand & Prince (1980), the pair of ode45 / RK45: 5th-order solution, 4th-order embedded one.
_DP5_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
DOPRI5 = Integrator("dopri5", a=((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
                                 (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
                                 (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656), _DP5_B),
                    b=(*_DP5_B, 0.0), order=5, noise=False,
                    embedded=(5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40),
                    embedded_order=4, stability=3.3)
# Bogacki & Shampine (1989), the pair of ode23 / RK23: 3rd order, 2nd-order embedded.
BS3 = Integrator("bs3", a=((), (1 / 2,), (0.0, 3 / 4), (2 / 9, 1 / 3, 4 / 9)), b=(2 / 9, 1 / 3, 4 / 9, 0.0), order=3,
                 noise=False, embedded=(7 / 24, 1 / 4, 1 / 3, 1 / 8), embedded_order=2, stability=2.5)
# Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption": 5th order, 4th-order embedded; b_hat = b - e with his error weights e (e_7 = -1/66).
_TSIT5_B = (0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774)
_TSIT5_E = (0.001780011052226, 0.000816434459657, -0.007880878010262, 0.144711007173263, -0.582357165452555,
            0.458082105929187, -1 / 66)
TSIT5 = Integrator("tsit5", a=((), (0.161,), (-0.008480655492356989, 0.335480655492357),
                               (2.897153057105493, -6.359448489975075, 4.3622954328695815),
                               (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
                               (5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
                                -0.028269050394068383), _TSIT5_B),
                   b=(*_TSIT5_B, 0.0), order=5, noise=False,
                   embedded=tuple(b - e for b, e in zip((*_TSIT5_B, 0.0), _TSIT5_E)), embedded_order=4,
                   stability=3.5)

INTEGRATORS = {i.name: i for i in (
    Integrator("euler", a=((),), b=(1.0,), order=1, noise=True),
    Integrator("heun", a=((), (1.0,)), b=(0.5, 0.5), order=2, noise=True),
    Integrator("rk4", a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), order=4,
               noise=False),
    DOPRI5, BS3, TSIT5,
)}
INTEGRATORS["adaptive"] = DOPRI5            # the name of the first (and default) embedded pair, kept as an alias
FIXED_STEP = tuple(name for name, method in INTEGRATORS.items() if not method.adaptive)


def step(theta: np.ndarray, drift: Callable[[np.ndarray], np.ndarray], dt: float, name: str = "euler",
         kick=0.0, methods: dict = INTEGRATORS) -> np.ndarray:
    """One step of the method ``name`` (of ``methods``) from theta (m, d + 1) with drift(theta) ->
    (m, d + 1) and the noise ``kick`` (scalar 0 or (m, d + 1)); returns the new theta (NumPy twin of
    the kernels)."""
    method = methods[name]
    a, b = method.tableau
    K = []
    for i in range(method.stages):
        point = theta if i == 0 else theta + dt * sum(a[i, j] * K[j] for j in range(i)) + kick
        K.append(drift(point))
    return theta + (dt * sum(b[i] * K[i] for i in range(method.stages)) + kick)
