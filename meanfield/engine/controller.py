"""The controller: one loop for every system (``system.py``: two-layer particles, deep networks,
the reduced limit, and any system a user writes).

``prepare`` validates a run and builds its system (the first of ``SYSTEMS`` that takes the config)
before anything is written; ``run`` moves it: the seeded random streams (one seed expanded with
``numpy.random.SeedSequence`` into data, initialisation, noise and minibatches, drawn here or by
the system from these streams, and passed to the kernels, so a run is identical whatever the
thread count), the temperature schedule, fixed steps in chunks bounded in memory or
error-controlled steps between the records (``adaptive.py``), the records, the divergence check,
checkpoints, progress, Ctrl-C and SIGTERM, and the ``Result``. ``simulate`` is both.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .. import _lazy
from ..config import Config
from ..errors import ConfigError, CorruptedResultError, DivergenceError, OutputError
from ..model import integrators
from ..model.activations import ACTIVATIONS
from ..model.data import Dataset, make_data, split_arrays, validate_arrays
from ..model.diagnostics import run_seconds
from ..model.langevin import temperature
from ..store import checkpoint, files, runfolder
from ..store.results import Result
from . import adaptive, memory
from .deep_net import Deep
from .interrupts import Interrupts
from .problem import record_steps
from .progress import Reporter, check as check_progress
from .system import System
from .two_layer import TwoLayer

_kernels = _lazy.module("meanfield._kernels")      # Numba loads on the first run

SYSTEMS = (Deep, TwoLayer)          # the system of a config: the first that takes it
STREAMS = ("data", "init", "noise", "batch")        # the seed's children, in this order
NO_NOISE = np.zeros((0, 0, 0))
VACUOUS = (0.1, 1.0)                 # flow.rtol, flow.atol at or above which error control is vacuous
CHUNK_SECONDS = 0.25                 # work per chunk of fixed steps: how soon Ctrl-C or SIGTERM is answered


def simulate(cfg: Config, data=None, progress=None, throw: bool = True, theta0=None, checkpoint=None,
             weights=None) -> Result:
    """Run the flow described by ``cfg``: ``run(prepare(cfg, data, theta0, weights), ...)``.

    data: None (generate from ``cfg.data``) or a pair (X, y) of the user's arrays.
    theta0: initial particles (m, d + 1) to use instead of drawing them from ``cfg.init``.
    weights: the particles' weights omega (m,), non-negative and summing to 1, under mean-field
    scaling: f(x) = alpha sum_i omega_i a_i sigma(w_i . x), each particle moving as without weights
    (a quadrature of a law, ``meanfield.model.quadrature``). None: 1/m each.
    checkpoint: a folder: progress is saved there (see ``record.checkpoint_seconds``, and on
    Ctrl-C or SIGTERM), and a run whose checkpoint is found there resumes from it, bit for bit;
    a changed config or other data is refused. The checkpoint is left in place. The folder is
    locked for the run (``runfolder.lock``): another process using it is refused.
    progress: None (a bar on a terminal once the run has lasted a few seconds), True, False, or
    "lines" (plain lines for logs); see ``meanfield.engine.progress``.
    throw: on divergence raise DivergenceError (carrying the partial result as ``.result``);
    with throw=False return the partial result with status "diverged".
    """
    check_progress(progress)
    return run(prepare(cfg, data, theta0, weights), progress, throw, checkpoint)


def prepare(cfg: Config, data=None, theta0=None, weights=None) -> System:
    """Every check of a run, before it writes anything: the config against the data, the particles
    and the weights, memory, and the record at t = 0 (an output that overflows is refused here,
    not reported as a divergence). Draws the data and the initial state, chooses threads and
    compiles (or loads) the kernels. Returns the run's system, for ``run``."""
    if not isinstance(cfg, Config):
        raise ConfigError.invalid("cfg", type(cfg).__name__, "a meanfield.Config")
    if data is not None:
        data = validate_arrays(data, cfg)
        if cfg.data.kind != "arrays":
            cfg = cfg.updated({"data.kind": "arrays"})
    _check_threads(cfg)
    kind = next(system for system in SYSTEMS if system.takes(cfg))
    theta0, weights = kind.inputs(cfg, theta0, weights)
    memory.check_memory(cfg, data)
    rng_data, rng_init = (np.random.default_rng(s) for s in _seeds(cfg)[:2])
    dataset = make_data(cfg, rng_data) if data is None else split_arrays(data, cfg, rng_data)
    if data is not None and cfg.data.n != len(dataset.y):
        cfg = cfg.updated({"data.n": len(dataset.y)})        # the config records the samples it trained on
    if cfg.flow.batch_size > len(dataset.y) and not cfg.flow.online:
        raise ConfigError.invalid("flow.batch_size", cfg.flow.batch_size,
                                  f"0 (full batch) or at most the {len(dataset.y)} training samples")
    for say in (_say_costly_diagnostics, _say_vacuous_tolerances, _say_extra_records):
        say(cfg, len(dataset.y))
    return kind.prepare(cfg, dataset, rng_init, theta0, weights)


