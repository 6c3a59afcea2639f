"""Training a deep network (``network.depth >= 2``, ``deep.py``) in the two-layer engine's time
convention: the run's integrator (``integrators.step``) on d w_l / dt = -dR/dw_l - lam w_l, on the
full batch, minibatches or fresh online samples. ``simulate`` comes here for depth >= 2.

The result's ``theta`` and ``theta0`` are the flat raw parameters (``DeepNet.flatten``; views by
layer: ``network(cfg).unflatten(theta)``); there are no snapshots. Observables at every record:

- ``train_risk``, ``test_risk``, ``predictor_norm`` as for two-layer runs;
- ``weight_change_l{l}``: ||w_l(t) - w_l(0)||_F / ||w_l(0)||_F for each layer l = 1 .. L + 1
  (L + 1: the read-out);
- ``feature_update_l{l}``: the root mean square over training inputs and units of
  h^(l)(t) - h^(l)(0), the change of layer l's pre-activations (the "coordinate check");
- diagnostics ``lambda_min`` (of H(t) on the training inputs) and ``kernel_change``
  (||H(t) - H(0)||_F / ||H(0)||_F), with ``kernel_change_l{l}`` per layer.

Matrix products run in fixed blocks of rows on ``flow.threads`` threads (0: ``threads.choose``,
from the step's multiply-adds), each block one single-threaded BLAS call (``deep.matmul``): the
same bits on any thread count. (OpenBLAS's own threads do not give the same bits: measured.)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..errors import DivergenceError
from ..model import integrators, twolayer
from ..model.data import check_start, draw
from ..model.deep import (
    DeepNet,
    c_sigma_of,
    forward,
    layer_kernels,
    parallel,
    predict,
    resnet_scale,
    velocity,
)
from ..store import checkpoint
from ..store.results import Result
from . import adaptive, threads as thread_policy
from .interrupts import sigterm_as_interrupt
from .problem import record_steps
from .progress import Reporter


def network(cfg: Config) -> DeepNet:
    """The deep network of a config: c_sigma = 1 / E[sigma(g)^2] (Du et al.), and for resnets the
    branch factor of Du et al.'s c_res / (L sqrt(m))."""
    net = cfg.network
    params = tuple(net.activation_params)
    c_sigma = c_sigma_of(net.activation, params)
    return DeepNet(net.d, net.m, net.depth, net.activation, net.architecture, net.parameterization, c_sigma,
                   resnet_scale(net.depth, net.c_res, c_sigma), params)


class _Records:
    """The observables of ``record`` calls, and what they compare against at t = 0."""

    def __init__(self, cfg: Config, net: DeepNet, dataset, params0):
        self.cfg, self.net, self.data, self.params0 = cfg, net, dataset, [w.copy() for w in params0]
        self.h0 = forward(net, params0, dataset.X)[0]
        self.kernels = bool(cfg.record.diagnostics)
        self.H0 = layer_kernels(net, params0, dataset.X) if self.kernels else None
        self.rows: list[dict] = []

    def record(self, params):
        net, data, loss = self.net, self.data, self.cfg.flow.loss
        h, _, f = forward(net, params, data.X)
        row = {"train_risk": float(np.mean(twolayer.loss(loss, f, data.y))),
               "test_risk": float(np.mean(twolayer.loss(loss, predict(net, params, data.X_test), data.y_test)))
               if len(data.y_test) else math.nan,
               "predictor_norm": float(np.sqrt(np.mean(f ** 2)))}
        for l, (w, w0) in enumerate(zip(params, self.params0), start=1):
            row[f"weight_change_l{l}"] = float(np.linalg.norm(w - w0) / np.linalg.norm(w0))
        for l, (hl, hl0) in enumerate(zip(h, self.h0), start=1):
            row[f"feature_update_l{l}"] = float(np.sqrt(np.mean((hl - hl0) ** 2)))
        if self.kernels:
            H = layer_kernels(net, params, data.X)
            for l, (Hl, Hl0) in enumerate(zip(H, self.H0), start=1):
                row[f"kernel_change_l{l}"] = float(np.linalg.norm(Hl - Hl0) / np.linalg.norm(Hl0))
            total, total0 = sum(H), sum(self.H0)
            if "kernel_change" in self.cfg.record.diagnostics:
                row["kernel_change"] = float(np.linalg.norm(total - total0) / np.linalg.norm(total0))
            if "lambda_min" in self.cfg.record.diagnostics:
                row["lambda_min"] = float(np.linalg.eigvalsh(total)[0])
        self.rows.append(row)
        return row

    def observables(self) -> dict:
        return {name: np.array([row.get(name, math.nan) for row in self.rows]) for name in self.rows[0]}


