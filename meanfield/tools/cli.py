"""The ``meanfield`` command. Exit codes: 0 success, 1 a figure's claim failed, 2 bad input,
configuration or file-system fault, 3 divergence, 130 interrupted (progress kept)."""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from ..errors import ConfigError, MeanfieldError


def _config(args):
    """The config file with ``--set key=value`` and ``--seed`` applied (validated like the TOML)."""
    from ..config import Config
    from .sweep import load as load_sweep

    if getattr(args, "grid", False):
        cfg, grid = load_sweep(args.config)
    else:
        cfg, grid = Config.from_toml(args.config), None
    changes = {}
    for item in args.set or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError.invalid("--set", item, "key=value, e.g. --set network.m=200")
        try:
            value = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            value = text                                         # a bare word: a string
        changes[key.strip()] = value
    if args.seed is not None:
        changes["seed"] = args.seed
    swept = [key for key in changes if grid and key in grid]        # --seed is the root the points' seeds come from
    if swept:
        raise ConfigError.invalid("--set", swept[0], "a key the [sweep] table does not sweep (edit its values in the "
                                  "sweep file)")
    return (cfg.updated(changes) if changes else cfg), grid


def _run(args) -> int:
    """Own the folder (a lock), validate the run, then retire what ``--force`` replaces, write
    the config and run: a refused run leaves the folder as it was."""
    from ..engine.controller import prepare
    from ..store import files, runfolder

    cfg, _ = _config(args)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    with runfolder.claim(out, "--out", replace=args.force,
                         busy=f"pass --force to replace it, `meanfield resume {out}` to continue it, or choose "
                              "another --out") as folder:
        plan = prepare(cfg)
        runfolder.retire(folder)
        with files.atomic_write(folder / runfolder.CONFIG) as handle:
            handle.write(cfg.to_toml().encode())
        return _execute(plan, folder, args.progress)


def _resume(args) -> int:
    from ..config import Config
    from ..engine.controller import prepare
    from ..store import checkpoint, runfolder

    folder = runfolder.resolved(args.run_dir, "RUN_DIR")
    not_a_run = ConfigError(f"{str(folder)!r} is not a run folder (no config.toml)", parameter="RUN_DIR",
                            value=str(folder), allowed="a folder written by `meanfield run`")
    if not folder.is_dir():
        raise not_a_run
    with runfolder.lock(folder, "RUN_DIR"):
        if not (folder / runfolder.CONFIG).exists():
            raise not_a_run
        if not checkpoint.exists(folder):
            if (folder / "manifest.json").exists():
                raise ConfigError(f"the run in {str(folder)!r} has finished: nothing to resume (see `meanfield show "
                                  f"{folder}`)", parameter="RUN_DIR", value=str(folder),
                                  allowed="an interrupted run folder")
            raise ConfigError(f"the run in {str(folder)!r} was stopped before its first checkpoint was written, so "
                              f"nothing of it was kept; start it again with `meanfield run {folder / 'config.toml'} "
                              f"--out {folder} --force`", parameter="RUN_DIR", value=str(folder),
                              allowed="an interrupted run folder")
        return _execute(prepare(Config.from_toml(folder / runfolder.CONFIG)), folder, args.progress)


def _execute(plan, out: Path, progress) -> int:
    """Run (or continue) a plan with checkpoints in ``out``, save the result, drop the checkpoint."""
    from ..engine.controller import run
    from ..engine.progress import cli_mode
    from ..store import checkpoint
    from ..store.results import FINISHED

    try:
        result = run(plan, progress=cli_mode(progress), throw=False, checkpoint=out)
    except KeyboardInterrupt:
        print(f"meanfield: interrupted; progress saved in {out}: continue with `meanfield resume {out}`",
              file=sys.stderr)
        return 130
    result.save(out)
    if result.status in FINISHED:             # a diverged run keeps its last finite state
        checkpoint.remove(out)
    obs = result.observables
    print(f"{result.status}: {result.stats['steps']} steps to t = {result.t[-1]:.6g} in "
          f"{result.stats['run_seconds']:.3g} s (+{result.stats['compile_seconds']:.2g} s compile), "
          f"train risk {obs['train_risk'][0]:.4g} -> {obs['train_risk'][-1]:.4g}; saved to {out}")
    if result.status == "diverged":
        print(f"meanfield: {result.message}", file=sys.stderr)
        return 3
    return 0