def _say_vacuous_tolerances(cfg: Config, n: int):
    """One warning before an error-controlled run whose tolerances control nothing."""
    if integrators.INTEGRATORS[cfg.flow.integrator].adaptive and (cfg.flow.rtol >= VACUOUS[0]
                                                                     or cfg.flow.atol >= VACUOUS[1]):
        warnings.warn(f"meanfield: flow.rtol = {cfg.flow.rtol:g}, flow.atol = {cfg.flow.atol:g} make the error "
                      f"control vacuous (from rtol >= {VACUOUS[0]:g} or atol >= {VACUOUS[1]:g}, on particles of size "
                      "about 1, almost any step passes): the run follows its steps, not the flow", stacklevel=4)


def _say_extra_records(cfg: Config, n: int):
    """One warning before a run asked for more records than it has steps (they are capped)."""
    if cfg.record.n_records > cfg.flow.n_steps + 1:
        kept = len(record_steps(cfg.flow.n_steps, cfg.record.n_records, cfg.record.spacing))
        warnings.warn(f"meanfield: record.n_records = {cfg.record.n_records} is more than the run's "
                      f"{cfg.flow.n_steps + 1} step times (flow.t_end / flow.dt = {cfg.flow.n_steps}): {kept} "
                      f"records, at most one per step ({cfg.record.spacing} spacing)", stacklevel=4)


def _say_costly_diagnostics(cfg: Config, n: int):
    """One warning before the work when the recorded diagnostics cost more than the steps."""
    names = cfg.record.diagnostics
    if not names or n == 0:
        return
    net = cfg.network
    smooth = ACTIVATIONS[net.activation].transcendental
    extra, steps = run_seconds(names, net.m, n, net.d, cfg.record.n_records, cfg.flow.n_steps, cfg.flow.batch_size,
                               smooth)
    if extra > steps:
        warnings.warn(f"meanfield: record.diagnostics = {list(names)} will cost about {extra / steps:.0f} times the "
                      f"run's own steps (estimated {extra:.2g} s for {cfg.record.n_records} records against "
                      f"{steps:.2g} s of steps); fewer record.n_records, or fewer diagnostics, save that time",
                      stacklevel=4)


def run_data(cfg: Config, data=None) -> Dataset:
    """The samples ``simulate(cfg, data)`` trains and tests on (its data stream of ``cfg.seed``),
    without running; ``data``: the user's arrays (X, y), split as ``simulate`` splits them."""
    rng = np.random.default_rng(_seeds(cfg)[0])
    return make_data(cfg, rng) if data is None else split_arrays(validate_arrays(data, cfg), cfg, rng)


def _seeds(cfg: Config) -> list:
    return np.random.SeedSequence(cfg.seed).spawn(len(STREAMS))


def run(system: System, progress=None, throw: bool = True, checkpoint=None) -> Result:
    """Move a system (``prepare``'s, or any ``System``) to cfg.flow.t_end; the arguments are
    ``simulate``'s. A system can be run again: its streams restart from cfg.seed."""
    check_progress(progress)
    if not isinstance(system, System):
        raise ConfigError.invalid("system", type(system).__name__, "a meanfield.engine.system.System "
                                  "(what meanfield.engine.controller.prepare returns)")
    if checkpoint is None:
        return _run(system, progress, throw, None)
    folder = files.make_folder(runfolder.resolved(checkpoint, "checkpoint"))
    with runfolder.lock(folder, "checkpoint"):
        return _run(system, progress, throw, folder)


