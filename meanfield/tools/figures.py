"""The figure pipeline: scenario scripts in ``scenarios/`` -> ``figures/NAME.png`` + ``NAME.json``.

A scenario script's docstring starts with its one-line claim and has a ``Source:`` line naming the
paper. It defines ``run(quick, out) -> (figure, record)`` and ends with ``if __name__ == "__main__":
scenario_main(__file__, run)``. ``record`` holds the key numbers shown in the figure: it must have
the keys of RECORD_KEYS (``seed``, ``config``, ``numbers``, fitted slopes among them, ``setting``,
one line with d, m, n and seeds in full mode, and ``claims``, a list made by
``meanfield.analysis.claims``: every sentence the figure states with the comparison that proves it
from these numbers). The sidecar adds name, claim, quick, versions, run time and CPU time (the
script's and its subprocesses'). A scenario whose claims do not all hold still writes its figure and
sidecar (to be looked at), then exits with FAILED_CLAIM, naming each failed claim.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..analysis.claims import check_windows, failed
from ..engine.interrupts import sigterm_as_interrupt
from ..errors import ConfigError
from ..store.files import atomic_write, json_default, make_folder, versions

CHECKOUT = Path(__file__).resolve().parents[2]
RECORD_KEYS = ("seed", "config", "numbers", "claims", "setting")
FAILED_CLAIM = 4          # exit code of a scenario script whose figure states a claim that does not hold


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    claim: str
    source: str


def scenario_folder(folder=None) -> Path:
    path = Path(folder) if folder else CHECKOUT / "scenarios"
    if not path.is_dir():
        raise ConfigError(f"scenario folder {str(path)!r} not found: run from a meanfield checkout "
                          "or pass --scenarios DIR", parameter="--scenarios", value=str(path),
                          allowed="a folder of scenario scripts")
    return path


def list_scenarios(folder=None) -> list[Scenario]:
    """Every scenario script (``*.py`` with a docstring) in the folder, by name."""
    out = []
    for path in sorted(scenario_folder(folder).glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if not doc or path.name.startswith("_"):
            continue
        source = next((" ".join(par.split(":", 1)[1].split()) for par in doc.split("\n\n")
                       if par.strip().lower().startswith("source:")), "")
        out.append(Scenario(path.stem, path, claim(doc), source))
    return out


def claim(docstring: str) -> str:
    """A scenario's claim: the first paragraph of its docstring, on one line."""
    return " ".join(docstring.strip().split("\n\n", 1)[0].split())


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str
    seconds: float
    detail: str = ""


def _say(line: str):
    print(line, flush=True)          # flushed: progress shows when stdout is a file or a pipe


def run_scenarios(names, quick=False, folder=None, out=None, echo=_say, jobs: int | None = None,
                  scheduler: str = "serial") -> list[Outcome]:
    """Run scenarios (all if ``names`` is empty), each in its own headless subprocess, ``jobs`` at a
    time (default: the CPUs this process may use), the longest first; a scenario's own runs go to
    ``scheduler`` (``executors.py``: serial, processes, local or a Dask address). Prints the plan
    first (how many, the expected CPU time from the last full run's sidecars, where it writes), then a
    line as each scenario starts and ends, with how many are done and an estimate of the time left."""
    from ..engine.threads import usable_cpus
    from .executors import VARIABLE, check_scheduler

    available = {s.name: s for s in list_scenarios(folder)}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError.invalid("NAME", unknown[0], "one of " + ", ".join(sorted(available)))
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError.invalid("--jobs", jobs, "an integer >= 1 (default: the CPUs available)")
    check_scheduler(scheduler, None)
    out_dir = make_folder(Path(out) if out else default_out())
    jobs = jobs or usable_cpus()
    env = {**os.environ, "MPLBACKEND": "Agg", VARIABLE: scheduler}
    todo = list(names or available)
    expected = {name: _expected_seconds(name, quick) for name in todo}
    todo.sort(key=lambda name: -(expected[name] or 0.0))                 # the longest first
    known = [v for v in expected.values() if v]
    total = sum(known)
    echo(f"meanfield figures: {len(todo)} scenario{'s' * (len(todo) != 1)} in {'quick' if quick else 'full'} mode, "
         f"{jobs} at a time, into {out_dir}" + (f"; the last {'quick' if quick else 'full'} run took about "
                                                 f"{total / 60:.0f} CPU-minutes ({len(known)} of them timed)"
                                                 if known else ""))
    outcomes, running, waiting = [], {}, list(todo)
    tic = time.perf_counter()
    with sigterm_as_interrupt():
        try:
            while waiting or running:
                while waiting and len(running) < jobs:
                    name = waiting.pop(0)
                    echo(f"{name:24s} running ({len(outcomes) + len(running) + 1}/{len(todo)}) ...")
                    running[name] = _start(available[name].path, out_dir, quick, env)
                for name, (proc, errors, started) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[name]
                    errors.seek(0)
                    outcome = _outcome(name, proc.returncode, errors.read().decode(errors="replace"),
                                       time.perf_counter() - started)
                    errors.close()
                    outcomes.append(outcome)
                    echo(f"{name:24s} {outcome.status:18s} {outcome.seconds:7.1f} s  {outcome.detail}".rstrip()
                         + _time_left(outcomes, waiting, running, expected, jobs, time.perf_counter() - tic))
                time.sleep(0.05)
        except KeyboardInterrupt:
            _stop([proc for proc, _, _ in running.values()])
            raise
    if not quick and not out and out_dir == CHECKOUT / "figures":
        write_table(list(available.values()), out_dir, CHECKOUT / "scenarios" / "README.md")
    echo(f"figures written to {out_dir}")
    return sorted(outcomes, key=lambda o: todo.index(o.name))