def _batches(cfg: Config, dataset, rng_batch):
    """The samples (X, y) of each step: the full batch, a minibatch without replacement within
    the step, or fresh samples from the data law (online)."""
    flow = cfg.flow
    B, n = flow.batch_size, len(dataset.y)
    while True:
        if flow.online:
            yield draw(cfg, dataset.teacher, B, rng_batch)
        elif B:
            rows = rng_batch.permutation(n)[:B]
            yield dataset.X[rows], dataset.y[rows]
        else:
            yield dataset.X, dataset.y


@dataclass
class Plan:
    """A deep run, validated and set up (``prepare``): the network, its initial parameters, the
    schedule, the thread count, the record at t = 0 and the seed of the minibatch stream."""

    cfg: Config
    dataset: object
    net: DeepNet
    params0: list
    theta0: np.ndarray
    steps: np.ndarray
    threads: int
    records: _Records            # holds the record at t = 0
    stream: np.random.SeedSequence


def prepare(cfg: Config, dataset, rng_init, streams) -> Plan:
    """The deep network of ``cfg`` at initialisation and its record at t = 0; an output that
    overflows float64 there is refused (DataError naming X, y or the parameters), as for
    two-layer runs. ``streams``: the noise and minibatch SeedSequences (noise unused)."""
    flow = cfg.flow
    net = network(cfg)
    params0 = net.init(rng_init)
    batch = flow.batch_size or len(dataset.y)
    threads = thread_policy.choose(flow.threads, batch * net.size(), thread_policy.usable_cpus())
    with parallel(threads), np.errstate(over="ignore", invalid="ignore"):
        records = _Records(cfg, net, dataset, params0)
        risk = records.record(params0)["train_risk"]
    theta0 = net.flatten(params0)
    check_start(risk, {"X": dataset.X, "y": dataset.y, "theta0": theta0})
    return Plan(cfg, dataset, net, params0, theta0, record_steps(flow.n_steps, cfg.record.n_records,
                                                                   cfg.record.spacing), threads, records, streams[1])