def _run(system: System, progress, throw, folder) -> Result:
    with system.session(), Interrupts(sigterm=folder is not None) as interrupts:
        return _loop(system, progress, throw, folder, interrupts)


class _Live:
    """The state of a run in its loop: steps done, arrays, records, snapshots, random streams and
    the adaptive controllers; ``kept`` makes what a checkpoint saves."""

    def __init__(self, system: System, folder, identity: str, steps):
        cfg = system.cfg
        seeds = dict(zip(STREAMS, _seeds(cfg)))
        self.rngs = {name: np.random.default_rng(seeds[name]) for name in system.streams}
        adaptive_steps = integrators.INTEGRATORS[cfg.flow.integrator].adaptive
        if checkpoint.exists(folder):
            state = system.initial()
            saved = checkpoint.load(folder, cfg, identity, list(state), steps)
            for name, rng in self.rngs.items():
                rng.bit_generator.state = files.field(saved.rng_states, name, folder / checkpoint.STATE)
            self.done, self.state, self.records = saved.done, saved.state, saved.records
            self.snapshots = saved.snapshots
            self.earlier, self.controllers = saved.run_seconds, _controllers(saved.controllers, folder)
            self.resumed = True
        else:
            self.done, self.state, self.records, self.earlier = 0, system.initial(), [dict(system.first)], 0.0
            first = system.snapshot(self.state)
            self.snapshots = None if first is None else [first]
            self.controllers = ({name: adaptive.Controller(cfg.flow.dt) for name in self.state} if adaptive_steps
                                else None)
            self.resumed = False
        self.tic = time.perf_counter()
        self.pace = 1                    # steps in the next chunk (time-bounded), learnt as the run goes

    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.tic

    def kept(self) -> checkpoint.Progress:
        """A copy of the state, what a checkpoint saves."""
        return checkpoint.Progress(self.done, {k: v.copy() for k, v in self.state.items()}, list(self.records),
                                   None if self.snapshots is None else list(self.snapshots),
                                   {name: rng.bit_generator.state for name, rng in self.rngs.items()}, self.seconds(),
                                   None if self.controllers is None else
                                   {name: c.state() for name, c in self.controllers.items()})


def _loop(system: System, progress, throw, folder, interrupts: Interrupts) -> Result:
    cfg = system.cfg
    steps = system.steps()
    identity = system.identity() if folder is not None else ""
    live = _Live(system, folder, identity, steps)
    status, message = "completed", ""
    risk_limit = live.risk_limit = cfg.record.divergence_factor * max(1.0, live.records[0]["train_risk"])
    bar = Reporter(progress, cfg.flow.n_steps, live.done, desc="meanfield run")
    consistent = live.kept() if folder is not None else None       # what an interruption saves
    saved = _Checkpoints(folder, cfg, identity, live.done if live.resumed else None)
    if not live.resumed:
        saved.write(consistent)              # at the first record: a kill from now on loses nothing
    try:
        for target in steps[steps > live.done]:
            message = _advance_to(system, live, int(target), bar, interrupts)
            if not message:
                _record(system, live)
                message = _divergence(live.state, live.records[-1]["train_risk"], risk_limit, live.done, cfg)
            if message:
                status = "diverged"
                break
            consistent = live.kept() if folder is not None else None
            if interrupts.requested is not None:
                raise _Stopped
            if cfg.record.stop_below > 0 and \
                    live.records[-1]["train_risk"] <= cfg.record.stop_below * live.records[0]["train_risk"]:
                status = "converged"                 # record.stop_below: the risk at convergence
                break
            if time.perf_counter() - saved.clock >= cfg.record.checkpoint_seconds:
                saved.write(consistent)
    except _Stopped:                          # a signal held during a chunk: its work is kept
        saved.write(live.kept() if folder is not None else None)
        raise KeyboardInterrupt(f"signal {interrupts.requested}") from None
    except KeyboardInterrupt:
        saved.write(consistent)
        raise
    finally:
        bar.close()
    if status == "diverged":
        saved.write(consistent)              # the last finite state
    result = _result(system, live, steps, status, message)
    if isinstance(message, adaptive.Stall):         # not a divergence: a step size the flow cannot keep
        kept = f"; the run's checkpoint in {folder} keeps t = {live.done * cfg.flow.dt:.6g}" if folder else ""
        raise ConfigError(f"{message}{kept}", parameter="flow.dt_floor", value=cfg.flow.dt_floor,
                          allowed="a floor > 0 for a flow with a discontinuous drift")
    _say_rising_objective(cfg, result)
    if status == "diverged" and throw:
        adaptive_steps = live.controllers is not None
        parameter, allowed = (("flow.rtol", "a tolerance the flow can be followed to, or a flow that stays finite")
                              if adaptive_steps else ("flow.dt", "a smaller time step"))
        raise DivergenceError(message, time=live.done * cfg.flow.dt, result=result, parameter=parameter,
                              value=getattr(cfg.flow, parameter[5:]), allowed=allowed)
    return result