def _limit(args) -> int:
    import warnings

    from ..store import runfolder
    from ..theory.limits import describe_error, describe_plan, limit_applies, mean_field_limit, plan

    cfg, _ = _config(args)
    if args.reduced:
        return _reduced_limit(cfg, args)
    if args.rule is not None:
        raise ConfigError.invalid("--rule", args.rule, "only with --reduced (the full limit's rule is set by "
                                  "init's laws)")
    args.level = 16 if args.level is None else args.level
    if isinstance(args.level, bool) or args.level < 1:
        raise ConfigError.invalid("--level", args.level, "an integer >= 1")
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.config).stem}-limit"
    with runfolder.claim(out, "--out", replace=args.force,
                         busy="pass --force to replace it or choose another --out") as folder:
        if not limit_applies(cfg):                # a refused config is named by mean_field_limit below
            print(f"meanfield limit: {describe_plan(cfg, plan(cfg, args.level))}", file=sys.stderr, flush=True)
        try:
            with warnings.catch_warnings():           # the plan, printed above
                warnings.filterwarnings("ignore", message="meanfield: the limit in d =")
                result = mean_field_limit(cfg, args.level)
        except KeyboardInterrupt:
            print("meanfield: interrupted; nothing was saved", file=sys.stderr)
            return 130
        runfolder.retire(folder)
        result.save(folder)                      # with its config.toml
    limit, risk = result.stats["limit"], result.observables["train_risk"]
    print(f"limit at level {limit['level']}: {limit['nodes']} weighted nodes, t = {result.t[-1]:.6g}, "
          f"train risk {risk[0]:.4g} -> {risk[-1]:.4g}, {describe_error(limit)}; saved to {folder}")
    return 0


def _reduced_limit(cfg, args) -> int:
    """``meanfield limit --reduced``: the symmetry-reduced limit (``theory.reduced``), its plan
    printed before any work, saved as a reduced-limit folder."""
    from ..theory import reduced

    if args.level is not None and (isinstance(args.level, bool) or args.level < 1):
        raise ConfigError.invalid("--level", args.level, "an integer >= 1")
    planned = reduced.plan(cfg, args.level, args.rule)    # refuses, by name, a config the reduction does not fit
    rule, level = planned["rule"], planned["levels"][0]

    def compute():
        print(f"meanfield limit: {reduced.describe_plan(cfg, planned)}", file=sys.stderr, flush=True)
        return reduced.reduced_limit(cfg, level, rule)

    return _saved(args, "reduced-limit", compute)


def _saved(args, suffix: str, compute) -> int:
    """Claim --out (default runs/CONFIG_NAME-suffix), run ``compute()`` (a result with ``save`` and
    ``describe``) and save it there; Ctrl-C saves nothing (exit 130)."""
    from ..store import runfolder

    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.config).stem}-{suffix}"
    with runfolder.claim(out, "--out", replace=args.force,
                         busy="pass --force to replace it or choose another --out") as folder:
        try:
            result = compute()
        except KeyboardInterrupt:
            print("meanfield: interrupted; nothing was saved", file=sys.stderr)
            return 130
        runfolder.retire(folder)
        result.save(folder)
    print(f"{result.describe()}; saved to {folder}")
    return 0


