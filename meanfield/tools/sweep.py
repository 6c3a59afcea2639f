"""Parameter sweeps: a ``[sweep]`` table in the TOML expands to the Cartesian product of runs.

    [sweep]
    "network.m" = [64, 256, 1024]                               # a list of values
    "flow.dt" = { start = 0.01, stop = 0.1, num = 4, spacing = "geometric" }   # or a range
    seeds = 5                                                    # replicates

Ranges: ``spacing`` "linear" (default), "geometric" or "integer" (a linear range rounded). A range
over an integer field (network.m, data.n, ...) gives integers, rounded, each value once.

Every point has a stable id (a hash of its resolved config) and its own seed, drawn from the root
seed with ``SeedSequence(root, spawn_key=hash of its parameters)``: adding values to the grid
never changes the other points' streams. Each point runs in ``OUT/points/ID`` with checkpoints;
a rerun skips finished points, resumes interrupted ones and names damaged ones (``--redo ID``).
Executors (``executors.py``): serial, a local process pool, or Dask (optional extra ``distributed``); every worker
runs Numba with one thread, set before it starts, and local workers die with the sweep. The
sweep folder and each point folder are locked while in use (``runfolder.lock``): a second sweep,
or a ``meanfield resume`` of a running point, is refused naming the process that holds it.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
import tomllib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..config import Config
from ..engine.progress import Reporter
from ..errors import ConfigError, CorruptedResultError
from ..store import files, runfolder
from ..store.results import FINISHED, Result
from . import executors

SPACINGS = ("linear", "geometric", "integer")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its id, the swept parameters and its resolved config."""

    id: str
    params: dict
    config: Config


