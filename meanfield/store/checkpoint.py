"""Checkpoints of a run in progress: ``checkpoint.json`` + ``checkpoint-STEP.npz`` in the run folder.

A checkpoint is taken at a record time, so the loop restarts exactly where it stopped: the state's
arrays, the records and snapshots so far, the step, the states of the random generators and of the
adaptive step controllers. Resuming gives the uninterrupted run bit for bit. The arrays go to a new
file named by the step; the sealed JSON, written after them, names that file with the SHA-256 of
every array, of the config and of the data and initial particles; only then is the previous arrays
file removed. An interruption at any moment (a kill, a full disk) therefore leaves the previous
checkpoint whole. A changed config, other data, or an edited file is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
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
    """A run's state at a record time, or where an interruption stopped a chunk of steps: steps
    done, the state's arrays by name (``theta``, and ``theta_tangent`` for a lockstep tangent model),
    the records and snapshots so far, the random generators' states, the run time so far and the
    adaptive step controllers' states (plain dicts, by array name; None for fixed steps)."""

    done: int
    state: dict
    records: list
    snapshots: list | None
    rng_states: dict
    run_seconds: float
    controllers: dict | None = None


def exists(folder) -> bool:
    return folder is not None and (Path(folder) / STATE).exists()


def _arrays_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoint-*.npz"))


def save(folder, progress: Progress, cfg: Config, data_hash: str):
    """Write the checkpoint; OutputError (the previous checkpoint kept whole) if it cannot be."""
    folder = files.make_folder(folder)
    arrays = dict(progress.state)
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
        "controllers": progress.controllers, "state": sorted(progress.state), "arrays": specs}, indent=None)
    for old in _arrays_files(folder):
        if old.name != name:
            old.unlink(missing_ok=True)


def load(folder, cfg: Config, data_hash: str, names, steps) -> Progress:
    """The saved progress of a run whose state has the arrays ``names`` and records at ``steps``;
    refuses another config, other data, a damaged or edited file, and one that contradicts itself
    (records that do not match its step, as a re-sealed forgery could)."""
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
        raise CorruptedResultError(f"{where} has done = {done!r}; allowed: a step in 0..{cfg.flow.n_steps} (a "
                                   "record's, or the end of a chunk of steps when the run was interrupted)",
                                   parameter="done", value=done)
    arrays = files.read_arrays(folder / Path(str(values["arrays_file"])).name, values["arrays"])
    observed = [k[4:] for k in arrays if k.startswith("obs/")]
    missing = [name for name in names if name not in arrays]
    if missing or not observed:
        raise CorruptedResultError(f"{folder / values['arrays_file']} lacks {', '.join(missing) or 'the records'}",
                                   parameter="checkpoint", value=str(folder))
    for name in names:
        if not np.all(np.isfinite(arrays[name])):
            raise CorruptedResultError(f"the array {name!r} in {folder / values['arrays_file']} is not finite",
                                       parameter=name, value=str(folder))
    n_records = len(arrays[f"obs/{observed[0]}"])
    expected = int(np.searchsorted(steps, done, side="right"))
    counts = {len(arrays[k]) for k in arrays if k.startswith("obs/") or k == "snapshots"}
    if counts != {expected}:
        raise CorruptedResultError(f"{where} is at step {done}, which is record {expected} of the run, but holds "
                                   f"{sorted(counts)} records: refusing a checkpoint that contradicts itself",
                                   parameter="done", value=done)
    records = [{name: float(arrays[f"obs/{name}"][k]) for name in observed} for k in range(n_records)]
    snapshots = list(arrays["snapshots"]) if "snapshots" in arrays else None
    controllers = state.get("controllers")
    if controllers is not None and (not isinstance(controllers, dict) or set(controllers) != set(names)):
        raise CorruptedResultError(f"{where} has controllers for {controllers!r}, not for {sorted(names)}",
                                   parameter="controllers", value=str(where))
    return Progress(done, {name: arrays[name] for name in names}, records, snapshots, values["rng_states"],
                    values["run_seconds"], controllers)


def remove(folder):
    folder = Path(folder)
    for path in [folder / STATE, *_arrays_files(folder)]:
        path.unlink(missing_ok=True)
