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

from ..analysis.claims import failed
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


def run_scenarios(names, quick=False, folder=None, out=None, echo=_say) -> list[Outcome]:
    """Run scenarios (all if ``names`` is empty), each in its own headless subprocess."""
    available = {s.name: s for s in list_scenarios(folder)}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError.invalid("NAME", unknown[0], "one of " + ", ".join(sorted(available)))
    out_dir = make_folder(Path(out) if out else default_out())
    env = {**os.environ, "MPLBACKEND": "Agg"}
    outcomes = []
    todo = names or list(available)
    for k, name in enumerate(todo, 1):
        command = [sys.executable, str(available[name].path), "--out", str(out_dir)]
        if quick:
            command.append("--quick")
        echo(f"{name:24s} running ({k}/{len(todo)}) ...")
        tic = time.perf_counter()
        proc = _child(command, env)
        seconds = time.perf_counter() - tic
        status = {0: "ok", FAILED_CLAIM: "claim failed"}.get(proc.returncode, f"failed (exit {proc.returncode})")
        lines = proc.stderr.strip().splitlines()
        if proc.returncode == FAILED_CLAIM:
            marker = "claim does not hold: "
            detail = "; ".join(line.split(marker, 1)[1] for line in lines if marker in line)
        else:
            detail = "" if proc.returncode == 0 else (lines or [""])[-1]
        outcomes.append(Outcome(name, status, seconds, detail))
        echo(f"{name:24s} {status:18s} {seconds:7.1f} s  {detail}")
    if not quick and not out and out_dir == CHECKOUT / "figures":
        write_table(list(available.values()), out_dir, CHECKOUT / "scenarios" / "README.md")
    echo(f"figures written to {out_dir}")
    return outcomes


def default_out() -> Path:
    """The checkout's figures/ when meanfield runs from a checkout, else ./figures."""
    return CHECKOUT / "figures" if (CHECKOUT / "scenarios").is_dir() and (CHECKOUT / "pyproject.toml").exists() \
        else Path.cwd() / "figures"


def _child(command, env) -> subprocess.CompletedProcess:
    """Run a scenario script; Ctrl-C or SIGTERM stop it (SIGINT, then a kill after 5 s) and stop us."""
    import signal

    from ..engine.interrupts import sigterm_as_interrupt

    with sigterm_as_interrupt():
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            stdout, stderr = proc.communicate()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def write_table(scenarios, figures_dir: Path, path: Path):
    """scenarios/README.md: each figure with its claims (from the sidecars), source paper and
    full-mode run time."""
    rows = ["# Scenarios", "",
            "One script per figure; `meanfield figures` regenerates them all (`--quick` for small "
            "sizes). Each figure's claims are checked against its own numbers (in its JSON sidecar, "
            "`claims`); a claim that does not hold fails the run. Run times are full mode on the "
            "2-core reference machine, wall time (which other jobs inflate) and CPU time.", "",
            "| figure | claims (each checked) | setting | source | full-mode run time |", "|---|---|---|---|---|"]
    for s in scenarios:
        sidecar = figures_dir / f"{s.name}.json"
        record = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        seconds, cpu = record.get("run_seconds"), record.get("cpu_seconds")
        when = "not run" if seconds is None else f"{seconds:.0f} s" + (f" ({cpu:.0f} s CPU)" if cpu is not None else "")
        claims = "<br>".join(f"{'✓' if c['holds'] else '✗'} {c['text']}" for c in record.get("claims", [])) or s.claim
        rows.append(f"| [`{s.name}`](../figures/{s.name}.png) | {claims} | {record.get('setting', '')} | {s.source} "
                    f"| {when} |")
    with atomic_write(path) as handle:
        handle.write(("\n".join(rows) + "\n").encode())


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
    if broken:
        sys.exit(FAILED_CLAIM)


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished subprocesses (the bench runs in one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def save_figure(figure, path: Path):
    """PNG with no timestamp or software metadata, so it is byte-stable across runs."""
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=110, metadata={"Software": None})

