"""The ``meanfield`` command. Exit codes: 0 success, 2 bad input or configuration, 3 divergence."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ConfigError, MeanfieldError


def _run(args) -> int:
    from .config import Config
    from .simulate import simulate

    cfg = Config.from_toml(args.config)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ConfigError(f"output folder {str(out)!r} exists and is not empty; pass --force to "
                          "overwrite it or choose another --out", parameter="--out", value=str(out),
                          allowed="a new or empty folder (or --force)")
    result = simulate(cfg, progress=args.progress, throw=False)
    result.save(out)
    obs = result.observables
    print(f"{result.status}: {result.stats['steps']} steps to t = {result.t[-1]:.6g} in "
          f"{result.stats['run_seconds']:.3g} s (+{result.stats['compile_seconds']:.2g} s compile), "
          f"train risk {obs['train_risk'][0]:.4g} -> {obs['train_risk'][-1]:.4g}; saved to {out}")
    if result.status == "diverged":
        print(f"meanfield: {result.message}", file=sys.stderr)
        return 3
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
