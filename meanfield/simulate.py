"""The controller: validate, schedule, draw noise and minibatches, call the kernels, record.

The time loop runs in Python at record granularity; inside each record interval the engine moves
the particles by many steps (in chunks bounded in memory): one compiled ``advance`` call (the
fused path), or one compiled call per step whose tiles of neurons x samples do their matrix
products by BLAS (the BLAS path, ``flow.engine``), or the exact population step. All randomness
comes from one seed expanded with ``numpy.random.SeedSequence`` into independent streams (data,
initialisation, noise, minibatches), drawn here and passed to the kernels, so a run is identical
whatever the thread count.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import _lazy, checkpoint, population
from . import threads as thread_policy
from .config import Config
from .data import draw, make_data, split_arrays, validate_arrays
from .errors import ConfigError, DataError, DivergenceError, OutputError
from .init import initial_particles
from .langevin import temperature
from .observables import Problem, compute
from .progress import Reporter
from .progress import check as check_progress
from .results import Result

_kernels = _lazy.module("meanfield._kernels")      # Numba loads on the first run

CHUNK_BYTES = 32 * 2**20   # memory for the noise and samples drawn at once


def record_steps(n_steps: int, n_records: int, spacing: str) -> np.ndarray:
    """Steps at which the state is recorded: 0, ..., n_steps (geometric or linear, unique)."""
    if spacing == "linear":
        steps = np.linspace(0, n_steps, n_records)
    else:
        # geomspace(1, K, 1) is [1], not [K]: with two records, take [0, K]
        tail = np.geomspace(1, n_steps, n_records - 1) if n_records > 2 else [n_steps]
        steps = np.concatenate([[0], tail])
    return np.unique(np.round(steps).astype(np.int64))


def simulate(cfg: Config, data=None, progress=None, throw: bool = True, theta0=None, checkpoint=None) -> Result:
    """Run the particle flow described by ``cfg``.

    data: None (generate from ``cfg.data``) or a pair (X, y) of the user's arrays.
    theta0: initial particles (m, d + 1) to use instead of drawing them from ``cfg.init``.
    checkpoint: a folder: progress is saved there (see ``record.checkpoint_seconds``, and on
    Ctrl-C or SIGTERM), and a run whose checkpoint is found there resumes from it, bit for bit;
    a changed config or other data is refused. The checkpoint is left in place.
    progress: None (a bar on a terminal once the run has lasted a few seconds), True, False, or
    "lines" (plain lines for logs); see ``meanfield.progress``.
    throw: on divergence raise DivergenceError (carrying the partial result as ``.result``);
    with throw=False return the partial result with status "diverged".
    """
    if not isinstance(cfg, Config):
        raise ConfigError.invalid("cfg", type(cfg).__name__, "a meanfield.Config")
    if data is not None:
        data = validate_arrays(data, cfg)
        if cfg.data.kind != "arrays":
            cfg = cfg.updated({"data.kind": "arrays"})
    check_progress(progress)
    _check_threads(cfg)
    _check_memory(cfg, data)
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    rng_data, rng_init, rng_noise, rng_batch = (np.random.default_rng(s) for s in seeds)
    dataset = make_data(cfg, rng_data) if data is None else split_arrays(data, cfg, rng_data)
    if cfg.flow.batch_size > len(dataset.y) and not cfg.flow.online:
        raise ConfigError.invalid("flow.batch_size", cfg.flow.batch_size,
                                  f"0 (full batch) or at most the {len(dataset.y)} training samples")
    if theta0 is None:
        theta0 = initial_particles(cfg.network, cfg.init, rng_init)
    else:
        theta0 = _checked_particles(theta0, cfg)
    problem = _problem(cfg, dataset, theta0)
    return _run(problem, dataset, rng_noise, rng_batch, progress, throw, checkpoint)


def _checked_particles(theta0, cfg) -> np.ndarray:
    shape = (cfg.network.m, cfg.network.d + 1)
    theta0 = np.asarray(theta0)
    if theta0.dtype.kind not in "biuf" or theta0.shape != shape:
        raise DataError.invalid("theta0", f"array of shape {theta0.shape} and dtype {theta0.dtype}",
                                f"a real array of shape (network.m, network.d + 1) = {shape}")
    if not np.all(np.isfinite(theta0)):
        raise DataError.invalid("theta0", "non-finite values", "finite values only")
    return np.array(theta0, dtype=np.float64, order="C")


def _problem(cfg, dataset, theta0) -> Problem:
    """Kernel-ready arrays; f0 is the network at initialisation when ``centered`` (else 0)."""
    arrays = [np.ascontiguousarray(a, dtype=np.float64)
              for a in (dataset.X, dataset.y, dataset.X_test, dataset.y_test)]
    X, y, X_test, y_test = arrays
    zeros = Problem(cfg, X, y, np.zeros(len(y)), X_test, y_test, np.zeros(len(y_test)), theta0,
                    dataset.teacher)
    if not cfg.network.centered:
        return zeros
    return Problem(cfg, X, y, zeros.predict(theta0, X, zeros.f0), X_test, y_test,
                   zeros.predict(theta0, X_test, zeros.f0_test), theta0, dataset.teacher)


def _run(problem: Problem, dataset, rng_noise, rng_batch, progress, throw, folder) -> Result:
    # One thread pool: BLAS at 1 thread while Numba's parallel kernels run (BLAS threads
    # spinning against Numba's made the population step 16x slower at m = 160; and BLAS's own
    # threads would make results depend on the thread count).
    scipy_blas = problem.exact or problem.path == "blas"
    # overflow is detected and reported (_check_overflow, _divergence), not warned about
    with _kernels.blas_threads(1, scipy_blas), _sigterm_as_interrupt(folder is not None), \
            np.errstate(over="ignore", invalid="ignore"):
        return _run_loop(problem, dataset, rng_noise, rng_batch, progress, throw, folder)


@contextmanager
def _sigterm_as_interrupt(active: bool):
    """Within a checkpointed run, SIGTERM raises KeyboardInterrupt (so a checkpoint is written)."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_loop(problem: Problem, dataset, rng_noise, rng_batch, progress, throw, folder) -> Result:
    cfg = problem.cfg
    net, flow = cfg.network, cfg.flow
    m, p = problem.theta0.shape
    batch = flow.batch_size or len(problem.y)
    work = thread_policy.work_per_step(batch, m, p, population=problem.exact)
    threads = _kernels.set_threads(thread_policy.choose(flow.threads, work, _kernels.max_threads()))
    steps = record_steps(flow.n_steps, cfg.record.n_records, cfg.record.spacing)
    buffers = _buffers(problem, batch)
    noisy = flow.max_temperature > 0
    per_step = (m * p * 8 * noisy + (batch * (net.d + 2) * 8 if flow.online else 0)
                + (len(problem.y) * 8 if flow.batch_size and not flow.online else 0))
    chunk = max(1, CHUNK_BYTES // max(per_step, 1))
    full_rows = np.arange(len(problem.y), dtype=np.int64)[None, :]

    with _announced_compile() as compile_clock:
        _compile(problem, full_rows[:, :batch], buffers)
    compile_seconds = compile_clock()

    # the loop's state; restored from a checkpoint when one is found
    lockstep = "tangent_gap" in cfg.record.diagnostics
    theta = problem.theta0.copy()
    theta_lin = problem.theta0.copy() if lockstep else None
    records = [compute(problem, theta, theta_lin, 0.0)]
    _check_overflow(problem, records[0]["train_risk"])
    snapshots = [theta.copy()] if cfg.record.snapshots else None
    done, earlier_seconds = 0, 0.0
    data_hash = checkpoint.arrays_hash(problem.X, problem.y, problem.X_test, problem.y_test, problem.theta0)
    if checkpoint.exists(folder):
        state = checkpoint.load(folder, cfg, data_hash)
        done, theta, theta_lin, records, snapshots = (state.done, state.theta, state.theta_lin,
                                                      state.records, state.snapshots)
        rng_noise.bit_generator.state = state.rng_states["noise"]
        rng_batch.bit_generator.state = state.rng_states["batch"]
        earlier_seconds = state.run_seconds
    status, message = "completed", ""
    risk_limit = cfg.record.divergence_factor * max(1.0, records[0]["train_risk"])
    bar = Reporter(progress, flow.n_steps, done, desc="meanfield run")
    tic = time.perf_counter()

    def state_now():
        return checkpoint.Progress(done, theta.copy(), None if theta_lin is None else theta_lin.copy(),
                                   list(records), None if snapshots is None else list(snapshots),
                                   {"noise": rng_noise.bit_generator.state, "batch": rng_batch.bit_generator.state},
                                   earlier_seconds + time.perf_counter() - tic)

    consistent = state_now()                 # what an interruption saves: the last record time
    saved = _Checkpoints(folder, cfg, data_hash, None if done == 0 else done)
    saved.write(consistent)                  # at the first record: a kill from now on loses nothing
    try:
        for target in steps[steps > done]:
            while done < target:
                k = int(min(chunk, target - done))
                X, y, f0, idx = _samples(problem, dataset, k, full_rows, rng_batch)
                noise = rng_noise.standard_normal((k, m, p)) if noisy else np.zeros((0, 0, 0))
                scale = np.sqrt(2.0 * temperature(flow, (done + np.arange(k)) * flow.dt) * flow.dt)
                _advance(problem, theta, X, y, f0, idx, noise, scale, k, buffers)
                if lockstep:
                    _advance(problem, theta_lin, X, y, f0, idx, noise, scale, k, buffers, tangent=True)
                done += k
                bar.update(k)
            records.append(compute(problem, theta, theta_lin, done * flow.dt))
            if snapshots is not None:
                snapshots.append(theta.copy())
            message = _divergence(theta, records[-1]["train_risk"], risk_limit, done, flow.dt)
            if message:
                status = "diverged"
                break
            consistent = state_now()
            if time.perf_counter() - saved.clock >= cfg.record.checkpoint_seconds:
                saved.write(consistent)
    except KeyboardInterrupt:
        saved.write(consistent)
        raise
    finally:
        bar.close()
    if status == "diverged":
        saved.write(consistent)              # the last finite state
    n_rec = len(records)
    result = Result(
        config=cfg, t=steps[:n_rec] * flow.dt,
        observables={name: np.array([r[name] for r in records]) for name in records[0]},
        snapshots=np.array(snapshots) if snapshots is not None else None,
        theta=theta, theta0=problem.theta0, status=status, message=message,
        stats={"steps": int(done), "compile_seconds": compile_seconds,
               "run_seconds": earlier_seconds + time.perf_counter() - tic,
               "threads": threads, "n_train": len(problem.y), "n_test": len(problem.y_test)})
    if status == "diverged" and throw:
        raise DivergenceError(message, time=done * flow.dt, result=result, parameter="flow.dt",
                              value=flow.dt, allowed="a smaller time step")
    return result


def _check_overflow(problem, risk):
    """A risk that is not finite before any step is an overflow of the inputs, labels or initial
    particles (all finite, validated), not a too-large dt: say which is largest."""
    if math.isfinite(risk):
        return
    sizes = {name: float(np.max(np.abs(a))) if a.size else 0.0
             for name, a in (("X", problem.X), ("y", problem.y), ("theta0", problem.theta0))}
    name = max(sizes, key=sizes.get)
    raise DataError(f"the training risk at t = 0 is {risk}: the network's output overflows float64 (largest |X| = "
                    f"{sizes['X']:.3g}, |y| = {sizes['y']:.3g}, |theta0| = {sizes['theta0']:.3g}); rescale {name}",
                    parameter=name, value=sizes[name], allowed="values whose products and squares stay finite")


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


def _divergence(theta, risk, limit, done, dt) -> str:
    """A message if the particles or the risk are not finite or the risk exceeds the limit, else ""."""
    if np.all(np.isfinite(theta)) and math.isfinite(risk) and risk <= limit:
        return ""
    reason = ("particles or risk not finite" if not (math.isfinite(risk) and np.all(np.isfinite(theta)))
              else f"training risk {risk:.3g} > {limit:.3g}")
    return f"run diverged at t = {done * dt:.6g} (step {done}): {reason}; try a smaller flow.dt, e.g. {dt / 4:.3g}"


def _buffers(problem, batch) -> dict:
    """Work arrays allocated once per run: nothing of size batch x m is allocated per step."""
    m, p = problem.theta0.shape
    out = {"r": np.empty(batch), "vel": np.empty((m, p)), "theta_pred": np.empty((m, p)),
           "vel_pred": np.empty((m, p)), "theta_t": np.empty((p, m))}
    if problem.path == "blas" and not problem.exact:
        out["kick"] = np.empty((m, p))
        block, chunk, recompute = blas_plan(m, batch, p - 1)
        blocks, chunks = -(-m // block), max(1, -(-batch // chunk))
        lanes, tiles = (min(blocks, _kernels.threads()), 1) if recompute else (blocks, chunks)
        out.update(W=np.empty((m, p - 1)), Z=np.empty((lanes, tiles, block * chunk)),
                   fpart=np.empty((blocks, chunks * chunk)))
    return out


COMPILE_NOTICE_SECONDS = 2.0     # loading cached kernels takes well under this; compiling, 10-60 s


@contextmanager
def _announced_compile():
    """Time the kernels' compilation (or cache load); when it outlasts COMPILE_NOTICE_SECONDS (a
    first run, nothing cached yet), say so on stderr at that moment and say how long it took."""
    tic = time.perf_counter()
    announced = threading.Event()

    def announce():
        announced.set()
        print("meanfield: compiling kernels (first run only) ...", file=sys.stderr, flush=True)

    timer = threading.Timer(COMPILE_NOTICE_SECONDS, announce)
    timer.daemon = True
    timer.start()
    try:
        yield lambda: seconds
    finally:
        timer.cancel()
        seconds = time.perf_counter() - tic
        if announced.is_set():
            print(f"meanfield: kernels compiled in {seconds:.1f} s; later runs load them from the cache",
                  file=sys.stderr, flush=True)


def _compile(problem, rows, buffers):
    """Compile the kernels this run uses (or load them from the cache): zero steps of the fused
    path; the BLAS path's drift on one zero sample, with work arrays of the run's types."""
    m, p = problem.theta0.shape
    _advance(problem, problem.theta0.copy(), problem.X, problem.y, problem.f0, rows,
             np.zeros((0, 0, 0)), np.zeros(0), 0, buffers)
    if problem.path == "blas" and not problem.exact:
        block = _kernels.blas_plan(m, 1, p - 1)[0]
        one = {**buffers, "Z": np.empty((1, 1, block)), "fpart": np.empty((-(-m // block), 1)),
               "r": np.empty(1)}
        blas_drift(problem, problem.theta0, np.zeros((1, p - 1)), np.zeros(1), np.zeros(1), one,
                   np.empty((m, p)))


def _advance(problem, theta, X, y, f0, idx, noise, scale, k, buffers, tangent=None):
    """k steps of the network (or of its tangent model at theta0: config or ``tangent=True``)."""
    cfg = problem.cfg
    if problem.exact:
        return _advance_population(problem, theta, noise, scale, k)
    tangent = cfg.network.linearized if tangent is None else tangent
    if problem.path == "blas" and not tangent:
        return _advance_blas(problem, theta, X, y, f0, idx, noise, scale, k, buffers)
    _kernels.advance(theta, problem.theta0, X, y, f0, idx, noise, scale, k, cfg.flow.dt,
                     problem.out_scale, problem.vel_scale, problem.act, cfg.network.activation_params,
                     problem.loss, cfg.flow.lam, problem.mask, tangent, cfg.flow.integrator == "heun", True,
                     buffers["r"], buffers["vel"], buffers["theta_pred"], buffers["vel_pred"], buffers["theta_t"])


def blas_drift(problem, theta, X, y, f0, buffers, out, tiles=None):
    """The drift of every particle by ``_kernels.blas_drift``; writes ``out`` (m, d + 1).

    X (B, d), y, f0 (B,): this step's samples; tiles: X in sample tiles (``_kernels.chunked``) if
    already made. Same velocity as ``model.velocity``."""
    cfg = problem.cfg
    m, p = theta.shape
    block, chunk, _ = _kernels.blas_plan(m, len(y), p - 1)
    Xc, XTc = _kernels.chunked(X, chunk) if tiles is None else tiles
    _kernels.blas_drift(theta, Xc, XTc, y, f0, problem.out_scale, problem.vel_scale, problem.act,
                        cfg.network.activation_params, problem.loss, cfg.flow.lam, problem.mask, block,
                        buffers["W"], buffers["Z"], buffers["fpart"], buffers["r"], out)
    return out


def _advance_blas(problem, theta, X, y, f0, idx, noise, scale, k, buffers):
    """k Euler (Euler–Maruyama) or Heun steps through ``blas_drift``, updating in place."""
    flow = problem.cfg.flow
    vel, pred, vel_pred, kick = buffers["vel"], buffers["theta_pred"], buffers["vel_pred"], buffers["kick"]
    m, p = theta.shape
    chunk = _kernels.blas_plan(m, idx.shape[1], p - 1)[1]
    full = idx.shape[1] == len(y) and idx.shape[0] == 1
    tiles = _kernels.chunked(X, chunk) if full else None              # the same samples at every step
    noisy = noise.shape[0] > 0
    for s in range(k):
        rows = idx[s % idx.shape[0]]
        Xs, ys, f0s = (X, y, f0) if full else (X[rows], y[rows], f0[rows])
        step_tiles = tiles if full else _kernels.chunked(Xs, chunk)
        blas_drift(problem, theta, Xs, ys, f0s, buffers, vel, step_tiles)
        if noisy:
            np.multiply(noise[s], scale[s] * problem.mask, out=kick)
        if flow.integrator == "heun":
            np.multiply(vel, flow.dt, out=pred)
            pred += theta
            if noisy:
                pred += kick
            blas_drift(problem, pred, Xs, ys, f0s, buffers, vel_pred, step_tiles)
            vel += vel_pred
            vel *= 0.5
        vel *= flow.dt
        theta += vel
        if noisy:
            theta += kick


def _advance_population(problem, theta, noise, scale, k):
    """k Euler (Euler–Maruyama) or Heun steps of the exact population flow: the sums over neuron
    pairs by ``_kernels.population_sums`` (closed forms) or NumPy quadrature."""
    cfg = problem.cfg
    net, flow = cfg.network, cfg.flow
    mask = problem.mask

    def drift(at):
        return population.population_velocity(at, problem.teacher, net, flow, net.activation, compiled=True)

    for s in range(k):
        kick = scale[s] * noise[s] * mask if noise.shape[0] else 0.0
        v = drift(theta)
        if flow.integrator == "heun":
            v = 0.5 * (v + drift(theta + flow.dt * v + kick))
        theta += flow.dt * v + kick


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


def memory_terms(cfg: Config, data=None) -> dict:
    """The memory a run needs, in bytes, by the parameter that drives each term.

    data: None or the validated user arrays (X, y)."""
    net, rec = cfg.network, cfg.record
    p = net.d + 1
    n = len(data[1]) if data is not None else cfg.data.n + cfg.data.n_test
    if cfg.data.kind == "none":
        n = 0
    n_records = len(record_steps(cfg.flow.n_steps, rec.n_records, rec.spacing))
    particles = net.m * p * 8
    batch = cfg.flow.batch_size or n
    block, chunk, recompute = blas_plan(net.m, batch, net.d)
    blas = 0 if cfg.flow.engine == "fused" else (block * chunk * _kernels.max_threads() if recompute else net.m * batch) * 8
    return {"data.n": n * (p + 2) * 8, "network.m": 6 * particles + blas,
            "record.snapshots": n_records * particles if rec.snapshots else 0, "buffers": CHUNK_BYTES}


def estimated_bytes(cfg: Config, data=None) -> int:
    """Memory a run needs (data, particles, buffers, snapshots, noise chunk), in bytes."""
    return int(sum(memory_terms(cfg, data).values()))


STORED_SHARE = 0.5       # the BLAS path keeps its m x B matrix only if it takes under this share of free memory


def blas_plan(m: int, batch: int, d: int) -> tuple:
    """``_kernels.blas_plan`` for this machine: tiles recomputed when the m x B matrix would not fit."""
    return _kernels.blas_plan(m, batch, d, stored_limit=int(STORED_SHARE * available_bytes()))


def available_bytes() -> int:
    """Memory this machine can still give (MemAvailable), or a large number if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62


def _check_memory(cfg: Config, data):
    terms, have = memory_terms(cfg, data), available_bytes()
    need = sum(terms.values())
    if need > have:
        parameter = max(terms, key=terms.get)
        value = {"data.n": len(data[1]) if data is not None else cfg.data.n, "network.m": cfg.network.m,
                 "record.snapshots": True, "buffers": CHUNK_BYTES}[parameter]
        advice = {"data.n": "use fewer samples (data.n, or smaller arrays)",
                  "network.m": "reduce network.m",
                  "record.snapshots": f"the particles at {cfg.record.n_records} record times; set record.snapshots = "
                                      "false, or reduce record.n_records or network.m",
                  "buffers": "this machine has too little free memory for any run"}[parameter]
        raise ConfigError(
            f"this run needs about {need / 2**30:.3g} GiB but only {have / 2**30:.3g} GiB are available; "
            f"most of it ({terms[parameter] / 2**30:.3g} GiB) comes from {parameter} = {value}: {advice}",
            parameter=parameter, value=value, allowed=f"a run that fits in {have / 2**30:.3g} GiB")
