"""The controller: validate, schedule, draw noise and minibatches, step, record, checkpoint.

The time loop runs in Python at record granularity; inside each record interval the particles
move by many steps (``drifts.advance``, in chunks bounded in memory). All randomness comes from
one seed expanded with ``numpy.random.SeedSequence`` into independent streams (data,
initialisation, noise, minibatches), drawn here and passed to the kernels, so a run is identical
whatever the thread count. The live state of a run is one ``checkpoint.Progress``; the loop is
restore, draw, advance, record, checkpoint, result, each a short function below.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .. import _lazy
from ..config import Config
from ..errors import ConfigError, DataError, DivergenceError, OutputError
from ..model import integrators
from ..model.data import Dataset, check_start, draw, make_data, split_arrays, validate_arrays
from ..model.init import initial_particles
from ..model.langevin import temperature
from ..store import checkpoint, files, runfolder
from ..store.results import Result
from . import adaptive, deep_run, drifts, memory, threads as thread_policy
from .interrupts import sigterm_as_interrupt
from .observables import compute
from .problem import Problem, build, record_steps
from .progress import Reporter, check as check_progress

_kernels = _lazy.module("meanfield._kernels")      # Numba loads on the first run


def simulate(cfg: Config, data=None, progress=None, throw: bool = True, theta0=None, checkpoint=None,
             weights=None) -> Result:
    """Run the particle flow described by ``cfg``: ``run(prepare(cfg, data, theta0, weights), ...)``.

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


def prepare(cfg: Config, data=None, theta0=None, weights=None):
    """Every check of a run, before it writes anything: the config against the data, the particles
    and the weights, memory, and the record at t = 0 (an output that overflows is refused here,
    not reported as a divergence). Draws the data and initial particles, chooses threads and
    compiles (or loads) the kernels. Returns the run's plan, to be run once by ``run``."""
    if not isinstance(cfg, Config):
        raise ConfigError.invalid("cfg", type(cfg).__name__, "a meanfield.Config")
    if data is not None:
        data = validate_arrays(data, cfg)
        if cfg.data.kind != "arrays":
            cfg = cfg.updated({"data.kind": "arrays"})
    _check_threads(cfg)
    if cfg.network.depth > 1:
        for name, given in (("theta0", theta0), ("weights", weights)):
            if given is not None:
                raise ConfigError.invalid(name, type(given).__name__, "None with network.depth >= 2 (deep runs draw "
                                          "their parameters from network.parameterization)")
    weights = None if weights is None else _checked_weights(weights, cfg)
    memory.check_memory(cfg, data)
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    rng_data, rng_init = (np.random.default_rng(s) for s in seeds[:2])
    dataset = make_data(cfg, rng_data) if data is None else split_arrays(data, cfg, rng_data)
    if cfg.flow.batch_size > len(dataset.y) and not cfg.flow.online:
        raise ConfigError.invalid("flow.batch_size", cfg.flow.batch_size,
                                  f"0 (full batch) or at most the {len(dataset.y)} training samples")
    if cfg.network.depth > 1:
        return deep_run.prepare(cfg, dataset, rng_init, seeds[2:])
    if theta0 is None:
        theta0 = initial_particles(cfg.network, cfg.init, rng_init)
    else:
        theta0 = _checked_particles(theta0, cfg)
    problem = build(cfg, dataset, theta0, weights)
    with _numerics(problem):
        return _prepare(problem, dataset, seeds[2:])


def run(plan, progress=None, throw: bool = True, checkpoint=None) -> Result:
    """Run a plan made by ``prepare`` (once: its random streams are consumed); the arguments are
    ``simulate``'s."""
    check_progress(progress)
    if checkpoint is None:
        return _run(plan, progress, throw, None)
    folder = files.make_folder(runfolder.resolved(checkpoint, "checkpoint"))
    with runfolder.lock(folder, "checkpoint"):
        return _run(plan, progress, throw, folder)


