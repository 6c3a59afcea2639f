"""What the controller runs: a system.

A system is a state of named arrays (``theta``; ``theta_tangent`` for a lockstep tangent model; the
reduced limit's ``Z``) moved by a flow, and observed at record times. The controller
(``controller.run``) does, the same way for every system: the seeded random streams and the
temperature schedule, fixed and error-controlled steps, records, divergence, checkpoints, progress,
Ctrl-C and SIGTERM, and the ``Result``. A system says only what is its own:

- ``cfg`` and ``first``: the config, and the record at t = 0 (computed when the system is built,
  its risk checked finite: an output that overflows is refused before any work);
- ``initial()``: fresh copies of the state at t = 0, and ``identity()``: a hash of what it was
  started from (data, initial particles), so a checkpoint of other data is refused;
- ``advance(state, draws, noise, scale, k)``: k fixed steps in place, given ``draws(k, rngs)``
  (its samples for those steps, from the streams it names in ``streams``) and, for a system with a
  ``noise_shape``, the controller's Gaussian noise (k, *noise_shape) and per-step scales
  sqrt(2 T(t) dt);
- ``drift(name)``: the full drift of one array (error-controlled steps), ``counted(name)`` the
  coordinates its error norm counts;
- ``observe(state, t)``: the observables at a record (``train_risk`` among them: divergence is
  judged on it), ``snapshot(state)``: what ``record.snapshots`` keeps (or None);
- ``session()``: the context its numerics need (threads, BLAS pool, floating-point flags);
- ``outcome(state)``: the Result's fields that are its own (theta, theta0, data, weights, stats).

Subclasses inherit the defaults below; a new system is one class (tests/test_controller.py runs
a small one).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..config import Config
from ..store import checkpoint
from . import memory
from .problem import record_steps


class System:
    """The defaults of a system (module docstring)."""

    cfg: Config
    first: dict                         # the record at t = 0
    streams: tuple = ()                 # the random streams its draws use: "noise", "batch"
    noise_shape: tuple | None = None    # the shape of one step's Gaussian noise, if it takes any
    threads: int = 1

    def initial(self) -> dict:
        raise NotImplementedError

    def identity(self) -> str:
        return checkpoint.arrays_hash(*self.initial().values())

    def steps(self) -> np.ndarray:
        """The steps at which the state is recorded (0 and n_steps among them)."""
        rec = self.cfg.record
        return record_steps(self.cfg.flow.n_steps, rec.n_records, rec.spacing)

    def step_bytes(self) -> int:
        """Memory one step's draws take (noise and samples): bounds the steps drawn at once."""
        temperature = self.cfg.flow.max_temperature > 0
        return int(np.prod(self.noise_shape)) * 8 if self.noise_shape and temperature else 0

    def chunk(self) -> int:
        """How many steps are drawn and taken at once."""
        return max(1, memory.CHUNK_BYTES // max(self.step_bytes(), 1))

    def draws(self, k: int, rngs: dict):
        """What k fixed steps need besides noise (samples), drawn from ``rngs`` (name -> Generator)."""
        return None

    def advance(self, state: dict, draws, noise: np.ndarray, scale: np.ndarray, k: int):
        raise NotImplementedError

    def drift(self, name: str):
        """y -> the full drift at y of the array ``name`` (error-controlled steps)."""
        raise NotImplementedError

    def counted(self, name: str):
        """The coordinates the error norm counts (a boolean array broadcasting to the array), or None: all."""
        return None

    def risk(self, name: str, y) -> float | None:
        """The training risk with the array ``name`` at y, for the divergence check inside
        error-controlled steps, or None (checked at records only)."""
        return None

    def observe(self, state: dict, t: float) -> dict:
        raise NotImplementedError

    def snapshot(self, state: dict):
        return state["theta"].copy() if self.cfg.record.snapshots else None

    @contextmanager
    def session(self):
        with np.errstate(over="ignore", invalid="ignore"):
            yield

    def outcome(self, state: dict) -> dict:
        """Result fields: theta, theta0 (and data, weights) and ``stats`` beyond the controller's."""
        raise NotImplementedError
