"""Files that cannot lose work or lie: atomic writes, SHA-256 seals, verified reads.

A saved state is one ``.npz`` of arrays and one JSON document. The document records every
array's shape, dtype and SHA-256 and is itself sealed: its ``sha256`` field is the digest of the
rest, so an edited status, step count, config or array value is detected on reading. Reading
never unpickles. Every operating-system fault (read-only folder, full disk, a file where a folder
should be) becomes :class:`~meanfield.errors.OutputError`, naming the path and the OS error.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import CorruptedResultError, OutputError

SEAL = "sha256"


class atomic_write:
    """Context manager yielding a binary handle; the file appears at ``path`` only on success
    (temporary file in the same folder, flush, fsync, rename). OS faults raise OutputError."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        try:
            fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise OutputError.cannot_write(self.path, exc) from None
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
        except OSError as error:
            raise OutputError.cannot_write(self.path, error) from None
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError.cannot_write(self.path, exc) from None
        return False


def make_folder(path) -> Path:
    """Create ``path`` (and parents) as a folder; OutputError if that is impossible."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write into {str(folder)!r}: it is a file, not a folder",
                          parameter="path", value=str(folder), allowed="a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.cannot_write(folder, exc) from None
    return folder


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and bytes (C order)."""
    a = np.ascontiguousarray(a)
    digest = hashlib.sha256(str((a.shape, a.dtype.str)).encode())
    digest.update(a.tobytes())
    return digest.hexdigest()


def json_sha256(value) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=json_default).encode()).hexdigest()


def write_arrays(path, arrays: dict) -> dict:
    """Write ``arrays`` (name -> array) atomically to the .npz ``path``; returns their specs
    {name: {shape, dtype, sha256}} for the document that vouches for them."""
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype), SEAL: array_sha256(v)} for k, v in arrays.items()}


def write_sealed(path, document: dict, indent: int | None = 2):
    """Write ``document`` as JSON with its seal (the SHA-256 of everything else in it)."""
    body = json.loads(json.dumps({k: v for k, v in document.items() if k != SEAL}, default=json_default))
    sealed = {**body, SEAL: json_sha256(body)}            # sealed as it will be read back
    with atomic_write(path) as handle:
        handle.write(json.dumps(sealed, indent=indent, default=json_default).encode())


def read_sealed(path, what: str) -> dict:
    """A JSON document written by :func:`write_sealed`; CorruptedResultError if it is missing,
    unreadable, or was changed after it was written. ``what`` names it in messages."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise CorruptedResultError(f"{path} is missing: {what} was not written or was removed",
                                   parameter="path", value=str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptedResultError(f"{path} is unreadable: {exc}", parameter="path", value=str(path)) from None
    if not isinstance(document, dict) or SEAL not in document:
        raise CorruptedResultError(f"{path} has no {SEAL} seal: not {what} of this meanfield version, or damaged",
                                   parameter="path", value=str(path))
    body = {k: v for k, v in document.items() if k != SEAL}
    if json_sha256(body) != document[SEAL]:
        raise CorruptedResultError(f"{path} was changed after it was written (its SHA-256 does not match its "
                                   "seal): refusing to trust it", parameter="path", value=str(path))
    return body


def field(document: dict, key: str, path):
    """``document[key]``, or CorruptedResultError naming the missing field and the file."""
    try:
        return document[key]
    except (KeyError, TypeError):
        raise CorruptedResultError(f"{path} lacks the field {key!r}", parameter=key, value=str(path)) from None


def read_arrays(path, specs: dict) -> dict:
    """The arrays of the .npz ``path``, each checked against ``specs`` (names, shapes, dtypes,
    SHA-256); never unpickles. CorruptedResultError names the file and the first mismatch."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise CorruptedResultError(f"{path} is corrupted or truncated: {exc}", parameter="path",
                                   value=str(path)) from None
    if not isinstance(specs, dict) or set(arrays) != set(specs):
        listed = sorted(specs) if isinstance(specs, dict) else specs
        raise CorruptedResultError(f"{path} holds {sorted(arrays)}, its manifest lists {listed}",
                                   parameter="path", value=str(path))
    for name, spec in specs.items():
        a = arrays[name]
        if not isinstance(spec, dict) or list(a.shape) != spec.get("shape") or str(a.dtype) != spec.get("dtype"):
            raise CorruptedResultError(f"array {name!r} in {path} has shape {a.shape} and dtype {a.dtype}; "
                                       f"the manifest says {spec}", parameter=name, value=str(path))
        if array_sha256(a) != spec.get(SEAL):
            raise CorruptedResultError(f"array {name!r} in {path} was changed after it was written (SHA-256 "
                                       "mismatch)", parameter=name, value=str(path))
    return arrays


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
