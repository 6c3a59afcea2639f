"""The result of a run, and its folder: ``arrays.npz``, a sealed ``manifest.json`` and, for
people, spreadsheets and reruns, ``observables.csv`` and ``config.toml``.

The manifest (written last) records the status, config, statistics and the SHA-256 of every
array and of the config, and is sealed (``files.write_sealed``): loading refuses, with
CorruptedResultError naming the file, any edit, truncation, missing field or pickle.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import ConfigError, CorruptedResultError
from ..model import deep, twolayer
from ..model.data import Dataset, data_inputs
from ..model.parameterizations import parameter_count
from . import files

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
TABLE = "observables.csv"
CONFIG = "config.toml"                   # the config, for people and for `meanfield run` (the manifest's is sealed)
STATUSES = ("completed", "converged", "diverged")
FINISHED = ("completed", "converged")        # ran to flow.t_end, or to record.stop_below


@dataclass(eq=False, repr=False)
class Result:
    """Record times ``t`` (R,), ``observables`` name -> (R,), ``snapshots`` (R, m, d + 1) or None,
    the final and initial particles ``theta``, ``theta0`` (m, d + 1), ``status`` ("completed" |
    "converged" (record.stop_below reached) | "diverged"), ``message``, ``stats`` (steps, compile
    and run seconds, ...) and ``data``, the samples the run used (``Dataset``: X (n, d), y (n,),
    X_test, y_test, teacher), and ``weights`` (m,), the particles' weights, or None (each 1/m)."""

    config: Config
    t: np.ndarray
    observables: dict[str, np.ndarray]
    snapshots: np.ndarray | None
    theta: np.ndarray
    theta0: np.ndarray
    status: str = "completed"
    message: str = ""
    stats: dict = field(default_factory=dict)
    data: Dataset | None = None
    weights: np.ndarray | None = None

    def __repr__(self) -> str:
        """A summary: status, sizes, regime, time span and the observables' last values (no arrays)."""
        net = self.config.network
        n = None if self.data is None else len(self.data.y)
        shape = f"m={net.m}, n={n}, d={net.d}" + (f", depth={net.depth}" if net.depth > 1 else "")
        span = f"t={self.t[0]:g}..{self.t[-1]:g} ({len(self.t)} records)" if len(self.t) else "no records"
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.observables.items() if len(v))
        return (f"Result(status={self.status!r}, {shape}, scaling={net.scaling!r}, {span}"
                + (", weighted" if self.weights is not None else "")
                + (f", {self.config.flow.dtype} steps" if self.config.flow.dtype != "float64" else "")
                + f";\n       last: {last})")

    def __eq__(self, other) -> bool:
        """Same config, status and arrays (bit for bit, NaN equal to NaN); timing stats aside."""
        if not isinstance(other, Result):
            return NotImplemented
        mine, theirs = self._arrays(), other._arrays()
        return (self.config == other.config and self.status == other.status and mine.keys() == theirs.keys()
                and all(np.array_equal(v, theirs[k], equal_nan=v.dtype.kind == "f") for k, v in mine.items()))

    __hash__ = None                        # mutable arrays: not hashable

    def predict(self, X) -> np.ndarray:
        """The trained network's outputs on the rows of X, shape (n,): X (n, d), or (n, d - 1) when
        network.bias (the constant column is appended, as for training data). The predictor the run
        trained: the tangent model if network.linearized, minus the initial network if
        network.centered, with the particles' weights if weighted."""
        net, X = self.config.network, data_inputs(X, self.config)
        if net.depth > 1:
            model = deep.of(net)
            return deep.predict(model, model.unflatten(self.theta), X)
        theta0 = self.theta0 if net.linearized else None
        f = twolayer.predict(self.theta, X, net, theta0=theta0, weights=self.weights)
        if net.centered:
            f = f - twolayer.predict(self.theta0, X, net, theta0=theta0, weights=self.weights)
        return f

    def to_pandas(self):
        """The observables as a pandas DataFrame indexed by t (pandas: the optional extra "pandas")."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Result.to_pandas needs pandas: pip install 'meanfield[pandas]' (or read "
                              "result.t and result.observables, or the folder's observables.csv)") from None
        return pandas.DataFrame(dict(self.observables), index=pandas.Index(self.t, name="t"))

    @property
    def teacher(self) -> np.ndarray | None:
        """The teacher network (m0, d + 1) = [u | c] that labelled the data, or None."""
        return None if self.data is None else self.data.teacher

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"t": self.t, "theta": self.theta, "theta0": self.theta0}
        arrays.update({f"obs/{k}": v for k, v in self.observables.items()})
        if self.snapshots is not None:
            arrays["snapshots"] = self.snapshots
        if self.weights is not None:
            arrays["weights"] = self.weights
        if self.data is not None:
            arrays.update({f"data/{k}": v for k, v in vars(self.data).items() if v is not None})
        return arrays

    def save(self, path) -> Path:
        """Write the result into the folder ``path`` (created if needed, replacing a result saved
        there before); returns the folder. OutputError if it cannot be written."""
        folder = files.make_folder(path)
        specs = files.write_arrays(folder / ARRAYS, self._arrays())
        with files.atomic_write(folder / CONFIG) as handle:
            handle.write(self.config.to_toml().encode())
        with files.atomic_write(folder / TABLE) as handle:
            handle.write(self.table().encode())
        config = self.config.to_dict()
        files.write_sealed(folder / MANIFEST, {
            "format_version": FORMAT_VERSION, "status": self.status, "message": self.message,
            "config": config, "config_sha256": files.json_sha256(config), "stats": self.stats,
            "arrays": specs, "versions": files.versions()})
        return folder

    def table(self) -> str:
        """The observables as CSV: a column t, then one column per observable."""
        names = list(self.observables)
        columns = np.column_stack([self.t, *(self.observables[k] for k in names)])
        buffer = io.StringIO()
        np.savetxt(buffer, columns, delimiter=",", header=",".join(["t", *names]), comments="", fmt="%.17g")
        return buffer.getvalue()

    @classmethod
    def load(cls, path) -> "Result":
        """Read a folder written by :meth:`save`; CorruptedResultError on any damage or edit."""
        folder = Path(path)
        if not (folder / MANIFEST).exists():
            raise CorruptedResultError(f"{folder} holds no {MANIFEST}: not a saved result, or the "
                                       "save was interrupted", parameter="path", value=str(folder))
        manifest = files.read_sealed(folder / MANIFEST, "a saved result")
        where = folder / MANIFEST
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise CorruptedResultError(
                f"{where} has format_version {version!r}; this meanfield reads {FORMAT_VERSION}",
                parameter="format_version", value=version, allowed=str(FORMAT_VERSION))
        values = {key: files.field(manifest, key, where)
                  for key in ("status", "message", "config", "config_sha256", "stats", "arrays")}
        if files.json_sha256(values["config"]) != values["config_sha256"]:
            raise CorruptedResultError(f"the config in {where} does not match its SHA-256",
                                       parameter="config", value=str(where))
        try:
            config = Config.from_dict(values["config"])
        except ConfigError as exc:
            raise CorruptedResultError(f"the config in {where} is invalid: {exc}", parameter="config",
                                       value=str(where)) from None
        arrays = files.read_arrays(folder / ARRAYS, values["arrays"])
        for name in ("t", "theta", "theta0"):
            files.field(arrays, name, folder / ARRAYS)
        data = {k[5:]: v for k, v in arrays.items() if k.startswith("data/")}
        result = cls(config=config, t=arrays["t"],
                     observables={k[4:]: v for k, v in arrays.items() if k.startswith("obs/")},
                     snapshots=arrays.get("snapshots"), theta=arrays["theta"], theta0=arrays["theta0"],
                     status=values["status"], message=values["message"], stats=values["stats"],
                     data=Dataset(**data) if data else None, weights=arrays.get("weights"))
        result._check(where)
        return result

    def _check(self, where):
        """What a sealed but inconsistent result would break: status, horizon, finiteness."""
        if self.status not in STATUSES:
            raise CorruptedResultError(f"{where} has status {self.status!r}; allowed: {', '.join(STATUSES)}",
                                       parameter="status", value=self.status)
        if self.status in FINISHED:
            t_end = self.config.flow.n_steps * self.config.flow.dt
            ends = len(self.t) and (math.isclose(self.t[-1], t_end, rel_tol=1e-12) if self.status == "completed"
                                    else self.t[-1] <= t_end * (1 + 1e-12))
            if not ends:
                raise CorruptedResultError(f"{where} is {self.status!r} but its records end at t = "
                                           f"{self.t[-1] if len(self.t) else None}, not flow.t_end = {t_end:g}",
                                           parameter="t", value=str(where))
            if not np.all(np.isfinite(self.theta)):
                raise CorruptedResultError(f"{where} is {self.status!r} but its particles are not finite",
                                           parameter="theta", value=str(where))
        if self.theta.shape != self.theta0.shape:
            raise CorruptedResultError(f"{where}: theta {self.theta.shape} and theta0 {self.theta0.shape} differ in "
                                       "shape", parameter="theta", value=str(where))
        if self.weights is not None and self.weights.shape != (len(self.theta),):
            raise CorruptedResultError(f"{where}: weights of shape {self.weights.shape} for {len(self.theta)} "
                                       "particles", parameter="weights", value=str(where))
        net = self.config.network
        if net.depth > 1:
            size = parameter_count(net.d, net.m, net.depth)
            if self.theta.shape != (size,):
                raise CorruptedResultError(f"{where}: theta has shape {self.theta.shape}, the config's deep network "
                                           f"has {size} parameters", parameter="network.m", value=str(where))
        elif self.theta.shape != (net.m, net.d + 1):
            raise CorruptedResultError(f"{where}: theta has shape {self.theta.shape}, the config's network is "
                                       f"(m, d + 1) = ({net.m}, {net.d + 1})", parameter="network.m", value=str(where))



# --- sealed folders of other kinds (a reduced limit, a lazy-limit prediction) --------------------

def save_sealed(path, kind: str, arrays: dict, config: Config | None, table: tuple, **fields) -> Path:
    """Write a folder of ``kind``: arrays.npz (hashed in the manifest), config.toml (if any), the
    table (header, columns) as observables.csv and a sealed manifest.json with ``fields``."""
    folder = files.make_folder(path)
    specs = files.write_arrays(folder / ARRAYS, arrays)
    document = None if config is None else config.to_dict()
    if config is not None:
        with files.atomic_write(folder / CONFIG) as handle:
            handle.write(config.to_toml().encode())
    header, columns = table
    with files.atomic_write(folder / TABLE) as handle:
        np.savetxt(handle, np.column_stack(columns), delimiter=",", header=header, comments="", fmt="%.17g")
    files.write_sealed(folder / MANIFEST, {
        "format_version": FORMAT_VERSION, "kind": kind, "config": document,
        "config_sha256": None if document is None else files.json_sha256(document), "arrays": specs, **fields,
        "versions": files.versions()})
    return folder


def load_sealed(path, kind: str, what: str, required: tuple) -> tuple[dict, Config | None, dict]:
    """(manifest, config or None, arrays) of a folder written by ``save_sealed``; CorruptedResultError
    on any damage or edit, another kind, or a missing array of ``required``."""
    where = Path(path) / MANIFEST
    manifest = files.read_sealed(where, what)
    if manifest.get("kind") != kind:
        raise CorruptedResultError(f"{where} is not {what} (kind {manifest.get('kind')!r})", parameter="kind",
                                   value=manifest.get("kind"), allowed=kind)
    document = files.field(manifest, "config", where)
    if document is not None and files.json_sha256(document) != files.field(manifest, "config_sha256", where):
        raise CorruptedResultError(f"the config in {where} does not match its SHA-256", parameter="config",
                                   value=str(where))
    arrays = files.read_arrays(Path(path) / ARRAYS, files.field(manifest, "arrays", where))
    for name in required:
        files.field(arrays, name, Path(path) / ARRAYS)
    return manifest, None if document is None else Config.from_dict(document), arrays
