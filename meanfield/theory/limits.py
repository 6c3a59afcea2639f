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
    "population"): an estimate of the coarser level's error, so conservative for ``level``
    (``estimate=False`` skips the coarser run: ``error`` is then None)."""
    refuse(cfg, LIMIT, " (the infinite-width limit is computed for noiseless full-batch mean-field flows of "
                       "two-layer networks)")
    probes = np.zeros((0, cfg.network.d + 1)) if probes is None else np.asarray(probes, dtype=np.float64)
    if probes.ndim != 2 or probes.shape[1] != cfg.network.d + 1:
        raise ConfigError.invalid("probes", f"an array of shape {probes.shape}",
                                  f"shape (P, network.d + 1 = {cfg.network.d + 1})")
    if estimate and not cfg.record.snapshots:
        raise ConfigError.invalid("record.snapshots", False, "true for mean_field_limit's error estimate "
                                  "(or estimate=False)")
    coarse_level = max(1, round(COARSER * level))
    fine = _weighted_run(cfg, level, probes, data)
    error = None
    if estimate:                                    # the probes (weight 0) change no predictor: not rerun
        coarse = _weighted_run(cfg, coarse_level, probes[:0], data)
        error = max(_predictor_gap(cfg, fine, coarse, k) for k in range(len(fine.t)))
    fine.stats["limit"] = {"level": level, "coarse_level": coarse_level if estimate else None,
                           "nodes": len(fine.weights) - len(probes), "probes": len(probes), "error": error}
    return fine


def _weighted_run(cfg, level, probes, data):
    nodes, omega = quadrature.initial_rule(cfg.network, cfg.init, level)
    theta0 = np.vstack([nodes, probes])
    weights = np.concatenate([omega, np.zeros(len(probes))])
    run_cfg = cfg.updated({"network.m": len(theta0), "init.symmetric": False})
    return simulate(run_cfg, data=data, theta0=theta0, weights=weights)


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