def load(path) -> tuple[Config, dict]:
    """(base config, grid {dotted key: list of values}) from a TOML file with a [sweep] table."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"sweep file {str(path)!r} does not exist", parameter="path", value=str(path),
                          allowed="an existing TOML file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"sweep file {str(path)!r} cannot be read: {exc}", parameter="path",
                          value=str(path), allowed="a readable TOML file") from None
    table = values.pop("sweep", None)
    if table is None:
        raise ConfigError(f"{str(path)!r} has no [sweep] table", parameter="sweep", value=None,
                          allowed="a [sweep] table of parameters and values")
    return Config.from_dict(values), grid(table)


def grid(table: dict) -> dict:
    """{dotted key: list of values}; ``seeds = N`` becomes ``replicate = [0 .. N-1]``."""
    if not isinstance(table, dict) or not table:
        raise ConfigError.invalid("sweep", table, "a non-empty table of parameters")
    out = {}
    for key, spec in table.items():
        name = f"sweep.{key}"
        if key == "seeds":
            if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
                raise ConfigError.invalid(name, spec, "an integer >= 1")
            out["replicate"] = list(range(spec))
        elif isinstance(spec, list):
            if not spec:
                raise ConfigError.invalid(name, spec, "a non-empty list of values (an empty grid has no runs)")
            out[key] = spec
        elif isinstance(spec, dict):
            out[key] = _range(name, spec)
        else:
            raise ConfigError.invalid(name, spec, "a list of values or a table {start, stop, num, spacing}")
    return out


def _range(name, spec):
    unknown = set(spec) - {"start", "stop", "num", "spacing"}
    if unknown or not {"start", "stop", "num"} <= set(spec):
        raise ConfigError.invalid(name, spec, "a table with start, stop, num and optionally spacing")
    spacing = spec.get("spacing", "linear")
    if spacing not in SPACINGS:
        raise ConfigError.invalid(f"{name}.spacing", spacing, "one of " + ", ".join(SPACINGS))
    num = spec["num"]
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ConfigError.invalid(f"{name}.num", num, "an integer >= 1")
    start, stop = spec["start"], spec["stop"]
    if spacing == "geometric":
        if not (start > 0 and stop > 0):
            raise ConfigError.invalid(name, spec, "positive start and stop for a geometric range")
        values = np.geomspace(start, stop, num)
    else:
        values = np.linspace(start, stop, num)
    if spacing == "integer" or _integer_field(name.removeprefix("sweep.")):      # rounded, each value once
        return list(dict.fromkeys(int(round(v)) for v in values))
    return [float(v) for v in values]


def _integer_field(name: str) -> bool:
    """Whether the config field ``name`` ("section.key") holds an integer (network.m, data.n, ...)."""
    section, _, key = name.partition(".")
    default = getattr(getattr(Config(), section, None), key, None)
    return isinstance(default, int) and not isinstance(default, bool)


def _key(params: dict) -> int:
    return int(hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8], 16)


def expand(base: Config, table: dict) -> list[Point]:
    """The Cartesian product of the grid, each point with its own seed and stable id."""
    keys = list(table)
    points = []
    for values in itertools.product(*(table[k] for k in keys)):
        params = dict(zip(keys, values))
        seed = int(np.random.SeedSequence(base.seed, spawn_key=(_key(params),)).generate_state(1)[0])
        changes = {k: v for k, v in params.items() if k != "replicate"}
        cfg = base.updated({**changes, "seed": seed})
        point_id = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
        points.append(Point(point_id, params, cfg))
    return points


def _row(point: Point, result: Result) -> dict:
    return {"id": point.id, **point.params, "status": result.status,
            **{name: float(values[-1]) for name, values in result.observables.items()}}


def finished(point: Point, out, command: str = "meanfield sweep CONFIG --out OUT") -> dict | None:
    """The summary row of a point already finished in OUT, or None; a damaged point is a
    CorruptedResultError that says how to redo it."""
    folder = Path(out) / "points" / point.id
    if not (folder / "manifest.json").exists():
        return None
    try:
        return _row(point, Result.load(folder))
    except CorruptedResultError as exc:
        raise CorruptedResultError(f"point {point.id} of the sweep is damaged ({exc}); redo it with "
                                   f"`{command} --redo {point.id}`", parameter="--redo", value=point.id) from None


def run_point(point: Point, out) -> dict:
    """Run one point in OUT/points/ID (resuming its checkpoint); returns its summary row."""
    from ..engine.controller import prepare, run
    from ..store import checkpoint, runfolder

    folder = files.make_folder(Path(out) / "points" / point.id)
    with runfolder.lock(folder, "--out"):
        plan = prepare(point.config)
        with files.atomic_write(folder / runfolder.CONFIG) as handle:
            handle.write(point.config.to_toml().encode())
        result = run(plan, throw=False, checkpoint=folder, progress=False)
        result.save(folder)
        if result.status in FINISHED:
            checkpoint.remove(folder)
    return _row(point, result)


def run(points: list[Point], out, scheduler: str = "auto", workers: int | None = None, progress=False,
        redo=(), command: str = "meanfield sweep CONFIG --out OUT") -> list[dict]:
    """Run every point; scheduler: "serial", "processes" (a local pool of processes that die
    with this one), "local" (a Dask LocalCluster on 127.0.0.1) or a Dask scheduler address;
    "auto" is serial for up to 2 points to run, else processes. Finished points are read, not
    rerun; ``redo`` lists ids of points to run again from scratch. One sweep at a time per folder
    (a lock). progress: a ``meanfield.engine.progress`` mode, counting points. Writes OUT/summary.csv
    and returns its rows (in the order of ``points``)."""
    executors.check_scheduler(scheduler, workers)
    ids = {p.id for p in points}
    unknown = [i for i in redo if i not in ids]
    if unknown:
        raise ConfigError.invalid("--redo", unknown[0], "the id of a point of this sweep (a folder name under "
                                  "points/)")
    out = files.make_folder(out)
    with runfolder.lock(out, "--out"):
        for point_id in redo:
            shutil.rmtree(out / "points" / point_id, ignore_errors=True)
        rows = [finished(p, out, command) for p in points]
        todo = [k for k, row in enumerate(rows) if row is None]
        jobs = [points[k] for k in todo]
        reporter = Reporter(progress, len(points), len(points) - len(jobs), unit="point", desc="meanfield sweep")
        try:
            for k, row in executors.results(partial(run_point, out=str(out)), jobs, scheduler, workers, what="point"):
                rows[todo[k]] = row
                reporter.update()
        finally:
            reporter.close()
        write_summary(rows, out / "summary.csv")
    return rows


def write_summary(rows: list[dict], path: Path):
    """A CSV table: one row per point (id, swept parameters, status, final observables)."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    with files.atomic_write(path) as handle:
        handle.write(buffer.getvalue().encode())


def load_table(out) -> list[dict]:
    """The summary rows of a sweep folder, numbers parsed."""
    with open(Path(out) / "summary.csv", newline="") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def fit_exponent(rows: list[dict], x: str, y: str, group: str = "replicate", confidence: float = 0.95) -> dict:
    """Fit y ~ x^slope per replicate (log-log least squares) and report the mean slope with a
    Student-t confidence interval over replicates (over points when there is one replicate)."""
    from ..analysis.fits import power_law, slope_interval

    groups = {}
    for row in rows:
        groups.setdefault(row.get(group, 0), []).append((row[x], row[y]))
    fits = [power_law(*zip(*sorted(pairs))) for pairs in groups.values() if len(pairs) >= 2]
    if len(fits) < 2:
        fits = [power_law(*zip(*sorted(pair for pairs in groups.values() for pair in pairs)))]
    return slope_interval(fits, confidence)