RISE = 10.0            # a gradient flow whose objective ends this many times above its start is reported


def _say_rising_objective(cfg: Config, result: Result):
    """A noiseless full-batch flow only lowers its objective (its Lyapunov function): one warning when
    the objective ended RISE times above its start (steps or tolerances too coarse to follow it)."""
    J = result.observables.get("objective")
    if J is None or len(J) < 2 or cfg.flow.max_temperature > 0 or cfg.flow.batch_size or cfg.flow.online:
        return
    if np.isfinite(J[-1]) and J[-1] > RISE * max(abs(J[0]), 1e-300):
        coarse = ("flow.rtol and flow.atol" if integrators.INTEGRATORS[cfg.flow.integrator].adaptive
                  else "flow.dt")
        warnings.warn(f"meanfield: the objective rose from {J[0]:.4g} to {J[-1]:.4g} on a gradient flow, which only "
                      f"lowers it: the steps do not follow the flow ({coarse} too coarse)", stacklevel=4)


def _risky(system: System, name: str, y, limit: float) -> str:
    """Why the flow diverges between records (its training risk past the limit), or ""."""
    risk = system.risk(name, y)
    if risk is None or (np.isfinite(risk) and risk <= limit):
        return ""
    return f"the training risk reached {risk:.3g}, above record.divergence_factor x max(1, R(0)) = {limit:.3g},"


class _Stopped(Exception):
    """A Ctrl-C or SIGTERM held while a chunk of compiled steps ran: stop at the chunk's end."""


def _advance_to(system: System, live: _Live, target: int, bar, interrupts: Interrupts) -> str:
    """Move the state to step ``target``: fixed steps, their draws and noise drawn chunk by chunk,
    each chunk bounded by memory (``system.chunk``) and by CHUNK_SECONDS of work (sized from the
    last chunk's pace: a signal is answered at a chunk's end, its work kept); error-controlled
    steps to the time of ``target`` instead. Returns "" or why the run stalled."""
    flow = system.cfg.flow
    if live.controllers is not None:
        method = integrators.INTEGRATORS[flow.integrator]
        for name, y in live.state.items():
            stalled = adaptive.advance(y, live.done * flow.dt, target * flow.dt, system.drift(name),
                                       live.controllers[name], flow.rtol, flow.atol, system.counted(name),
                                       dt_floor=flow.dt_floor, method=method,
                                       check=lambda at, name=name: _risky(system, name, at, live.risk_limit))
            if stalled:
                return stalled
        bar.update(target - live.done)
        live.done = target
        return ""
    chunk, noisy = system.chunk(), system.noise_shape is not None and flow.max_temperature > 0
    while live.done < target:
        k = int(min(chunk, target - live.done, live.pace))
        tic = time.perf_counter()
        with interrupts.held():
            draws = system.draws(k, live.rngs)
            noise = live.rngs["noise"].standard_normal((k, *system.noise_shape)) if noisy else NO_NOISE
            scale = np.sqrt(2.0 * temperature(flow, (live.done + np.arange(k)) * flow.dt) * flow.dt)
            system.advance(live.state, draws, noise, scale, k)
            live.done += k
        bar.update(k)
        if interrupts.requested is not None and live.done < target:     # at target: after its record
            raise _Stopped
        elapsed = time.perf_counter() - tic
        live.pace = int(min(4 * k, max(1, k * CHUNK_SECONDS / max(elapsed, 1e-9))))   # grows at most 4x
    return ""


