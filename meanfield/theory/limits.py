"""The finite-m particle system against its infinite-width limit.

Without noise the limit measure is a push-forward, mu_t = (Phi_t)# mu_0: every particle follows
the same ODE, driven by the limit predictor. ``mean_field_limit`` computes it: a quadrature of
mu_0 (``quadrature.initial_rule``) run as weighted particles by the same engine follows the limit
dynamics up to the quadrature error of the integrals the dynamics needs, and zero-weight
``probes`` follow the limit flow map Phi_t from given initial points (the coupling of an
m-particle run to the limit). With noise, minibatches or online SGD the limit is not a
push-forward: ``reference`` then falls back to a wide run (M >> m particles sharing the m-particle
run's first m initial particles, ``reference_run``) and says so. For the population risk in high
dimension, ``reduced.reduced_limit`` computes the limit in the teacher's span instead.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..analysis import distances
from ..config import Config
from ..engine.controller import simulate
from ..errors import ConfigError
from ..model import quadrature, twolayer
from ..model.activations import ACTIVATIONS
from ..rules import LIMIT, broken, refuse
from ..store.results import Result

COARSER = 2 / 3          # the error estimate's second level: round(COARSER * level)


def limit_applies(cfg: Config) -> tuple:
    """() when ``mean_field_limit`` computes cfg's limit, else (parameter, value, what is allowed)
    (``rules.LIMIT``)."""
    rule = broken(cfg, LIMIT)
    return () if rule is None else (rule.field, rule.value(cfg), rule.allowed)


def mean_field_limit(cfg: Config, level: int = 16, probes=None, data=None, estimate: bool = True) -> Result:
    """The infinite-width limit of cfg's noiseless mean-field flow, as a weighted-measure
    trajectory: a ``Result`` whose particles are the quadrature nodes of init's law at ``level``
    (weights ``result.weights``), then the ``probes`` (P, d + 1) with weight 0, following the
    limit flow map. ``result.stats["limit"]``: the level, the node count, and ``error``, the
    largest RMS gap between the limit predictors at ``level`` and at round(COARSER level) on the
    training inputs over the record times (the population predictor's L2 gap for data.kind =
    "population"): an estimate from two levels of the coarser level's error, not a bound;
    ``resolved`` is false when that gap reaches a tenth of the predictor itself (the levels
    disagree: raise the level). A kinked activation (ReLU) on finite data makes the limit non-smooth
    (particles cross the planes w . x_j = 0) and the quadrature converge algebraically: a third,
    coarser level then measures the rate (``rate``, the gap's exponent in the node count) and a
    warning says that the estimate can understate the error. ``estimate=False`` skips the coarser
    runs: ``error`` is then None."""
    refuse(cfg, LIMIT, " (the infinite-width limit is computed for noiseless full-batch mean-field flows of "
                       "two-layer networks)")
    probes = np.zeros((0, cfg.network.d + 1)) if probes is None else np.asarray(probes, dtype=np.float64)
    if probes.ndim != 2 or probes.shape[1] != cfg.network.d + 1:
        raise ConfigError.invalid("probes", f"an array of shape {probes.shape}",
                                  f"shape (P, network.d + 1 = {cfg.network.d + 1})")
    if estimate and not cfg.record.snapshots:
        raise ConfigError.invalid("record.snapshots", False, "true for mean_field_limit's error estimate "
                                  "(or estimate=False)")
    planned = plan(cfg, level, estimate)
    if max(planned["nodes"]) > quadrature.MAX_NODES:
        route = (": the symmetry-reduced solver computes this rotation-invariant problem in the teacher's span "
                 "(`meanfield limit CONFIG --reduced`, or meanfield.theory.reduced.reduced_limit)" if planned["reduced"]
                 else "; lower the level")
        raise ConfigError.invalid("level", level, f"a level whose rule has at most {quadrature.MAX_NODES:,} nodes "
                                  f"in d = {cfg.network.d} (level {level} has {planned['nodes'][0]:,})" + route)
    if planned["seconds"] > LONG_SECONDS:
        warnings.warn(f"meanfield: {describe_plan(cfg, planned)}", stacklevel=2)
    fine = _weighted_run(cfg, level, probes, data)
    levels, smooth = planned["levels"], smooth_limit(cfg)
    coarse_level = levels[1] if estimate else None
    stats = {"level": level, "coarse_level": coarse_level,
             "nodes": len(fine.weights) - len(probes), "probes": len(probes), "error": None, "smooth": smooth}
    if estimate and coarse_level == level:
        stats["resolved"] = False                    # no coarser level to compare with
    elif estimate:                                  # the probes (weight 0) change no predictor: not rerun
        coarse = _weighted_run(cfg, coarse_level, probes[:0], data)
        stats["error"] = _largest_gap(cfg, fine, coarse)
        scale = max(_predictor_size(cfg, fine, k) for k in range(len(fine.t)))
        stats["resolved"] = bool(stats["error"] < 0.1 * scale)
        if not smooth:
            coarser = _weighted_run(cfg, levels[2], probes[:0], data)
            stats["rate"] = _gap_rate(cfg, coarse, coarser, stats["error"])
            warnings.warn(f"meanfield: the limit of {cfg.network.activation} on finite data is not smooth (particles "
                          "cross the planes w . x_j = 0): the quadrature converges algebraically, the gap between "
                          f"levels falling like K^{stats['rate']:.2f} in the node count K here, and the error "
                          f"estimate {stats['error']:.2g} (levels {level} and {coarse_level}) can understate the "
                          "error; compare a higher level to check", stacklevel=2)
    fine.stats["limit"] = stats
    return fine


POPULATION_PAIR_SECONDS = 6.5e-9      # a population step's cost per particle pair (measured, reference machine)
LONG_SECONDS = 600.0                  # a limit planned longer than this warns before it starts


def smooth_limit(cfg: Config) -> bool:
    """Whether the limit's flow map is smooth (its quadrature converges fast in the level): the
    exact population risk, or an activation without kinks; not ReLU on finite data."""
    return cfg.data.kind == "population" or not ACTIVATIONS[cfg.network.activation].kinked


def plan(cfg: Config, level: int, estimate: bool = True) -> dict:
    """The cost of ``mean_field_limit(cfg, level)`` before any work: the nodes of its rule at
    ``level`` (and at the coarser levels of the error estimate), the steps, and the estimated CPU
    seconds (a step of K weighted nodes on n samples as ``diagnostics.step_seconds``; on the
    population, K (K + m0) pairs at POPULATION_PAIR_SECONDS), and the route for a problem the
    symmetry-reduced solver can take instead (``reduced``: True when it applies)."""
    from ..model.diagnostics import step_seconds
    from . import reduced

    levels = [level] + ([max(1, round(COARSER * level))] if estimate else [])
    if estimate and not smooth_limit(cfg):           # a third level measures the algebraic rate
        levels.append(max(1, round(COARSER * levels[-1])))
    nodes = [quadrature.rule_size(cfg.network, cfg.init, at) for at in levels]
    steps, d = cfg.flow.n_steps, cfg.network.d
    if cfg.data.kind == "population":
        per_step = [K * (K + cfg.data.teacher_m0) * POPULATION_PAIR_SECONDS for K in nodes]
    else:
        samples = cfg.data.n
        per_step = [step_seconds(K, samples, d, ACTIVATIONS[cfg.network.activation].transcendental) for K in nodes]
    return {"levels": levels, "nodes": nodes, "steps": steps, "seconds": steps * sum(per_step),
            "reduced": not reduced.applies(cfg)}


def describe_plan(cfg: Config, found: dict) -> str:
    """One line: what the limit will compute and how long it should take; the route to the reduced
    solver when it applies and the plan is long."""
    hours = found["seconds"] / 3600
    cost = f"about {hours:.3g} CPU-hours" if hours >= 1 else f"about {found['seconds'] / 60:.1f} CPU-minutes"
    nodes = ", ".join(f"{K:,} nodes at level {L}" for K, L in zip(found["nodes"], found["levels"]))
    line = f"the limit in d = {cfg.network.d}: {nodes}, {found['steps']} steps each: {cost} (estimated)"
    if found["reduced"] and found["seconds"] > LONG_SECONDS:
        line += ("; this problem is rotation invariant: the symmetry-reduced solver computes it in the teacher's "
                 "span (`meanfield limit CONFIG --reduced`, or meanfield.theory.reduced.reduced_limit)")
    return line


def describe_error(limit: dict) -> str:
    """What ``stats["limit"]`` says of the limit's error, for people: the estimate, what it is, or
    that the levels do not resolve it."""
    if limit.get("error") is None:
        return ("no error estimate: no coarser level to compare with; raise the level" if limit.get("resolved") is False
                else "no error estimate")
    levels = f"levels {limit['level']} and {limit['coarse_level']}"
    if not limit.get("resolved", True):
        return (f"error not resolved: the predictors at {levels} differ by {limit['error']:.2g}, a tenth of the "
                "predictor or more; raise the level")
    rate = f"; not smooth, gaps fall like K^{limit['rate']:.2f}" if "rate" in limit else ""
    return f"predictor error estimate {limit['error']:.2g} ({levels}: an estimate, not a bound{rate})"


def _weighted_run(cfg, level, probes, data):
    nodes, omega = quadrature.initial_rule(cfg.network, cfg.init, level)
    theta0 = np.vstack([nodes, probes])
    weights = np.concatenate([omega, np.zeros(len(probes))])
    run_cfg = cfg.updated({"network.m": len(theta0), "init.symmetric": False})
    return simulate(run_cfg, data=data, theta0=theta0, weights=weights)


def _largest_gap(cfg, a: Result, b: Result) -> float:
    return max(_predictor_gap(cfg, a, b, k) for k in range(len(a.t)))


def _gap_rate(cfg, coarse: Result, coarser: Result, gap: float) -> float:
    """The exponent in the node count K of the gap between successive levels (``gap``: the finer
    level against ``coarse``), each gap estimating the coarser level's error:
    log(gap / gap') / log(K_coarse / K_coarser)."""
    if len(coarse.weights) == len(coarser.weights):
        return float("nan")
    return float(np.log(gap / _largest_gap(cfg, coarse, coarser)) / np.log(len(coarse.weights) / len(coarser.weights)))


def _predictor_size(cfg, run: Result, k: int) -> float:
    """RMS of a weighted run's predictor at record k (training inputs, or L2 on the population)."""
    if cfg.data.kind == "population":
        from ..model import population
        return population.predictor_norm(run.snapshots[k], run.config.network, weights=run.weights,
                                         inputs=cfg.data.inputs)
    f = twolayer.predict(run.snapshots[k], run.data.X, run.config.network, weights=run.weights)
    return float(np.sqrt(np.mean(f ** 2)))


def _predictor_gap(cfg, a: Result, b: Result, k: int) -> float:
    """RMS gap between two weighted runs' predictors at record k (training inputs, or exact L2 on
    the population)."""
    if cfg.data.kind == "population":
        from ..model import population
        both = np.vstack([a.snapshots[k], b.snapshots[k]])
        both[len(a.weights):, -1] *= -1.0                    # f_a - f_b as one weighted network
        weights = np.concatenate([a.weights, b.weights])
        return population.predictor_norm(both, a.config.network, weights=weights, inputs=cfg.data.inputs)
    X = a.data.X
    gap = (twolayer.predict(a.snapshots[k], X, a.config.network, weights=a.weights)
           - twolayer.predict(b.snapshots[k], X, b.config.network, weights=b.weights))
    return float(np.sqrt(np.mean(gap ** 2)))


def reference(cfg: Config, probes=None, level: int = 16, M: int | None = None, data=None) -> Result:
    """The limit to compare cfg's m-particle run with: ``mean_field_limit`` (probes: the run's
    initial particles) where it applies and its rule at ``level`` has at most
    ``quadrature.MAX_NODES`` nodes; else, with a warning saying why, a wide run of M particles
    (default 64 m) coupled through its first m particles."""
    refused = limit_applies(cfg)
    nodes = quadrature.rule_size(cfg.network, cfg.init, level)
    if not refused and nodes > quadrature.MAX_NODES:
        refused = ("network.d", cfg.network.d, f"a rule of at most {quadrature.MAX_NODES} nodes, which level {level} "
                   "exceeds here (in high dimension, see meanfield.theory.reduced)")
    if not refused:
        return mean_field_limit(cfg, level, probes, data)
    warnings.warn(f"meanfield: the limit is approximated by a wide run of M particles ({refused[0]} = "
                  f"{refused[1]!r}; the computed limit needs {refused[2]})", stacklevel=2)
    return reference_run(cfg, M or 64 * cfg.network.m, data)


def reference_run(cfg: Config, M: int, data=None) -> Result:
    """The same run with M particles, coupled to ``cfg``'s run through its first m particles."""
    if M < cfg.network.m:
        raise ValueError(f"M = {M} is invalid: allowed is a width >= network.m = {cfg.network.m}")
    return simulate(cfg.updated({"network.m": M}), data=data)


def reference_predictions(reference: Result, X: np.ndarray) -> np.ndarray:
    """The reference's predictor on X (n, d) at each record, (records, n): computed once, it serves
    every ``compare`` against the same reference (the limit's zero-weight probes are skipped)."""
    rows = slice(None) if reference.weights is None else \
        slice(0, len(reference.weights) - reference.stats.get("limit", {}).get("probes", 0))
    weights = None if reference.weights is None else reference.weights[rows]
    return np.array([twolayer.predict(theta[rows], X, reference.config.network, weights=weights)
                     for theta in reference.snapshots])


def compare(result: Result, reference: Result, X: np.ndarray, method: str = "auto", w2_at: str = "all",
            probes: tuple | None = None, predictions: np.ndarray | None = None, **w2_options) -> dict:
    """Distances between a run and its limit (``mean_field_limit``, its probes the run's initial
    particles; ``probes`` = (start, stop): they are these rows of the probes, so that one limit
    serves several runs) or a wide reference run, at each common record time.

    Returns arrays over the record times: ``w2`` (between the measures on R^(d + 1), the limit's
    weighted, method reported under ``method``; computed at every time, the last one only, or none:
    ``w2_at`` = "all" | "last" | "none", NaN elsewhere), ``coupled_distance``
    sqrt(mean_i |theta_i(t) - Phi_t(theta_i(0))|^2) (Phi_t: the limit's probes, or the wide run's
    first m particles) and ``predictor_distance`` sqrt(mean_j (f(x_j) - f_ref(x_j))^2) on the inputs X (n, d)
    (``predictions``: ``reference_predictions(reference, X)``, when several runs share one reference).
    """
    if result.snapshots is None or reference.snapshots is None:
        raise ValueError("compare needs both runs recorded with record.snapshots = true")
    if not np.allclose(result.t, reference.t[: len(result.t)], rtol=0, atol=1e-12):
        raise ValueError("the two runs must share their record times (same flow.dt, t_end and record)")
    m = result.theta.shape[0]
    weights = reference.weights
    if weights is None:
        coupled, support = slice(0, m), slice(None)
    else:
        total = reference.stats.get("limit", {}).get("probes", 0)
        start, stop = (0, total) if probes is None else probes
        if not (stop - start == m and 0 <= start <= stop <= total):
            raise ValueError(f"probes = ({start}, {stop}) of the limit's {total}: compare needs the run's {m} initial "
                             "particles among the probes")
        nodes = len(weights) - total
        coupled, support = slice(nodes + start, nodes + stop), slice(0, nodes)
    if predictions is None:
        predictions = reference_predictions(reference, X)
    out = {"t": result.t, "w2": [], "coupled_distance": [], "predictor_distance": []}
    used = None
    last = len(result.snapshots) - 1
    for k, (theta, theta_ref) in enumerate(zip(result.snapshots, reference.snapshots)):
        if w2_at == "all" or (w2_at == "last" and k == last):
            found = distances.w2(theta, theta_ref[support], b=None if weights is None else weights[support],
                                 method=method, **w2_options)
            used = found.method
            out["w2"].append(found.value)
        else:
            out["w2"].append(float("nan"))
        out["coupled_distance"].append(float(np.sqrt(np.mean(np.sum((theta - theta_ref[coupled]) ** 2, axis=1)))))
        gap = twolayer.predict(theta, X, result.config.network, weights=result.weights) - predictions[k]
        out["predictor_distance"].append(float(np.sqrt(np.mean(gap ** 2))))
    return {**{k: np.asarray(v) for k, v in out.items()}, "method": used}
