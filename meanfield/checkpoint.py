"""Checkpoints of a run in progress: ``checkpoint.npz`` + ``checkpoint.json`` in the run folder.

A checkpoint is taken at a record time, so the loop restarts exactly where it stopped: the
particles, the records and snapshots so far, the step, and the states of the noise and minibatch
generators. Resuming gives the uninterrupted run bit for bit. The JSON (written last, atomically)
holds the hashes of the config and of the data and initial particles: a changed config or
different data is refused.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config
from .errors import ConfigError, CorruptedResultError
from .results import atomic_write, json_default

FORMAT_VERSION = 1
STATE, ARRAYS = "checkpoint.json", "checkpoint.npz"


def config_hash(cfg: Config) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()


def arrays_hash(*arrays) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


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


def exists(folder) -> bool:
    return folder is not None and (Path(folder) / STATE).exists()


def save(folder, progress: Progress, cfg: Config, data_hash: str):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"theta": progress.theta}
    if progress.theta_lin is not None:
        arrays["theta_lin"] = progress.theta_lin
    if progress.snapshots is not None:
        arrays["snapshots"] = np.array(progress.snapshots)
    for name in progress.records[0]:
        arrays[f"obs/{name}"] = np.array([r[name] for r in progress.records])
    with atomic_write(folder / ARRAYS) as handle:
        np.savez(handle, **arrays)
    state = {"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "config_hash": config_hash(cfg),
             "data_hash": data_hash, "done": progress.done, "rng_states": progress.rng_states,
             "run_seconds": progress.run_seconds}
    with atomic_write(folder / STATE) as handle:
        handle.write(json.dumps(state, default=json_default).encode())


def load(folder, cfg: Config, data_hash: str) -> Progress:
    """The saved progress; refuses another config or other data."""
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE).read_text())
        with np.load(folder / ARRAYS, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptedResultError(f"checkpoint in {folder} is unreadable: {exc}", parameter="checkpoint",
                                   value=str(folder)) from None
    if state.get("format_version") != FORMAT_VERSION:
        raise CorruptedResultError(f"checkpoint in {folder} has format_version {state.get('format_version')!r}",
                                   parameter="format_version", value=state.get("format_version"))
    if state["config_hash"] != config_hash(cfg):
        changed = sorted(f"{section}.{key}" for section, values in cfg.to_dict().items() if isinstance(values, dict)
                         for key, value in values.items() if state["config"].get(section, {}).get(key) != value)
        raise ConfigError(f"the config differs from the checkpoint's in {folder} ({', '.join(changed) or 'seed'}): "
                          "resume refuses a changed config; start a new run instead", parameter="config",
                          value=changed, allowed="the config the run was started with")
    if state["data_hash"] != data_hash:
        raise ConfigError(f"the data or initial particles differ from the checkpoint's in {folder}",
                          parameter="data", value="changed", allowed="the data the run was started with")
    names = [k[4:] for k in arrays if k.startswith("obs/")]
    n_records = len(arrays[f"obs/{names[0]}"])
    records = [{name: float(arrays[f"obs/{name}"][k]) for name in names} for k in range(n_records)]
    snapshots = list(arrays["snapshots"]) if "snapshots" in arrays else None
    return Progress(state["done"], arrays["theta"], arrays.get("theta_lin"), records, snapshots,
                    state["rng_states"], state["run_seconds"])


def remove(folder):
    for name in (STATE, ARRAYS):
        path = Path(folder) / name
        if path.exists():
            path.unlink()