def _record(system: System, live: _Live):
    """Observe the state at the current step (and keep a snapshot if the config asks)."""
    live.records.append(system.observe(live.state, live.done * system.cfg.flow.dt))
    if live.snapshots is not None:
        live.snapshots.append(system.snapshot(live.state))


def _result(system: System, live: _Live, steps, status, message) -> Result:
    records, own = live.records, system.outcome(live.state)
    adaptive_stats = {} if live.controllers is None else next(iter(live.controllers.values())).stats()
    names = list(records[0])
    kept = slice(-1, None) if system.cfg.record.n_records == 1 else slice(None)   # the final state only
    return Result(config=system.cfg, t=steps[:len(records)][kept] * system.cfg.flow.dt,
                  observables={name: np.array([r.get(name, math.nan) for r in records])[kept] for name in names},
                  snapshots=np.array(live.snapshots)[kept] if live.snapshots is not None else None,
                  theta=own["theta"], theta0=own["theta0"], status=status, message=message,
                  stats={"steps": int(live.done), "run_seconds": live.seconds(), **own["stats"], **adaptive_stats},
                  data=own.get("data"), weights=own.get("weights"))


class _Checkpoints:
    """Writes the checkpoints of a run into ``folder`` (nothing when it is None); a write that
    fails (a full disk) raises OutputError naming the last checkpoint kept."""

    def __init__(self, folder, cfg, identity, done=None):
        self.folder, self.cfg, self.identity, self.done = folder, cfg, identity, done
        self.clock = time.perf_counter()

    def write(self, progress):
        if self.folder is None:
            return
        try:
            checkpoint.save(self.folder, progress, self.cfg, self.identity)
        except OutputError as exc:
            kept = ("no checkpoint could be written" if self.done is None else
                    f"the last checkpoint, at t = {self.done * self.cfg.flow.dt:.6g} (step {self.done}), is kept in "
                    f"{self.folder}: free space, then `meanfield resume {self.folder}`")
            raise OutputError(f"{exc}; {kept}", parameter=exc.parameter, value=exc.value,
                              allowed=exc.allowed) from None
        self.done, self.clock = progress.done, time.perf_counter()


def _divergence(state: dict, risk, limit, done, cfg) -> str:
    """A message if the state or the risk is not finite or the risk exceeds the limit, else "",
    with the advice that fits: a smaller dt for fixed steps; none when the error-controlled flow
    itself diverges (no step size is to blame)."""
    finite = all(np.all(np.isfinite(y)) for y in state.values())
    if finite and math.isfinite(risk) and risk <= limit:
        return ""
    reason = ("particles or risk not finite" if not (math.isfinite(risk) and finite)
              else f"training risk {risk:.3g} > {limit:.3g}")
    flow = cfg.flow
    if integrators.INTEGRATORS[flow.integrator].adaptive:
        return f"run diverged at t = {done * flow.dt:.6g}: {reason} (flow.integrator = {flow.integrator!r})"
    return (f"run diverged at t = {done * flow.dt:.6g} (step {done}): {reason}; try a smaller flow.dt, "
            f"e.g. {flow.dt / 4:.3g}")


def _controllers(saved, folder) -> dict | None:
    """The adaptive step controllers of a checkpoint (plain dicts), or None (fixed steps)."""
    if saved is None:
        return None
    try:
        return {name: adaptive.Controller.from_state(value) for name, value in saved.items()}
    except (AttributeError, TypeError, KeyError) as exc:
        where = folder / checkpoint.STATE
        raise CorruptedResultError(f"{where} has unreadable controllers: {exc}", parameter="controllers",
                                   value=str(where)) from None


def _check_threads(cfg):
    limit = _kernels.max_threads()
    if cfg.flow.threads > limit:
        raise ConfigError.invalid("flow.threads", cfg.flow.threads,
                                  f"0 (all) or at most {limit}, the Numba thread limit")