def _npz(path, option: str, keys: tuple) -> dict:
    """The arrays of an .npz file (never unpickled), with ``keys`` required; ConfigError naming ``option``."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            found = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise ConfigError.invalid(option, str(path), "an .npz file of arrays (numpy.savez)", str(exc)) from None
    missing = [key for key in keys if key not in found]
    if missing:
        raise ConfigError.invalid(option, str(path), f"an .npz file with the arrays {', '.join(keys)} (it has "
                                  f"{', '.join(found) or 'none'})")
    return found


def _predict(args) -> int:
    """``meanfield predict``: the lazy limit's predictions (``theory.lazy``) on the config's training
    data (or --train), at --test's inputs (or the config's test split), saved as a sealed folder."""
    import warnings

    import numpy as np

    from ..engine.controller import run_data
    from ..engine.problem import record_steps
    from ..model.data import data_inputs, validate_arrays
    from ..model.limit_kernels import LimitKernel
    from ..theory import lazy

    cfg, _ = _config(args)
    kernel = LimitKernel(cfg)                                   # refuses, by name, what the lazy limit does not fit
    if args.times is None:
        flow, record = cfg.flow, cfg.record
        times = np.append(record_steps(flow.n_steps, record.n_records, record.spacing) * flow.dt, np.inf)
    else:
        try:
            times = [float(text) for text in args.times.split(",")]
        except ValueError:
            times = [-1.0]
        if not all(t >= 0 for t in times):
            raise ConfigError.invalid("--times", args.times, "comma-separated times >= 0, e.g. 0,1,10,inf")
    if not args.lam >= 0 or not np.isfinite(args.lam):
        raise ConfigError.invalid("--lam", args.lam, "a ridge >= 0")
    if args.train:
        arrays = _npz(args.train, "--train", ("X", "y"))
        X, y = validate_arrays((arrays["X"], arrays["y"]), cfg)
        Z_default = None
    else:
        data = run_data(cfg)
        X, y, Z_default = data.X, data.y, data.X_test if len(data.y_test) else None
    Z = data_inputs(_npz(args.test, "--test", ("X",))["X"], cfg) if args.test else Z_default
    if Z is None:
        raise ConfigError.invalid("--test", None, "an .npz file with the test inputs X (or a config with "
                                  "data.n_test > 0)")
    if cfg.flow.loss != "squared":
        times = [t for t in times if np.isfinite(t)]
    ensemble = args.ensemble or args.covariance
    found = lazy.plan(len(y), len(Z), len(times), ensemble, args.covariance, kernel, X, Z)
    lazy.check_plan(found)

    def compute():
        print(f"meanfield predict: {lazy.describe_plan(found)}", file=sys.stderr, flush=True)
        with warnings.catch_warnings():               # the plan, printed above
            warnings.filterwarnings("ignore", message="meanfield: this prediction's plan")
            return lazy.predict(kernel, y, times, X, Z, lam=args.lam, loss=cfg.flow.loss, ensemble=ensemble,
                                covariance=args.covariance)

    return _saved(args, "predict", compute)


def _band(args) -> int:
    """``meanfield band``: the finite-width band (``theory.fluctuations``) at --test's inputs (or the
    training inputs) and --times, saved as a sealed folder; a refused config, --level, --times or
    --test is named before any folder is claimed."""
    from ..model.data import data_inputs
    from ..theory import fluctuations as fl

    cfg, _ = _config(args)
    fl.check(cfg)
    if args.level is not None and args.level < 1:
        raise ConfigError.invalid("--level", args.level, "an integer >= 1")
    times = None
    if args.times is not None:
        allowed = f"comma-separated multiples of flow.dt = {cfg.flow.dt:g} in [0, flow.t_end = {cfg.flow.t_end:g}]"
        try:
            times = [float(text) for text in args.times.split(",")]
            fl.step_indices(cfg, times)
        except (ValueError, ConfigError):
            raise ConfigError.invalid("--times", args.times, allowed) from None
    x = data_inputs(_npz(args.test, "--test", ("X",))["X"], cfg) if args.test else None
    # a long plan is said (a warning) before any work
    return _saved(args, "band", lambda: fl.fluctuations(cfg, args.level, x=x, times=times, parallel=args.parallel))


def _sweep(args) -> int:
    from ..engine.progress import cli_mode
    from . import sweep

    base, grid = _config(args)
    points = sweep.expand(base, grid)
    command = f"meanfield sweep {args.config} --out {args.out}"
    try:
        rows = sweep.run(points, args.out, scheduler=args.scheduler, workers=args.workers,
                         progress=cli_mode(args.progress), redo=args.redo or (), command=command)
    except KeyboardInterrupt:
        print(f"meanfield: interrupted; running points kept their checkpoints: `{command}` continues the sweep",
              file=sys.stderr)
        return 130
    failed = [r for r in rows if r["status"] == "diverged"]
    print(f"{len(rows)} points ({len(failed)} diverged); summary in {Path(args.out) / 'summary.csv'}")
    return 3 if failed else 0


def _show(args) -> int:
    from ..store.results import Result
    from .show import describe, plot

    print(describe(args.run_dir))
    if args.plot:
        print(f"risk curves drawn in {plot(Result.load(args.run_dir), args.plot)}")
    return 0


def _bench(args) -> int:
    from . import bench

    report = bench.run(quick=args.quick, out=args.out)
    print(bench.markdown_table(report))
    pairs = report["population_ns_per_pair"]
    print("population step: " + ", ".join(f"m = {m}: {v:.1f} ns/pair" for m, v in pairs.items())
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

    outcomes = run_scenarios(args.names, quick=args.quick, folder=args.scenarios, out=args.out, jobs=args.jobs,
                             scheduler=args.scheduler)
    failed = [o for o in outcomes if o.status != "ok"]
    return 1 if failed else 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _overrides(command):
    command.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="change one setting, validated like the TOML (repeatable), e.g. --set network.m=200")
    command.add_argument("--seed", type=int, help="the root seed (replaces the config's)")


def _progress(command):
    command.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress on stderr (default: a bar on a terminal, plain lines in logs)")


def parser() -> argparse.ArgumentParser:
    from ..theory.reduced_reverse import PARALLEL  # NumPy and the model only: no Numba at parse time

    top = _Parser(prog="meanfield", description=__doc__)
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one configuration and save its result")
    run.add_argument("config", help="a TOML configuration file")
    run.add_argument("--out", help="result folder (default runs/CONFIG_NAME)")
    run.add_argument("--force", action="store_true", help="overwrite a non-empty result folder")
    _overrides(run)
    _progress(run)
    run.set_defaults(func=_run)

    resume = sub.add_parser("resume", help="continue an interrupted run from its checkpoint")
    resume.add_argument("run_dir", help="the run folder (written by `meanfield run`)")
    _progress(resume)
    resume.set_defaults(func=_resume)

    limit = sub.add_parser("limit", help="compute the infinite-width (mean-field) limit of a noiseless run")
    limit.add_argument("config", help="a TOML configuration file (mean-field scaling, no noise, full batch)")
    limit.add_argument("--level", type=int, default=None,
                       help="refinement of the initial law's quadrature (default 16; d = 2: 2 level^3 nodes; "
                            "with --reduced: 4 for the gauss rule, 10 for sobol (2^level points), 8 for rays)")
    limit.add_argument("--reduced", action="store_true",
                       help="the symmetry-reduced solver: Gaussian inputs and a teacher of k neurons (population "
                            "risk), or isotropic Gaussian classes; its cost does not grow with d")
    limit.add_argument("--rule", choices=("gauss", "sobol", "rays"), default=None,
                       help="with --reduced: the rule of the initial law (gauss: tensor rule, small k; sobol: "
                            "scrambled Sobol points, large k; rays: ReLU-like networks, both layers trained, "
                            "k <= 3: the radius integrated exactly, the fastest convergence)")
    limit.add_argument("--out", help="result folder (default runs/CONFIG_NAME-limit)")
    limit.add_argument("--force", action="store_true", help="overwrite a non-empty result folder")
    _overrides(limit)
    limit.set_defaults(func=_limit)

    pred = sub.add_parser("predict", help="the lazy (NTK) limit's predictions at test points, any time, ensembles")
    pred.add_argument("config", help="a TOML configuration file (lazy scaling, or a deep NTK network)")
    pred.add_argument("--test", metavar="FILE.npz", help="test inputs: an .npz file with X (default: the config's "
                                                         "test split, data.n_test)")
    pred.add_argument("--train", metavar="FILE.npz", help="training data: an .npz file with X and y (default: the "
                                                          "samples a run of the config trains on)")
    pred.add_argument("--times", help="comma-separated flow times, inf allowed (default: the config's record times "
                                      "and inf)")
    pred.add_argument("--lam", type=float, default=0.0,
                      help="ridge on the displacement from the initialisation (t = inf: kernel ridge regression)")
    pred.add_argument("--ensemble", action="store_true",
                      help="the mean and variance over random initialisations (NNGP + NTK)")
    pred.add_argument("--covariance", action="store_true", help="with --ensemble: the full test covariance")
    pred.add_argument("--out", help="result folder (default runs/CONFIG_NAME-predict)")
    pred.add_argument("--force", action="store_true", help="overwrite a non-empty result folder")
    _overrides(pred)
    pred.set_defaults(func=_predict)

    band = sub.add_parser("band", help="the finite-width band around the mean-field limit: lim m Var f_m(x, t)")
    band.add_argument("config", help="a TOML configuration file (mean-field scaling; a smooth activation on finite "
                      "data, or the population risk)")
    band.add_argument("--level", type=int, help="refinement of the limit's quadrature (default 12 on finite data; "
                      "the reduced limit's default on the population risk)")
    band.add_argument("--test", metavar="FILE.npz", help="the points x: an .npz file with X (default: the training "
                                                         "inputs)")
    band.add_argument("--times", help="comma-separated multiples of flow.dt (default: the config's record times)")
    band.add_argument("--parallel", choices=PARALLEL, default=PARALLEL[0],
                      help="population risk, relu: refuse nearly parallel pairs of reduced nodes, or drop their "
                      "second-order terms (an approximation, said in the result)")
    band.add_argument("--out", help="result folder (default runs/CONFIG_NAME-band)")
    band.add_argument("--force", action="store_true", help="overwrite a non-empty result folder")
    _overrides(band)
    band.set_defaults(func=_band)

    show = sub.add_parser("show", help="a saved run at a glance: status, config, statistics, observables")
    show.add_argument("run_dir", help="the run folder")
    show.add_argument("--plot", metavar="FILE.png", help="also draw the risk curves into this file")
    show.set_defaults(func=_show)

    sweep = sub.add_parser("sweep", help="run the grid of a [sweep] table (rerun to resume)")
    sweep.add_argument("config", help="a TOML configuration with a [sweep] table")
    sweep.add_argument("--out", required=True, help="sweep folder (points/ID/ and summary.csv)")
    sweep.add_argument("--scheduler", default="auto",
                       help="serial, processes, local (Dask LocalCluster) or a Dask scheduler address")
    sweep.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    sweep.add_argument("--redo", action="append", metavar="ID", help="run this point again from scratch (repeatable)")
    _overrides(sweep)
    _progress(sweep)
    sweep.set_defaults(func=_sweep, grid=True)

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
    figs.add_argument("--out", help="figure folder (default: the checkout's figures/, else ./figures)")
    figs.add_argument("--scenarios", help="folder of scenario scripts (default: the checkout's)")
    figs.add_argument("--jobs", type=int, default=None, help="scenarios run side by side (default: the CPUs available)")
    figs.add_argument("--scheduler", default="serial",
                      help="where a scenario's own runs go: serial (default), processes, local (Dask) or a Dask "
                           "scheduler address, e.g. a SLURM cluster's")
    figs.set_defaults(func=_figures)
    return top


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"meanfield: warning: {message}\n"


def main(argv=None) -> int:
    import warnings

    args = parser().parse_args(argv)
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning
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
    except BrokenPipeError:            # `meanfield show RUN | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())     # no second error at exit
        return 0
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":
    sys.exit(main())
