"""The finite-m particle system against its infinite-width limit.

The mean-field limit is approximated by a wide reference run (M >> m particles) that shares its
first m initial particles with the m-particle run (same seed: ``init.py`` draws particle i from
row i of one block, whatever m), so the distance measured is the dynamics' error, not the
sampling error of the initial condition. Noise is not coupled: compare noiseless flows.
"""
from __future__ import annotations

import numpy as np

from . import distances, model
from .config import Config
from .measures import lifted
from .results import Result
from .controller import simulate


def reference_run(cfg: Config, M: int, data=None) -> Result:
    """The same run with M particles, coupled to ``cfg``'s run through its first m particles."""
    if M < cfg.network.m:
        raise ValueError(f"M = {M} is invalid: allowed is a width >= network.m = {cfg.network.m}")
    return simulate(cfg.updated({"network.m": M}), data=data)


def compare(result: Result, reference: Result, X: np.ndarray, method: str = "auto", w2_at: str = "all",
            **w2_options) -> dict:
    """Distances between a run and a reference run at each common record time.

    Returns arrays over the record times: ``w2`` (between the lifted measures, method reported
    under ``method``; computed at every time, the last one only, or none: ``w2_at`` = "all" |
    "last" | "none", NaN elsewhere), ``coupled_distance`` sqrt(mean_{i <= m} |theta_i(t) - theta_i^ref(t)|^2) and
    ``predictor_distance`` sqrt(mean_j (f(x_j) - f_ref(x_j))^2) on the inputs X (n, d).
    """
    if result.snapshots is None or reference.snapshots is None:
        raise ValueError("compare needs both runs recorded with record.snapshots = true")
    if not np.allclose(result.t, reference.t[: len(result.t)], rtol=0, atol=1e-12):
        raise ValueError("the two runs must share their record times (same flow.dt, t_end and record)")
    m = result.theta.shape[0]
    out = {"t": result.t, "w2": [], "coupled_distance": [], "predictor_distance": []}
    used = None
    last = len(result.snapshots) - 1
    for k, (theta, theta_ref) in enumerate(zip(result.snapshots, reference.snapshots)):
        if w2_at == "all" or (w2_at == "last" and k == last):
            found = distances.w2(lifted(theta).points, lifted(theta_ref).points, method=method, **w2_options)
            used = found.method
            out["w2"].append(found.value)
        else:
            out["w2"].append(float("nan"))
        out["coupled_distance"].append(float(np.sqrt(np.mean(np.sum((theta - theta_ref[:m]) ** 2, axis=1)))))
        gap = (model.predict(theta, X, result.config.network)
               - model.predict(theta_ref, X, reference.config.network))
        out["predictor_distance"].append(float(np.sqrt(np.mean(gap ** 2))))
    return {**{k: np.asarray(v) for k, v in out.items()}, "method": used}
