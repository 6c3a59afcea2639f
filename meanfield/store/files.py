"""Files that cannot lose work or lie: atomic writes, SHA-256 seals, verified reads.

A saved state is one ``.npz`` of arrays and one JSON document. The document records every
array's shape, dtype and SHA-256 and is itself sealed: its ``sha256`` field is the digest of the
rest, so an accidental or partial edit of a status, step count, config or array value, and a
truncated or swapped file, are detected on reading. A plain digest does not detect a deliberate
forgery: whoever edits a file can compute the digest again (a re-seal). With the environment
variable ``MEANFIELD_SEAL_KEY`` set, the seal is ``hmac_sha256``, an HMAC-SHA256 keyed by it:
only a holder of the key can re-seal, and with the key set a document with a plain seal (or none)
is refused. Reading never unpickles. Every operating-system fault (read-only folder, full disk,
a file where a folder should be) becomes :class:`~meanfield.errors.OutputError`, naming the path
and the OS error.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CorruptedResultError, OutputError

SEAL = "sha256"
KEYED_SEAL = "hmac_sha256"
KEY_VARIABLE = "MEANFIELD_SEAL_KEY"


def _key() -> bytes | None:
    """The sealing key from the environment, or None."""
    key = os.environ.get(KEY_VARIABLE)
    return key.encode() if key else None


def _seal(body: dict, key: bytes | None) -> tuple[str, str]:
    """(field name, seal) of a document's body: its SHA-256, or its HMAC-SHA256 under ``key``."""
    if key is None:
        return SEAL, json_sha256(body)
    message = json.dumps(body, sort_keys=True, default=json_default).encode()
    return KEYED_SEAL, hmac.new(key, message, hashlib.sha256).hexdigest()


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
    """Write ``document`` as JSON with its seal: the SHA-256 of everything else in it, or its
    HMAC-SHA256 when ``MEANFIELD_SEAL_KEY`` is set."""
    body = json.loads(json.dumps({k: v for k, v in document.items() if k not in (SEAL, KEYED_SEAL)},
                                 default=json_default))
    name, seal = _seal(body, _key())
    sealed = {**body, name: seal}                         # sealed as it will be read back
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
    key = _key()
    if not isinstance(document, dict) or not ({SEAL, KEYED_SEAL} & set(document)):
        raise CorruptedResultError(f"{path} has no {SEAL} seal: not {what} of this meanfield version, or damaged",
                                   parameter="path", value=str(path))
    if key is None and KEYED_SEAL in document:
        raise CorruptedResultError(f"{path} is sealed with a key: set {KEY_VARIABLE} to the key it was written "
                                   "with to read it", parameter=KEY_VARIABLE, value=None, allowed="the sealing key")
    if key is not None and KEYED_SEAL not in document:
        raise CorruptedResultError(f"{path} has no keyed seal, and {KEY_VARIABLE} is set: anyone could have sealed "
                                   "it; refusing to trust it (unset the variable to read files written without "
                                   "it)", parameter="path", value=str(path))
    body = {k: v for k, v in document.items() if k not in (SEAL, KEYED_SEAL)}
    name, seal = _seal(body, key)
    if not hmac.compare_digest(seal, str(document[name])):
        what_seal = "its HMAC under the key" if key else "its SHA-256"
        raise CorruptedResultError(f"{path} was changed after it was written ({what_seal} does not match its "
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