def run(plan: Plan, throw: bool = True, folder=None, progress=None) -> Result:
    """Train the deep network of a plan. ``folder``: checkpoints go there (``checkpoint.py``:
    every ``record.checkpoint_seconds`` at a record, and on Ctrl-C or SIGTERM), and a checkpoint
    found there is resumed, bit for bit. ``progress``: as ``simulate``'s."""
    cfg, dataset, net, theta0, steps, threads = plan.cfg, plan.dataset, plan.net, plan.theta0, plan.steps, plan.threads
    flow = cfg.flow
    rng_batch = np.random.default_rng(plan.stream)
    data_hash = checkpoint.arrays_hash(dataset.X, dataset.y, dataset.X_test, dataset.y_test, theta0)
    method = integrators.INTEGRATORS[flow.integrator]
    status, message = "completed", ""
    with parallel(threads), np.errstate(over="ignore", invalid="ignore"), sigterm_as_interrupt(folder is not None):
        records = plan.records
        records.rows = records.rows[:1]
        if checkpoint.exists(folder):
            state = checkpoint.load(folder, cfg, data_hash)
            rng_batch.bit_generator.state = state.rng_states["batch"]
            records.rows = state.records           # the records so far, one list
        else:
            state = checkpoint.Progress(0, theta0.copy(), None, records.rows, None, {}, 0.0,
                                        {"theta": adaptive.Controller(flow.dt)} if method.adaptive else None)
        earlier, tic, saved = state.run_seconds, time.perf_counter(), time.perf_counter()
        kept = _kept(state, rng_batch, earlier, folder)
        if kept is not None and not checkpoint.exists(folder):
            checkpoint.save(folder, kept, cfg, data_hash)          # from the first record on, a kill loses nothing
        batches = _batches(cfg, dataset, rng_batch)
        bar = Reporter(progress, flow.n_steps, state.done, desc="meanfield deep run")
        risk_limit = cfg.record.divergence_factor * max(1.0, state.records[0]["train_risk"])     # as two-layer runs
        try:
            for target in steps[steps > state.done]:
                if method.adaptive:              # full batch: the error-controlled flow to target * dt
                    X, y = next(batches)
                    drift = lambda v: net.flatten(velocity(net, net.unflatten(v), X, y, flow.loss, flow.lam))
                    message = adaptive.advance(state.theta, state.done * flow.dt, target * flow.dt, drift,
                                               state.controllers["theta"], flow.rtol, flow.atol, dt_floor=flow.dt_floor)
                    if message:
                        status = "diverged"
                        break
                    bar.update(target - state.done)
                    state.done = target
                while state.done < target:
                    X, y = next(batches)
                    drift = lambda v: net.flatten(velocity(net, net.unflatten(v), X, y, flow.loss, flow.lam))
                    state.theta = integrators.step(state.theta, drift, flow.dt, flow.integrator)
                    state.done += 1
                    bar.update()
                risk = records.record(net.unflatten(state.theta))["train_risk"]
                if not (np.all(np.isfinite(state.theta)) and math.isfinite(risk) and risk <= risk_limit):
                    status = "diverged"
                    message = (f"run diverged at t = {state.done * flow.dt:.6g} (step {state.done}): training risk "
                               f"{risk:.3g}" + ("" if method.adaptive else f"; try a smaller flow.dt, e.g. {flow.dt / 4:.3g}"))
                    break
                kept = _kept(state, rng_batch, earlier + time.perf_counter() - tic, folder)
                if folder is not None and time.perf_counter() - saved >= cfg.record.checkpoint_seconds:
                    checkpoint.save(folder, kept, cfg, data_hash)
                    saved = time.perf_counter()
        except KeyboardInterrupt:
            if kept is not None:
                checkpoint.save(folder, kept, cfg, data_hash)
            raise
        finally:
            bar.close()
        if status == "diverged" and kept is not None:
            checkpoint.save(folder, kept, cfg, data_hash)              # the last finite state
    seconds = earlier + time.perf_counter() - tic
    result = Result(cfg, steps[:len(records.rows)] * flow.dt, records.observables(), None, state.theta, theta0, status,
                    message, {"steps": state.done, "run_seconds": seconds, "compile_seconds": 0.0, "threads": threads,
                              "parameters": net.size(), "n_train": len(dataset.y), "n_test": len(dataset.y_test),
                              **(state.controllers["theta"].stats() if method.adaptive else {})},
                    dataset)
    if status == "diverged" and throw:
        parameter, allowed = (("flow.rtol", "a tolerance the flow can be followed to, or a flow that stays finite")
                              if method.adaptive else ("flow.dt", "a smaller time step"))
        raise DivergenceError(message, time=state.done * flow.dt, result=result, parameter=parameter,
                              value=getattr(flow, parameter[5:]), allowed=allowed)
    return result


def _kept(state, rng_batch, seconds, folder):
    """A copy of the state at a record, what a checkpoint saves (None without a folder)."""
    if folder is None:
        return None
    return checkpoint.Progress(state.done, state.theta.copy(), None, list(state.records), None,
                               {"batch": rng_batch.bit_generator.state}, seconds, adaptive.copied(state.controllers))