def run_data(cfg: Config) -> Dataset:
    """The samples ``simulate(cfg)`` draws (its data stream of ``cfg.seed``), without running."""
    return make_data(cfg, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[0]))


def _checked_particles(theta0, cfg) -> np.ndarray:
    shape = (cfg.network.m, cfg.network.d + 1)
    theta0 = np.asarray(theta0)
    if theta0.dtype.kind not in "biuf" or theta0.shape != shape:
        raise DataError.invalid("theta0", f"array of shape {theta0.shape} and dtype {theta0.dtype}",
                                f"a real array of shape (network.m, network.d + 1) = {shape}")
    if not np.all(np.isfinite(theta0)):
        raise DataError.invalid("theta0", "non-finite values", "finite values only")
    return np.array(theta0, dtype=np.float64, order="C")


def _checked_weights(weights, cfg) -> np.ndarray:
    """The weights as float64 (m,), or a DataError / ConfigError naming what is wrong."""
    m = cfg.network.m
    weights = np.asarray(weights)
    if weights.dtype.kind not in "biuf" or weights.shape != (m,):
        raise DataError.invalid("weights", f"array of shape {weights.shape} and dtype {weights.dtype}",
                                f"a real array of shape (network.m,) = ({m},)")
    weights = np.array(weights, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise DataError.invalid("weights", "negative or non-finite values", "finite values >= 0")
    total = math.fsum(weights)
    if abs(total - 1.0) > 1e-12:
        raise DataError.invalid("weights", f"values summing to {total!r}", "weights summing to 1 within 1e-12")
    net = cfg.network
    for name, bad, allowed in (
            ("network.scaling", net.scaling != "mean_field", "'mean_field' with weighted particles (the weights "
             "replace the 1/m of the mean-field predictor)"),
            ("network.linearized", net.linearized, "false with weighted particles"),
            ("record.diagnostics", bool(cfg.record.diagnostics), "[] with weighted particles (the diagnostics "
             "assume equal weights)")):
        if bad:
            value = getattr(getattr(cfg, name.split(".")[0]), name.split(".")[1])
            raise ConfigError.invalid(name, list(value) if isinstance(value, tuple) else value, allowed)
    return weights


@contextmanager
def _numerics(problem: Problem):
    """One thread pool: BLAS at 1 thread while Numba's parallel kernels run (BLAS threads spinning
    against Numba's made the population step 16x slower at m = 160; and BLAS's own threads would
    make results depend on the thread count). Overflow is detected and reported
    (``data.check_start``, ``_divergence``), not warned about."""
    scipy_blas = problem.exact or problem.path == "blas"
    with _kernels.blas_threads(1, scipy_blas), np.errstate(over="ignore", invalid="ignore"):
        yield


def _run(plan, progress, throw, folder) -> Result:
    if isinstance(plan, deep_run.Plan):
        return deep_run.run(plan, throw, folder, progress)
    if not isinstance(plan, Plan):
        raise ConfigError.invalid("plan", type(plan).__name__, "what meanfield.engine.controller.prepare returns")
    _kernels.set_threads(plan.threads)
    with _numerics(plan.problem), sigterm_as_interrupt(folder is not None):
        return _run_loop(plan, progress, throw, folder)


@dataclass
class Plan:
    """A two-layer run, validated and set up (``prepare``): the problem, the schedule, the step
    machinery, the record at t = 0 and the seeds of the noise and minibatch streams."""

    problem: Problem
    dataset: object
    steps: np.ndarray            # the record steps
    stepper: drifts.Stepper
    chunk: int                   # steps drawn and advanced at once
    full_rows: np.ndarray        # (1, n): every training sample, the full-batch index
    threads: int
    compile_seconds: float
    adaptive: bool               # error-controlled steps (``adaptive.py``) between the records
    first: dict                  # the record at t = 0
    streams: tuple               # SeedSequences of the noise and the minibatches


def _prepare(problem: Problem, dataset, streams) -> Plan:
    """Threads, record steps, buffers, chunk size; compile (or load) the kernels; the first record."""
    cfg = problem.cfg
    flow = cfg.flow
    m, p = problem.theta0.shape
    batch = flow.batch_size or len(problem.y)
    work = thread_policy.work_per_step(batch, m, p, population=problem.exact,
                                       pairs=cfg.flow.interaction.kind == "gaussian")
    threads = _kernels.set_threads(thread_policy.choose(flow.threads, work, _kernels.max_threads()))
    per_step = (m * p * 8 * (flow.max_temperature > 0) + (batch * (cfg.network.d + 2) * 8 if flow.online else 0)
                + (len(problem.y) * 8 if flow.batch_size and not flow.online else 0))
    full_rows = np.arange(len(problem.y), dtype=np.int64)[None, :]
    stepper = drifts.Stepper(problem, batch)
    with drifts.announced_compile() as compile_clock:
        drifts.compile_kernels(problem, full_rows[:, :batch], stepper.buffers)
    theta_lin = problem.theta0.copy() if "tangent_gap" in cfg.record.diagnostics else None
    first = compute(problem, problem.theta0.copy(), theta_lin, 0.0)
    check_start(first["train_risk"], {"X": problem.X, "y": problem.y, "theta0": problem.theta0})
    return Plan(problem, dataset, record_steps(flow.n_steps, cfg.record.n_records, cfg.record.spacing), stepper,
                max(1, memory.CHUNK_BYTES // max(per_step, 1)), full_rows, threads, compile_clock(),
                integrators.INTEGRATORS[flow.integrator].adaptive, first, tuple(streams))


def _restore(run: Plan, folder, data_hash, rng_noise, rng_batch) -> checkpoint.Progress:
    """The state at the first record, or the one a checkpoint in ``folder`` saved."""
    problem = run.problem
    if checkpoint.exists(folder):
        state = checkpoint.load(folder, problem.cfg, data_hash)
        rng_noise.bit_generator.state = state.rng_states["noise"]
        rng_batch.bit_generator.state = state.rng_states["batch"]
        return state
    theta = problem.theta0.copy()
    theta_lin = problem.theta0.copy() if "tangent_gap" in problem.cfg.record.diagnostics else None
    controllers = ({name: adaptive.Controller(problem.cfg.flow.dt) for name in ("theta", "theta_lin")[:1 + (
        theta_lin is not None)]} if run.adaptive else None)
    return checkpoint.Progress(0, theta, theta_lin, [dict(run.first)],
                               [theta.copy()] if problem.cfg.record.snapshots else None, {}, 0.0, controllers)


def _advance_to(run: Plan, state: checkpoint.Progress, target: int, rng_noise, rng_batch, bar) -> str:
    """Draw the samples and noise of the steps up to ``target`` and take them, chunk by chunk;
    adaptive runs integrate to the time of ``target`` instead. Returns "" or why the run stalled."""
    problem = run.problem
    if run.adaptive:
        return _integrate_to(run, state, target, bar)
    flow = problem.cfg.flow
    m, p = state.theta.shape
    while state.done < target:
        k = int(min(run.chunk, target - state.done))
        X, y, f0, idx = _samples(problem, run.dataset, k, run.full_rows, rng_batch)
        noise = rng_noise.standard_normal((k, m, p)) if flow.max_temperature > 0 else np.zeros((0, 0, 0))
        scale = np.sqrt(2.0 * temperature(flow, (state.done + np.arange(k)) * flow.dt) * flow.dt)
        run.stepper(state.theta, X, y, f0, idx, noise, scale, k)
        if state.theta_lin is not None:
            run.stepper(state.theta_lin, X, y, f0, idx, noise, scale, k, tangent=True)
        state.done += k
        bar.update(k)
    return ""


def _integrate_to(run: Plan, state: checkpoint.Progress, target: int, bar) -> str:
    """The error-controlled flow (``adaptive.advance``) from the current record time to target * dt."""
    problem, flow = run.problem, run.problem.cfg.flow
    counted = problem.mask.astype(bool)
    for name, tangent in (("theta", None), ("theta_lin", True)):
        theta = getattr(state, name)
        if theta is None:
            continue
        stalled = adaptive.advance(theta, state.done * flow.dt, target * flow.dt,
                                   lambda at: drifts.drift(problem, at, run.stepper.buffers, tangent),
                                   state.controllers[name], flow.rtol, flow.atol, counted, run.stepper.buffers["K"],
                                   flow.dt_floor)
        if stalled:
            return stalled
    bar.update(target - state.done)
    state.done = target
    return ""


def _record(problem: Problem, state: checkpoint.Progress):
    state.records.append(compute(problem, state.theta, state.theta_lin, state.done * problem.cfg.flow.dt))
    if state.snapshots is not None:
        state.snapshots.append(state.theta.copy())


def _snapshot(state: checkpoint.Progress, rng_noise, rng_batch, seconds: float, folder) -> checkpoint.Progress | None:
    """A copy of the state (what a checkpoint saves), with the generators' states and run time;
    None without a checkpoint folder (at m = 1.5 million a copy of theta is 1.2 GB)."""
    if folder is None:
        return None
    return checkpoint.Progress(state.done, state.theta.copy(), None if state.theta_lin is None else state.theta_lin.copy(),
                               list(state.records), None if state.snapshots is None else list(state.snapshots),
                               {"noise": rng_noise.bit_generator.state, "batch": rng_batch.bit_generator.state},
                               seconds, adaptive.copied(state.controllers))


def _result(run: Plan, state: checkpoint.Progress, status, message, seconds) -> Result:
    problem = run.problem
    records = state.records
    return Result(
        config=problem.cfg, t=run.steps[:len(records)] * problem.cfg.flow.dt,
        observables={name: np.array([r[name] for r in records]) for name in records[0]},
        snapshots=np.array(state.snapshots) if state.snapshots is not None else None,
        theta=state.theta, theta0=problem.theta0, status=status, message=message,
        stats={"steps": int(state.done), "compile_seconds": run.compile_seconds, "run_seconds": seconds,
               "threads": run.threads, "n_train": len(problem.y), "n_test": len(problem.y_test),
               **(state.controllers["theta"].stats() if run.adaptive else {})},
        data=Dataset(problem.X, problem.y, problem.X_test, problem.y_test, problem.teacher), weights=problem.weights)


def _run_loop(run: Plan, progress, throw, folder) -> Result:
    problem = run.problem
    cfg = problem.cfg
    rng_noise, rng_batch = (np.random.default_rng(s) for s in run.streams)
    data_hash = checkpoint.arrays_hash(problem.X, problem.y, problem.X_test, problem.y_test, problem.theta0,
                                       *(() if problem.weights is None else (problem.weights,)))
    state = _restore(run, folder, data_hash, rng_noise, rng_batch)
    earlier, tic = state.run_seconds, time.perf_counter()

    def clock():
        return earlier + time.perf_counter() - tic

    status, message = "completed", ""
    risk_limit = cfg.record.divergence_factor * max(1.0, state.records[0]["train_risk"])
    bar = Reporter(progress, cfg.flow.n_steps, state.done, desc="meanfield run")
    consistent = _snapshot(state, rng_noise, rng_batch, clock(), folder)     # what an interruption saves
    saved = _Checkpoints(folder, cfg, data_hash, state.done or None)
    saved.write(consistent)                  # at the first record: a kill from now on loses nothing
    try:
        for target in run.steps[run.steps > state.done]:
            message = _advance_to(run, state, target, rng_noise, rng_batch, bar)
            if not message:
                _record(problem, state)
                message = _divergence(state.theta, state.records[-1]["train_risk"], risk_limit, state.done,
                                      cfg.flow.dt, run.adaptive)
            if message:
                status = "diverged"
                break
            consistent = _snapshot(state, rng_noise, rng_batch, clock(), folder)
            if time.perf_counter() - saved.clock >= cfg.record.checkpoint_seconds:
                saved.write(consistent)
    except KeyboardInterrupt:
        saved.write(consistent)
        raise
    finally:
        bar.close()
    if status == "diverged":
        saved.write(consistent)              # the last finite state
    result = _result(run, state, status, message, clock())
    if status == "diverged" and throw:
        parameter, allowed = (("flow.rtol", "a tolerance the flow can be followed to, or a flow that stays finite")
                              if run.adaptive else ("flow.dt", "a smaller time step"))
        raise DivergenceError(message, time=state.done * cfg.flow.dt, result=result, parameter=parameter,
                              value=getattr(cfg.flow, parameter[5:]), allowed=allowed)
    return result


class _Checkpoints:
    """Writes the checkpoints of a run into ``folder`` (nothing when it is None); a write that
    fails (a full disk) raises OutputError naming the last checkpoint kept."""

    def __init__(self, folder, cfg, data_hash, done=None):
        self.folder, self.cfg, self.data_hash, self.done = folder, cfg, data_hash, done
        self.clock = time.perf_counter()

    def write(self, progress):
        if self.folder is None:
            return
        try:
            checkpoint.save(self.folder, progress, self.cfg, self.data_hash)
        except OutputError as exc:
            kept = ("no checkpoint could be written" if self.done is None else
                    f"the last checkpoint, at t = {self.done * self.cfg.flow.dt:.6g} (step {self.done}), is kept in "
                    f"{self.folder}: free space, then `meanfield resume {self.folder}`")
            raise OutputError(f"{exc}; {kept}", parameter=exc.parameter, value=exc.value,
                              allowed=exc.allowed) from None
        self.done, self.clock = progress.done, time.perf_counter()


def _divergence(theta, risk, limit, done, dt, adaptive_steps=False) -> str:
    """A message if the particles or the risk are not finite or the risk exceeds the limit, else ""."""
    if np.all(np.isfinite(theta)) and math.isfinite(risk) and risk <= limit:
        return ""
    reason = ("particles or risk not finite" if not (math.isfinite(risk) and np.all(np.isfinite(theta)))
              else f"training risk {risk:.3g} > {limit:.3g}")
    if adaptive_steps:             # the error-controlled flow itself diverges: no step size is to blame
        return f"run diverged at t = {done * dt:.6g}: {reason} (flow.integrator = 'adaptive')"
    return f"run diverged at t = {done * dt:.6g} (step {done}): {reason}; try a smaller flow.dt, e.g. {dt / 4:.3g}"


def _samples(problem, dataset, k, full_rows, rng_batch):
    """(X, y, f0, idx) for the next k steps: full batch, minibatches, or fresh online samples."""
    flow = problem.cfg.flow
    B = flow.batch_size
    if flow.online:
        X, y = draw(problem.cfg, dataset.teacher, k * B, rng_batch)
        f0 = (problem.predict(problem.theta0, X, np.zeros(len(y))) if problem.cfg.network.centered
              else np.zeros(len(y)))
        return X, y, f0, np.arange(k * B, dtype=np.int64).reshape(k, B)
    if B:
        n = len(problem.y)
        idx = rng_batch.permuted(np.broadcast_to(np.arange(n, dtype=np.int64), (k, n)), axis=1)[:, :B]
        return problem.X, problem.y, problem.f0, np.ascontiguousarray(idx)
    return problem.X, problem.y, problem.f0, full_rows


def _check_threads(cfg):
    limit = _kernels.max_threads()
    if cfg.flow.threads > limit:
        raise ConfigError.invalid("flow.threads", cfg.flow.threads,
                                  f"0 (all) or at most {limit}, the Numba thread limit")
