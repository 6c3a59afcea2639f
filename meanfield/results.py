"""The result of a run, and its files: ``arrays.npz`` + ``manifest.json`` in one folder.

Writes are atomic (temporary file in the target folder, flush, fsync, rename; the manifest is
written last and names the arrays it expects). Loading never unpickles and checks the format
version, array names, shapes and dtypes.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config
from .errors import ConfigError, CorruptedResultError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


@dataclass
class Result:
    """Record times ``t`` (R,), ``observables`` name -> (R,), ``snapshots`` (R, m, d + 1) or None,
    the final and initial particles ``theta``, ``theta0`` (m, d + 1), ``status``
    ("completed" | "diverged"), ``message`` and ``stats`` (steps, compile and run seconds, ...)."""

    config: Config
    t: np.ndarray
    observables: dict[str, np.ndarray]
    snapshots: np.ndarray | None
    theta: np.ndarray
    theta0: np.ndarray
    status: str = "completed"
    message: str = ""
    stats: dict = field(default_factory=dict)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"t": self.t, "theta": self.theta, "theta0": self.theta0}
        arrays.update({f"obs/{k}": v for k, v in self.observables.items()})
        if self.snapshots is not None:
            arrays["snapshots"] = self.snapshots
        return arrays

    def save(self, path) -> Path:
        """Write the result into the folder ``path`` (created if needed); returns the folder."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = self._arrays()
        manifest = {
            "format_version": FORMAT_VERSION,
            "status": self.status,
            "message": self.message,
            "config": self.config.to_dict(),
            "stats": self.stats,
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
            "versions": versions(),
        }
        with atomic_write(folder / ARRAYS) as handle:
            np.savez(handle, **arrays)
        with atomic_write(folder / MANIFEST) as handle:
            handle.write(json.dumps(manifest, indent=2, default=json_default).encode())
        return folder

    @classmethod
    def load(cls, path) -> "Result":
        """Read a folder written by :meth:`save`; raises CorruptedResultError on any damage."""
        folder = Path(path)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            raise CorruptedResultError(f"{folder} holds no {MANIFEST}: not a saved result, or the "
                                       "save was interrupted", parameter="path", value=str(folder)) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptedResultError(f"{folder / MANIFEST} is unreadable: {exc}",
                                       parameter="path", value=str(folder)) from None
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if version != FORMAT_VERSION:
            raise CorruptedResultError(
                f"{folder / MANIFEST} has format_version {version!r}; this meanfield reads "
                f"{FORMAT_VERSION}", parameter="format_version", value=version,
                allowed=str(FORMAT_VERSION))
        try:
            config = Config.from_dict(manifest["config"])
            expected = manifest["arrays"]
            with np.load(folder / ARRAYS, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, ConfigError) as exc:
            raise CorruptedResultError(f"{folder} is corrupted or truncated: {exc}",
                                       parameter="path", value=str(folder)) from None
        if set(arrays) != set(expected):
            raise CorruptedResultError(f"{folder / ARRAYS} holds {sorted(arrays)}, the manifest "
                                       f"lists {sorted(expected)}", parameter="path", value=str(folder))
        for name, spec in expected.items():
            if list(arrays[name].shape) != spec["shape"] or str(arrays[name].dtype) != spec["dtype"]:
                raise CorruptedResultError(
                    f"array {name!r} in {folder} has shape {arrays[name].shape} and dtype "
                    f"{arrays[name].dtype}; the manifest says {tuple(spec['shape'])} {spec['dtype']}",
                    parameter=name, value=str(folder))
        return cls(config=config, t=arrays["t"],
                   observables={k[4:]: v for k, v in arrays.items() if k.startswith("obs/")},
                   snapshots=arrays.get("snapshots"), theta=arrays["theta"],
                   theta0=arrays["theta0"], status=manifest["status"],
                   message=manifest.get("message", ""), stats=manifest.get("stats", {}))


class atomic_write:
    """Context manager yielding a binary handle; the file appears at ``path`` only on success."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)          # mkstemp makes 0600; give an ordinary file's mode
        self.handle = os.fdopen(fd, "wb")
        return self.handle

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
            self.handle.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


def versions() -> dict[str, str]:
    """Versions of Python and the numerical stack, for manifests and figure sidecars."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("meanfield", "numpy", "numba", "scipy", "pot", "matplotlib"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def json_default(value):
    """``default=`` for json.dumps: NumPy scalars and arrays, and objects with ``to_dict``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
