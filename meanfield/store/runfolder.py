"""A run folder has one owner: an exclusive lock for the whole of a run, and the moves that keep
a folder describing one run.

The lock is ``flock`` on ``FOLDER/.meanfield.lock``, released by the operating system when its
process dies (SIGKILL included); the file names the owner's PID and command, so a second process
is refused in one line naming them. Within one process the lock is re-entrant (``meanfield run``
holds it, and ``simulate(checkpoint=folder)`` inside takes it again). The file is removed by its
owner on release; a file left by a killed process is taken over.

``claim`` is what the commands use: lock, refuse a folder that holds anything unless told to
replace it, and on a refusal leave the folder as it was (a folder it created is removed again).
``retire`` removes a finished or interrupted run's files, the manifest first, so that at every
moment the folder describes at most one run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import ConfigError, OutputError
from . import checkpoint, files
from .results import ARRAYS, CONFIG, MANIFEST, TABLE

LOCK = ".meanfield.lock"
_held: dict[tuple, list] = {}         # (st_dev, st_ino) of a folder locked by this process -> [fd, depth]


def resolved(path, parameter: str) -> Path:
    """``path`` as a folder to write into: a symbolic link is followed; a link to nothing or a
    file in the way is refused, saying what it is."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise OutputError(f"{parameter} {str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does not "
                          f"exist: create that folder or choose another {parameter}", parameter=parameter,
                          value=str(path), allowed="a folder, or a symbolic link to one")
    if path.exists() and not path.is_dir():
        kind = "a symbolic link to a file" if path.is_symlink() else "a file"
        raise OutputError(f"cannot write into {str(path)!r}: it is {kind}, not a folder", parameter=parameter,
                          value=str(path), allowed="a folder path")
    return path


def contents(folder: Path) -> list[str]:
    """The names in ``folder`` besides its lock (empty for a folder that does not exist)."""
    try:
        return sorted(p.name for p in folder.iterdir() if p.name != LOCK)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OutputError.cannot_write(folder, exc) from None


class lock:
    """Hold the exclusive lock of ``folder`` (which must exist) for a with-block; ConfigError
    (exit 2) naming the holder's PID and command when another process holds it."""

    def __init__(self, folder, parameter: str = "--out"):
        self.folder, self.parameter = Path(folder), parameter

    def __enter__(self):
        self.key = _identity(self.folder)
        if self.key in _held:
            _held[self.key][1] += 1
            return self
        path = self.folder / LOCK
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise OutputError.cannot_write(path, exc) from None
            if not _try_lock(fd):
                owner = _owner(fd)
                os.close(fd)
                raise ConfigError(f"the folder {str(self.folder)!r} is in use by process {owner}; wait for it to end "
                                  f"or choose another {self.parameter}", parameter=self.parameter,
                                  value=str(self.folder), allowed="a folder no other process is writing in")
            if _same_file(fd, path):            # not a file its previous owner removed meanwhile
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} ({_command()})\n".encode())
        _held[self.key] = [fd, 1]
        return self

    def __exit__(self, *exc):
        entry = _held[self.key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self.key]
            try:
                os.unlink(self.folder / LOCK)          # still held: nobody can lock the file being removed
            except OSError:
                pass
            os.close(entry[0])
        return False


def _command() -> str:
    """This process's command line as typed (``python -m meanfield`` shown as ``meanfield``)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join(["meanfield" if name in ("cli.py", "__main__.py", "meanfield") else name, *sys.argv[1:]])


def _identity(folder: Path) -> tuple:
    try:
        st = os.stat(folder)
    except OSError as exc:
        raise OutputError.cannot_write(folder, exc) from None
    return st.st_dev, st.st_ino


def _try_lock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _owner(fd: int) -> str:
    """What the lock file says of its holder: "PID (command)", or "unknown" while it writes it."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    return text or "unknown"


class claim:
    """Own the run folder ``path`` for a with-block: follow a symbolic link, create the folder if
    needed, lock it, and refuse it if it holds anything unless ``replace`` (the caller then
    ``retire``s the old run once the new one is validated). ``busy``: the refusal's advice. If
    the block raises, the folder is left as it was: a folder the claim created is removed if it
    is still empty. The block gets the folder's Path."""

    def __init__(self, path, parameter: str = "--out", replace: bool = False,
                 busy: str = "pass --force to replace it or choose another --out"):
        self.path, self.parameter, self.replace, self.busy = path, parameter, replace, busy

    def __enter__(self) -> Path:
        folder = resolved(self.path, self.parameter)
        self.created = not folder.exists()
        self.folder = files.make_folder(folder)
        self.lock = lock(self.folder, self.parameter)
        try:
            self.lock.__enter__()
            if contents(self.folder) and not self.replace:
                raise ConfigError(f"output folder {str(self.folder)!r} exists and is not empty; {self.busy}",
                                  parameter=self.parameter, value=str(self.folder),
                                  allowed="a new or empty folder (or --force)")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self.folder

    def __exit__(self, exc_type, exc, tb):
        if getattr(self.lock, "key", None) in _held:
            self.lock.__exit__()
        if exc_type is not None and self.created and not contents(self.folder):
            try:
                self.folder.rmdir()
            except OSError:
                pass
        return False


def retire(folder) -> None:
    """Remove the run in ``folder`` (its result, checkpoint and config, and temporary files a kill
    left): the manifest first, then the checkpoint's state, so that the folder never shows the old
    result or the old checkpoint beside a new config. Files that meanfield did not write stay."""
    folder = Path(folder)
    ours = [MANIFEST, checkpoint.STATE, ARRAYS, TABLE, CONFIG]
    leftovers = [p.name for p in folder.glob("checkpoint-*.npz")] + [p.name for p in folder.glob(".*.tmp")]
    for name in [*ours, *leftovers]:
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError.cannot_write(folder / name, exc) from None
        if name == checkpoint.STATE:
            _sync(folder)                        # the old run is gone from the folder, durably


def _sync(folder: Path):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
