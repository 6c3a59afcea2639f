"""Checkpoints of a run in progress: ``checkpoint.json`` + ``checkpoint-STEP.npz`` in the run folder.

A checkpoint is taken at a record time, so the loop restarts exactly where it stopped: the
particles, the records and snapshots so far, the step, and the states of the noise and minibatch
generators. Resuming gives the uninterrupted run bit for bit. The arrays go to a new file named
by the step; the sealed JSON, written after them, names that file with the SHA-256 of every
array, of the config and of the data and initial particles; only then is the previous arrays
file removed. An interruption at any moment (a kill, a full disk) therefore leaves the previous
checkpoint whole. A changed config, other data, or an edited file is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..engine import adaptive
from ..errors import ConfigError, CorruptedResultError
from . import files

FORMAT_VERSION = 2
STATE = "checkpoint.json"


def config_hash(cfg: Config) -> str:
    return files.json_sha256(cfg.to_dict())


def arrays_hash(*arrays) -> str:
    return files.json_sha256([files.array_sha256(a) for a in arrays])


@dataclass
class Progress:
    """The loop's state at a record time."""

    done: int
    theta: np.ndarray
    theta_lin: np.ndarray | None
    records: list
    snapshots: list | None
    rng_states: dict
    run_seconds: float
    controllers: dict | None = None      # the adaptive integrator's (``adaptive.Controller``) by array name


def exists(folder) -> bool:
    return folder is not None and (Path(folder) / STATE).exists()


def _arrays_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoint-*.npz"))


def save(folder, progress: Progress, cfg: Config, data_hash: str):
    """Write the checkpoint; OutputError (the previous checkpoint kept whole) if it cannot be."""
    folder = files.make_folder(folder)
    arrays = {"theta": progress.theta}
    if progress.theta_lin is not None:
        arrays["theta_lin"] = progress.theta_lin
    if progress.snapshots is not None:
        arrays["snapshots"] = np.array(progress.snapshots)
    for name in progress.records[0]:
        arrays[f"obs/{name}"] = np.array([r[name] for r in progress.records])
    name = f"checkpoint-{progress.done}.npz"
    specs = files.write_arrays(folder / name, arrays)
    files.write_sealed(folder / STATE, {
        "format_version": FORMAT_VERSION, "config": cfg.to_dict(), "config_hash": config_hash(cfg),
        "data_hash": data_hash, "done": progress.done, "t": progress.done * cfg.flow.dt,
        "rng_states": progress.rng_states, "run_seconds": progress.run_seconds, "arrays_file": name,
        "controllers": None if progress.controllers is None else
        {key: ctrl.state() for key, ctrl in progress.controllers.items()},
        "arrays": specs}, indent=None)
    for old in _arrays_files(folder):
        if old.name != name:
            old.unlink(missing_ok=True)


def load(folder, cfg: Config, data_hash: str) -> Progress:
    """The saved progress; refuses another config, other data, or a damaged or edited file."""
    folder = Path(folder)
    where = folder / STATE
    state = files.read_sealed(where, "a checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CorruptedResultError(f"{where} has format_version {state.get('format_version')!r}; this "
                                   f"meanfield reads {FORMAT_VERSION}", parameter="format_version",
                                   value=state.get("format_version"))
    values = {key: files.field(state, key, where) for key in
              ("config", "config_hash", "data_hash", "done", "rng_states", "run_seconds", "arrays_file", "arrays")}
    if values["config_hash"] != config_hash(cfg):
        saved = values["config"] if isinstance(values["config"], dict) else {}
        changed = sorted(f"{section}.{key}" for section, entries in cfg.to_dict().items() if isinstance(entries, dict)
                         for key, value in entries.items() if saved.get(section, {}).get(key) != value)
        raise ConfigError(f"the config differs from the checkpoint's in {folder} ({', '.join(changed) or 'seed'}): "
                          "resume refuses a changed config; start a new run instead", parameter="config",
                          value=changed, allowed="the config the run was started with")
    if values["data_hash"] != data_hash:
        raise ConfigError(f"the data or initial particles differ from the checkpoint's in {folder}",
                          parameter="data", value="changed", allowed="the data the run was started with")
    done = values["done"]
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= cfg.flow.n_steps:
        raise CorruptedResultError(f"{where} has done = {done!r}; allowed: a step in 0..{cfg.flow.n_steps}",
                                   parameter="done", value=done)
    arrays = files.read_arrays(folder / Path(str(values["arrays_file"])).name, values["arrays"])
    names = [k[4:] for k in arrays if k.startswith("obs/")]
    if "theta" not in arrays or not names:
        raise CorruptedResultError(f"{folder / values['arrays_file']} lacks theta or the records",
                                   parameter="checkpoint", value=str(folder))
    if not np.all(np.isfinite(arrays["theta"])):
        raise CorruptedResultError(f"the particles in {folder / values['arrays_file']} are not finite",
                                   parameter="theta", value=str(folder))
    n_records = len(arrays[f"obs/{names[0]}"])
    records = [{name: float(arrays[f"obs/{name}"][k]) for name in names} for k in range(n_records)]
    snapshots = list(arrays["snapshots"]) if "snapshots" in arrays else None
    return Progress(done, arrays["theta"], arrays.get("theta_lin"), records, snapshots,
                    values["rng_states"], values["run_seconds"], _controllers(state.get("controllers"), where))


def _controllers(saved, where) -> dict | None:
    """The adaptive integrator's saved controllers, or None (fixed-step runs)."""
    if saved is None:
        return None
    try:
        return {key: adaptive.Controller.from_state(value) for key, value in saved.items()}
    except (AttributeError, TypeError, KeyError) as exc:
        raise CorruptedResultError(f"{where} has unreadable controllers: {exc}", parameter="controllers",
                                   value=str(where)) from None


def remove(folder):
    folder = Path(folder)
    for path in [folder / STATE, *_arrays_files(folder)]:
        path.unlink(missing_ok=True)
