"""The ``meanfield`` command. Exit codes: 0 success, 2 bad input or configuration, 3 divergence."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ConfigError, MeanfieldError


def _run(args) -> int:
    from .config import Config
    from .results import atomic_write

    cfg = Config.from_toml(args.config)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ConfigError(f"output folder {str(out)!r} exists and is not empty; pass --force to "
                          "overwrite it, `meanfield resume {out}` to continue it, or choose another --out",
                          parameter="--out", value=str(out), allowed="a new or empty folder (or --force)")
    out.mkdir(parents=True, exist_ok=True)
    if args.force:
        from . import checkpoint

        checkpoint.remove(out)
    with atomic_write(out / "config.toml") as handle:
        handle.write(cfg.to_toml().encode())
    return _execute(cfg, out, args.progress)


def _resume(args) -> int:
    from . import checkpoint
    from .config import Config

    folder = Path(args.run_dir)
    if not (folder / "config.toml").exists():
        raise ConfigError(f"{str(folder)!r} is not a run folder (no config.toml)", parameter="RUN_DIR",
                          value=str(folder), allowed="a folder written by `meanfield run`")
    if not checkpoint.exists(folder):
        raise ConfigError(f"{str(folder)!r} holds no checkpoint: the run finished or never started",
                          parameter="RUN_DIR", value=str(folder), allowed="an interrupted run folder")
    return _execute(Config.from_toml(folder / "config.toml"), folder, args.progress)


def _execute(cfg, out: Path, progress) -> int:
    """Run (or continue) ``cfg`` with checkpoints in ``out``, save the result, drop the checkpoint."""
    from . import checkpoint
    from .simulate import simulate

    try:
        result = simulate(cfg, progress=progress, throw=False, checkpoint=out)
    except KeyboardInterrupt:
        print(f"meanfield: interrupted; progress saved in {out}: continue with `meanfield resume {out}`",
              file=sys.stderr)
        return 130
    result.save(out)
    if result.status == "completed":          # a diverged run keeps its last finite state
        checkpoint.remove(out)
    obs = result.observables
    print(f"{result.status}: {result.stats['steps']} steps to t = {result.t[-1]:.6g} in "
          f"{result.stats['run_seconds']:.3g} s (+{result.stats['compile_seconds']:.2g} s compile), "
          f"train risk {obs['train_risk'][0]:.4g} -> {obs['train_risk'][-1]:.4g}; saved to {out}")
    if result.status == "diverged":
        print(f"meanfield: {result.message}", file=sys.stderr)
        return 3
    return 0


def _sweep(args) -> int:
    from . import sweep

    base, grid = sweep.load(args.config)
    points = sweep.expand(base, grid)
    rows = sweep.run(points, args.out, scheduler=args.scheduler, workers=args.workers)
    failed = [r for r in rows if r["status"] != "completed"]
    print(f"{len(rows)} points ({len(failed)} diverged); summary in {Path(args.out) / 'summary.csv'}")
    return 3 if failed else 0


def _bench(args) -> int:
    from . import bench

    report = bench.run(quick=args.quick, out=args.out)
    print(bench.markdown_table(report))
    print("population step: " + ", ".join(f"m = {m}: {v:.1f} ns/pair" for m, v in report["population_ns_per_pair"].items())
          + f"; compile {report['compile_cold']:.1f} s cold, {report['compile_cached']:.2f} s from cache; "
          f"import {report['import_cached']:.2f} s" + (f"; report in {args.out}" if args.out else ""))
    return 0


def _scenarios(args) -> int:
    from .figures import list_scenarios

    for scenario in list_scenarios(args.scenarios):
        print(f"{scenario.name:24s} {scenario.claim}")
    return 0


def _figures(args) -> int:
    from .figures import run_scenarios

    outcomes = run_scenarios(args.names, quick=args.quick, folder=args.scenarios, out=args.out)
    failed = [o for o in outcomes if o.status != "ok"]
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="meanfield", description=__doc__)
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one configuration and save its result")
    run.add_argument("config", help="a TOML configuration file")
    run.add_argument("--out", help="result folder (default runs/CONFIG_NAME)")
    run.add_argument("--force", action="store_true", help="overwrite a non-empty result folder")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="show a progress bar (default: on long runs in a terminal)")
    run.set_defaults(func=_run)

    resume = sub.add_parser("resume", help="continue an interrupted run from its checkpoint")
    resume.add_argument("run_dir", help="the run folder (written by `meanfield run`)")
    resume.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: on long runs in a terminal)")
    resume.set_defaults(func=_resume)

    sweep = sub.add_parser("sweep", help="run the grid of a [sweep] table (rerun to resume)")
    sweep.add_argument("config", help="a TOML configuration with a [sweep] table")
    sweep.add_argument("--out", required=True, help="sweep folder (points/ID/ and summary.csv)")
    sweep.add_argument("--scheduler", default="auto",
                       help="serial, processes, local (Dask LocalCluster) or a Dask scheduler address")
    sweep.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    sweep.set_defaults(func=_sweep)

    bench = sub.add_parser("bench", help="time the engine against NumPy, PyTorch and JAX in one run")
    bench.add_argument("--quick", action="store_true", help="small sizes, NumPy peer only (seconds)")
    bench.add_argument("--out", default=None, help="write the JSON report here")
    bench.set_defaults(func=_bench)

    scen = sub.add_parser("scenarios", help="list the scenarios and their claims")
    scen.add_argument("--scenarios", help="folder of scenario scripts (default: the checkout's)")
    scen.set_defaults(func=_scenarios)

    figs = sub.add_parser("figures", help="run the scenarios and regenerate their figures")
    figs.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    figs.add_argument("--quick", action="store_true", help="small sizes: seconds per scenario")
    figs.add_argument("--out", help="figure folder (default: the checkout's figures/)")
    figs.add_argument("--scenarios", help="folder of scenario scripts (default: the checkout's)")
    figs.set_defaults(func=_figures)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except MeanfieldError as exc:
        if args.debug:
            raise
        print(f"meanfield: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("meanfield: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
