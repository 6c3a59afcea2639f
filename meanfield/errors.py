"""One error vocabulary: every failure a user can cause or meet has a class here.

Each error carries the offending ``parameter``, its ``value`` and what is ``allowed``, so the
command line can print one clear line and choose an exit code (2 bad input, 3 divergence).
"""
from __future__ import annotations


class MeanfieldError(Exception):
    """Base class of every error raised on purpose by meanfield."""

    exit_code = 2

    def __init__(self, message: str, *, parameter: str | None = None, value=None,
                 allowed: str | None = None):
        super().__init__(message)
        self.parameter = parameter
        self.value = value
        self.allowed = allowed

    @classmethod
    def invalid(cls, parameter: str, value, allowed: str, hint: str = ""):
        """Standard message: '<parameter> = <value> is invalid: allowed is <allowed>'."""
        message = f"{parameter} = {value!r} is invalid: allowed is {allowed}"
        if hint:
            message += f" ({hint})"
        return cls(message, parameter=parameter, value=value, allowed=allowed)


class ConfigError(MeanfieldError, ValueError):
    """A configuration value, key or file is invalid."""


class DataError(MeanfieldError, ValueError):
    """User-supplied arrays are invalid (shape, dtype, non-finite values, ...)."""


class DivergenceError(MeanfieldError, RuntimeError):
    """The particles or the risk became non-finite or exploded during a run."""

    exit_code = 3

    def __init__(self, message: str, *, time: float | None = None, result=None, **kwargs):
        super().__init__(message, **kwargs)
        self.time = time
        self.result = result


class DistanceError(MeanfieldError, RuntimeError):
    """An optimal-transport solver did not converge or was given unusable measures."""


class CorruptedResultError(MeanfieldError, OSError):
    """A saved result is missing, truncated, of another format version or inconsistent."""


class OutputError(MeanfieldError, OSError):
    """A file or folder cannot be written: read-only, full, a file in the way, no permission."""

    @classmethod
    def cannot_write(cls, path, exc: OSError):
        reason = exc.strerror or str(exc)
        return cls(f"cannot write {str(path)!r}: {reason} (errno {exc.errno})" if exc.errno
                   else f"cannot write {str(path)!r}: {reason}", parameter="path", value=str(path),
                   allowed="a writable folder with free space")


class WorkerError(MeanfieldError, RuntimeError):
    """A worker process died (killed, or out of memory) while it ran an item of a sweep or a
    figure's runs; the item is named, and its checkpoint kept: run the command again to resume it."""
