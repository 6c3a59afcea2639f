"""A run's fixed inputs in kernel form, and the path its steps take."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import _lazy
from ..config import Config
from ..model import activations, energy, ntk, twolayer
from ..model.scaling import output_scale, time_factor

_kernels = _lazy.module("meanfield._kernels")      # Numba loads on the first run

BLAS_MIN_ENTRIES = 20_000      # "auto" engine: the BLAS path from this batch x m size...
FUSED_MAX_D = 3                # ...and above this d (measured crossovers: the fused loop wins below)



def path(cfg: Config, batch: int) -> str:
    """The engine a network's steps take with ``batch`` samples per step: flow.engine, or with
    "auto" the BLAS path for d > FUSED_MAX_D and batch x m >= BLAS_MIN_ENTRIES (not for the
    tangent model), else the fused one."""
    net = cfg.network
    if cfg.flow.engine != "auto":
        return cfg.flow.engine
    big = batch * net.m >= BLAS_MIN_ENTRIES and net.d > FUSED_MAX_D
    return "blas" if big and not net.linearized else "fused"


@dataclass(frozen=True)
class Problem:
    """A run's fixed inputs in kernel form: arrays C-contiguous float64, codes and scale factors.
    With flow.dtype = "float32", X, y and theta0 hold float32 values (rounded once, by ``build``)
    and ``steps`` gives the training data as float32 arrays."""

    cfg: Config
    X: np.ndarray
    y: np.ndarray
    f0: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    f0_test: np.ndarray
    theta0: np.ndarray
    teacher: np.ndarray | None = None
    weights: np.ndarray | None = None      # omega (m,), summing to 1 (mean-field scaling); None: 1/m each

    @property
    def path(self) -> str:
        """The engine the network's steps take: "fused" or "blas" (``path``)."""
        return path(self.cfg, self.cfg.flow.batch_size or len(self.y))

    @property
    def strategy(self) -> str:
        """The drift strategy (``drifts.STRATEGIES``): "population" for the exact risk, else ``path``."""
        return "population" if self.exact else self.path

    @property
    def dtype(self) -> np.dtype:
        """The steps' floating type (flow.dtype); observables are float64 whatever it is."""
        return np.dtype(self.cfg.flow.dtype)

    @cached_property
    def steps(self) -> tuple:
        """(X, y, f0), the training data as the steps take them: in ``dtype`` (the same arrays for float64)."""
        return tuple(np.ascontiguousarray(a, self.dtype) for a in (self.X, self.y, self.f0))

    @property
    def exact(self) -> bool:
        """True when the risk is the exact population risk (no samples)."""
        return self.cfg.data.kind == "population"

    @property
    def out_scale(self) -> float:
        """The predictor's prefactor: alpha s(m), or alpha for weighted particles (the weights sum to 1)."""
        net = self.cfg.network
        return net.alpha if self.weights is not None else output_scale(net.m, net.scaling, net.alpha)

    @property
    def vel_scale(self) -> float:
        """time_factor * alpha s(m) = 1 / (alpha m s(m)): the kernels' velocity prefactor (the
        same with weights: a particle's velocity does not depend on its weight)."""
        net = self.cfg.network
        return time_factor(net.m, net.scaling, net.alpha) * output_scale(net.m, net.scaling, net.alpha)

    @property
    def omega(self) -> np.ndarray:
        """The weights as the kernels take them: (m,), or empty for unweighted particles."""
        return _kernels.NO_WEIGHTS if self.weights is None else self.weights

    @cached_property
    def model(self) -> tuple:
        """The network's constants as the kernels take them (``_kernels.MODEL``): (out_scale,
        vel_scale, act, params, omega, loss, lam, mask), built once; omega in the steps' type."""
        cfg = self.cfg
        return (self.out_scale, self.vel_scale, self.act, cfg.network.activation_params,
                np.asarray(self.omega, self.dtype), self.loss, cfg.flow.lam, self.mask)

    @property
    def act(self) -> int:
        return activations.activation(self.cfg.network.activation).code

    @property
    def loss(self) -> int:
        return activations.loss(self.cfg.flow.loss).code

    @property
    def mask(self) -> np.ndarray:
        return twolayer.train_mask(self.cfg.network.train, self.cfg.network.d)

    @cached_property
    def energy(self) -> tuple:
        """The energy terms in kernel form (``energy.kernel_form``)."""
        return energy.kernel_form(self.cfg.flow, self.cfg.network.d + 1)

    def predict(self, theta, X, f0) -> np.ndarray:
        """The (centered) predictor on the rows of X, shape (n,); the tangent model's if linearized."""
        net = self.cfg.network
        theta0 = self.theta0 if net.linearized else None
        return _kernels.predict(theta, X, self.out_scale, self.act, net.activation_params, theta0,
                                omega=self.omega) - f0

    def predict_tangent(self, theta, X, f0) -> np.ndarray:
        """The tangent model at theta0 on the rows of X, shape (n,)."""
        net = self.cfg.network
        return _kernels.predict(theta, X, self.out_scale, self.act, net.activation_params, self.theta0,
                                omega=self.omega) - f0

    def kernel(self, theta) -> np.ndarray:
        """Tangent kernel H on the training inputs (constant for the tangent model), (n, n)."""
        at = self.theta0 if self.cfg.network.linearized else theta
        return ntk.tangent_kernel(at, self.X, self.cfg.network)

    @cached_property
    def kernel0(self) -> np.ndarray:
        return self.kernel(self.theta0)

    def risk(self, theta, X, y, f0) -> float:
        if len(y) == 0:
            return 0.0
        return float(np.mean(twolayer.loss(self.cfg.flow.loss, self.predict(theta, X, f0), y)))