def _start(script: Path, out_dir: Path, quick: bool, env) -> tuple:
    """Start a scenario script; its stderr goes to a temporary file (a pipe could fill and stall it)."""
    import tempfile

    errors = tempfile.TemporaryFile()
    command = [sys.executable, str(script), "--out", str(out_dir)] + (["--quick"] if quick else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env), errors, time.perf_counter()


def _expected_seconds(name: str, quick: bool) -> float | None:
    """The CPU seconds the scenario took last time, from its committed sidecar (the checkout's
    figures/, full mode), or None: what the plan and the time left are estimated from."""
    sidecar = CHECKOUT / "figures" / f"{name}.json"
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if bool(record.get("quick")) != quick:
        return None
    return record.get("cpu_seconds") or record.get("run_seconds")


def _time_left(outcomes, waiting, running, expected, jobs, elapsed) -> str:
    """ "  (k/N done, about M min left)": the expected time of what is left, at the pace so far."""
    done = len(outcomes)
    total = done + len(waiting) + len(running)
    finished = [expected[o.name] for o in outcomes if expected[o.name]]
    left = [expected[name] for name in [*waiting, *running] if expected[name]]
    if not finished or len(left) < len(waiting) + len(running):
        return f"  ({done}/{total} done)"
    pace = elapsed / (sum(finished) / jobs)
    return f"  ({done}/{total} done, about {pace * sum(left) / jobs / 60:.0f} min left)"


def _outcome(name, returncode, stderr, seconds) -> Outcome:
    status = {0: "ok", FAILED_CLAIM: "claim failed"}.get(returncode, f"failed (exit {returncode})")
    lines = stderr.strip().splitlines()
    if returncode == FAILED_CLAIM:
        marker = "claim does not hold: "
        detail = "; ".join(line.split(marker, 1)[1] for line in lines if marker in line)
    else:
        detail = "" if returncode == 0 else (lines or [""])[-1]
    return Outcome(name, status, seconds, detail)


def simulate_all(configs: list, data=None) -> list:
    """[simulate(cfg, data=data) for cfg in configs], the scenario's independent runs, computed where
    ``meanfield figures --scheduler`` says (``executors.map_runs``: serial by default). Seeded runs:
    the same results on every scheduler."""
    from .executors import map_runs

    return map_runs(_simulate, [(cfg, data) for cfg in configs])


def _simulate(item):
    from ..engine.controller import simulate

    cfg, data = item
    return simulate(cfg, data=data)


def default_out() -> Path:
    """The checkout's figures/ when meanfield runs from a checkout, else ./figures."""
    return CHECKOUT / "figures" if (CHECKOUT / "scenarios").is_dir() and (CHECKOUT / "pyproject.toml").exists() \
        else Path.cwd() / "figures"


