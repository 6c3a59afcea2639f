"""``meanfield show RUN_DIR``: a saved run at a glance, without writing code."""
from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..store import checkpoint, files
from ..store.results import Result


def config_changes(cfg: Config) -> dict:
    """{dotted key: value} where ``cfg`` differs from the defaults, nested tables included
    (``flow.potential.kind``)."""
    def changes(ours, default, prefix):
        out = {}
        for key, value in ours.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                out.update(changes(value, default[key], name + "."))
            elif value != default[key]:
                out[name] = value
        return out

    return changes(cfg.to_dict(), Config().to_dict(), "")


def _config_lines(cfg: Config) -> list[str]:
    """The config's differences from the defaults, one line each under a heading."""
    changes = config_changes(cfg)
    return (["config (differences from the defaults):" if changes else "config: every default"]
            + [f"  {key} = {value}" for key, value in changes.items()])


def _kind(folder: Path) -> str | None:
    """The manifest's kind ("reduced_limit"), None for a run's result (verified when it is loaded)."""
    return files.read_sealed(folder / "manifest.json", "a saved result").get("kind")


def _reduced_limit():
    from ..theory.reduced import ReducedLimit

    return ReducedLimit


def _prediction():
    from ..theory.lazy import Prediction

    return Prediction


def _band():
    from ..theory.fluctuations import Fluctuations

    return Fluctuations


# kind -> its class (imported when read)
SAVED = {"reduced_limit": _reduced_limit, "lazy_prediction": _prediction, "finite_width_band": _band}


def describe(folder) -> str:
    """Status, the config's differences from the defaults, run statistics, final observables."""
    folder = Path(folder)
    if not (folder / "manifest.json").exists() and checkpoint.exists(folder):
        state = files.read_sealed(folder / checkpoint.STATE, "a checkpoint")
        cfg = Config.from_dict(files.field(state, "config", folder / checkpoint.STATE))
        return (f"{folder}: interrupted at t = {state.get('t', '?')} of {cfg.flow.t_end:g} "
                f"(step {state.get('done')} of {cfg.flow.n_steps}); continue with `meanfield resume {folder}`")
    kind = _kind(folder) if (folder / "manifest.json").exists() else None
    if kind in SAVED:
        found = SAVED[kind]().load(folder)
        config = [] if found.config is None else _config_lines(found.config)
        return "\n".join([f"{folder}: {found.describe()}", *config])
    result = Result.load(folder)
    cfg, stats = result.config, result.stats
    lines = [f"{folder}: {result.status}, t = {result.t[-1]:.6g} of {cfg.flow.t_end:g}"
             + (f" ({result.message})" if result.message else "")]
    lines += _config_lines(cfg)
    lines.append(f"stats: {stats.get('steps')} steps, {stats.get('run_seconds', float('nan')):.3g} s run "
                 f"+ {stats.get('compile_seconds', float('nan')):.2g} s compile, {stats.get('threads')} thread(s), "
                 f"n_train = {stats.get('n_train')}, n_test = {stats.get('n_test')}")
    if "rejected_steps" in stats:
        span = (f", steps {stats['dt_min']:.3g} to {stats['dt_max']:.3g}" if stats.get("dt_min") is not None else "")
        lines.append(f"adaptive: {stats['rejected_steps']} rejected and {stats['forced_steps']} forced steps{span}, "
                     f"{stats['drift_evaluations']} drift evaluations")
    if result.weights is not None:
        from ..theory.limits import describe_error

        limit = stats.get("limit")
        lines.append(f"weighted particles ({len(result.weights)})" + (
            f": the mean-field limit at level {limit['level']}, {limit['nodes']} nodes and {limit['probes']} probes, "
            + describe_error(limit) if limit and "nodes" in limit else ""))
    lines.append(f"observables (t = {result.t[0]:g} -> {result.t[-1]:.6g}):")
    width = max(map(len, result.observables), default=0)
    lines += [f"  {name:{width}s}  {values[0]:.6g} -> {values[-1]:.6g}" for name, values in result.observables.items()]
    return "\n".join(lines)


def plot(result: Result, path):
    """The risks (every observable whose name ends in ``risk``) against t, on log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.plotting import risk_curves
    from .figures import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    risk_curves(ax, {name.replace("_", " "): (result.t, values) for name, values in result.observables.items()
                     if name.endswith("risk")}, ylabel="risk")
    net = result.config.network
    ax.set_title(f"{result.status}: m = {net.m}, d = {net.d}, {net.scaling.replace('_', '-')} scaling", fontsize=10)
    save_figure(fig, Path(path))
    plt.close(fig)
    return path