def record_steps(n_steps: int, n_records: int, spacing: str) -> np.ndarray:
    """Steps at which the state is recorded: 0, ..., n_steps (geometric or linear, unique); one
    record (the final state only) is recorded as two, the first dropped from the result."""
    n_records = min(max(n_records, 2), max(n_steps + 1, 2 ** 20))   # beyond: every step anyway, without 1e12 floats
    if spacing == "linear":
        steps = np.linspace(0, n_steps, n_records)
    else:
        # geomspace(1, K, 1) is [1], not [K]: with two records, take [0, K]
        tail = np.geomspace(1, n_steps, n_records - 1) if n_records > 2 else [n_steps]
        steps = np.concatenate([[0], tail])
    return np.unique(np.round(steps).astype(np.int64))


def build(cfg: Config, dataset, theta0: np.ndarray, weights: np.ndarray | None = None) -> Problem:
    """Kernel-ready arrays; f0 is the network at initialisation when ``centered`` (else 0);
    weights: the particles' (validated), or None. With flow.dtype = "float32" the training data and
    theta0 are rounded to float32 (kept as float64 arrays: observables read them exactly)."""
    arrays = [np.ascontiguousarray(a, dtype=np.float64)
              for a in (dataset.X, dataset.y, dataset.X_test, dataset.y_test)]
    X, y, X_test, y_test = arrays
    if cfg.flow.dtype != "float64":
        X, y, theta0 = (rounded(a, cfg.flow.dtype) for a in (X, y, theta0))
    zeros = Problem(cfg, X, y, np.zeros(len(y)), X_test, y_test, np.zeros(len(y_test)), theta0,
                    dataset.teacher, weights)
    if not cfg.network.centered:
        return zeros
    return Problem(cfg, X, y, zeros.predict(theta0, X, zeros.f0), X_test, y_test,
                   zeros.predict(theta0, X_test, zeros.f0_test), theta0, dataset.teacher, weights)


def rounded(a: np.ndarray, dtype) -> np.ndarray:
    """a's values rounded to ``dtype``, as a float64 array (exactly representable both ways)."""
    return np.ascontiguousarray(np.asarray(a, dtype=dtype), dtype=np.float64)