def _stop(procs):
    """Ctrl-C or SIGTERM: SIGINT to every running scenario, then a kill after 5 s."""
    import signal

    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 5.0
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_table(scenarios, figures_dir: Path, path: Path):
    """scenarios/README.md: each figure with its claims (from the sidecars), source paper and
    full-mode run time."""
    rows = ["# Scenarios", "",
            "One script per figure; `meanfield figures` regenerates them all (`--quick` for small "
            "sizes). Each figure's claims are checked against its own numbers (in its JSON sidecar, "
            "`claims`); a claim that does not hold fails the run. A claim is an outcome unless marked "
            "*(construction: why)* or *(check)*; a rate claim gives its 95 % interval over seeds, the window "
            "it must lie in and the rival exponents the window excludes. Run times are full mode on the "
            "2-core reference machine, wall time (which other jobs inflate) and CPU time.", "",
            "| figure | claims (each checked) | setting | source | full-mode run time |", "|---|---|---|---|---|"]
    for s in scenarios:
        sidecar = figures_dir / f"{s.name}.json"
        record = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        seconds, cpu = record.get("run_seconds"), record.get("cpu_seconds")
        when = "not run" if seconds is None else f"{seconds:.0f} s" + (f" ({cpu:.0f} s CPU)" if cpu is not None else "")
        claims = "<br>".join(_claim_cell(c) for c in record.get("claims", [])) or s.claim
        rows.append(f"| [`{s.name}`](../figures/{s.name}.png) | {claims} | {record.get('setting', '')} | {s.source} "
                    f"| {when} |")
    with atomic_write(path) as handle:
        handle.write(("\n".join(rows) + "\n").encode())


def _claim_cell(c: dict) -> str:
    """One claim in the table: held or not, its sentence, its kind unless an outcome, and for a rate
    its interval, window and rivals."""
    kind = {"construction": f" *(construction: {c.get('because', '')})*", "check": " *(check)*"}.get(c.get("kind"), "")
    rate = ""
    if "theory" in c:
        low, high = c["value"]
        rate = (f" — slope [{low:.2f}, {high:.2f}] in [{c['reference'][0]:g}, {c['reference'][1]:g}], "
                f"rival {', '.join(f'{r:g}' for r in c['rival'])}")
    return f"{'✓' if c['holds'] else '✗'} {c['text']}{kind}{rate}"


def scenario_main(script, run):
    """Command-line entry of a scenario script: ``python scenarios/NAME.py [--quick] [--out DIR]``."""
    name = Path(script).stem
    args = argparse.ArgumentParser(description=f"scenario {name}")
    args.add_argument("--quick", action="store_true", help="small sizes, seconds")
    args.add_argument("--out", default=str(CHECKOUT / "figures"), help="figure folder")
    args = args.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tic, cpu = time.perf_counter(), _cpu_seconds()
    figure, record = run(args.quick, out)
    seconds, cpu_seconds = time.perf_counter() - tic, _cpu_seconds() - cpu
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise KeyError(f"scenario {name} recorded no {', '.join(missing)}: its run() must return "
                       f"a record with the keys {RECORD_KEYS}")
    save_figure(figure, out / f"{name}.png")
    doc = ast.get_docstring(ast.parse(Path(script).read_text())) or ""
    sidecar = {"name": name, "claim": claim(doc),
               "quick": args.quick, **record, "versions": versions(), "run_seconds": seconds,
               "cpu_seconds": cpu_seconds}
    with atomic_write(out / f"{name}.json") as handle:
        handle.write(json.dumps(sidecar, indent=2, default=json_default).encode())
    print(f"{name}: wrote {out / (name + '.png')} in {seconds:.1f} s")
    broken = failed(record["claims"])
    for item in broken:
        print(f"{name}: claim does not hold: {item['text']} ({item['quantity']} = {item['value']}, "
              f"required {item['relation']} {item['reference']})", file=sys.stderr)
    unsound = check_windows(record["claims"])
    if not any(item.get("kind", "outcome") == "outcome" for item in record["claims"]):
        unsound.append("no outcome claim: a figure's title rests on outcome claims only")
    for problem in unsound:
        print(f"{name}: claim does not hold: {problem}", file=sys.stderr)
    if broken or unsound:
        sys.exit(FAILED_CLAIM)


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished subprocesses (the bench runs in one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def save_figure(figure, path: Path):
    """PNG with no timestamp or software metadata, so it is byte-stable across runs."""
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=110, metadata={"Software": None})

