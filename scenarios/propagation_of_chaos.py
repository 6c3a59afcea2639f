"""Propagation of chaos: in the mean-field regime the m-particle system converges to its
infinite-width limit, each particle and the predictor at rate m^-1/2, the measure in W2 at the
rate its dimension allows; under lazy scaling the measure barely leaves its initial condition.

Source: Mei, Montanari & Nguyen (2018), A mean field view of the landscape of two-layer neural
networks; Sirignano & Spiliopoulos (2020), Mean field analysis of neural networks.

The limit is computed (``limits.mean_field_limit``): a quadrature of the initial law run as
weighted particles, its error estimated from two refinement levels, with each m-particle run's
initial particles as zero-weight probes that follow the limit flow map, so the coupled distance
measures the dynamics' error, not the initial sampling error. W2 between the m-particle measure
and the weighted limit measure (exact, POT) also carries the sampling error of an m-sample in
dimension d + 1 = 3, whose rate is m^-1/4 (Fournier & Guillin). Against dt the error is
max(C dt, C' m^-1/2): Euler's first-order error until it meets the finite-m floor (Mei et al.
bound the risk by sqrt(max(dt, 1/m)) for SGD).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.analysis.distances import w2
from meanfield.analysis.fits import seed_slopes
from meanfield.model import twolayer
from meanfield.theory.limits import compare, mean_field_limit
from meanfield.tools.figures import scenario_main

SETTING = "d = 2, n = 200, m = 16-512 against the computed limit (level 24: 27648 weighted nodes), 4 seeds (full mode)"
QUICK = {"widths": [16, 64, 256], "level": 12, "seeds": 2, "dts": [0.8, 0.4, 0.2, 0.1], "dt_widths": [64, 512]}
FULL = {"widths": [16, 32, 64, 128, 256, 512], "level": 24, "seeds": 4, "dts": [0.8, 0.4, 0.2, 0.1, 0.05],
        "dt_widths": [64, 512, 4096]}
T, DT, FINE = 6.4, 0.05, 0.0125      # T is a multiple of every dt


def config(m, scaling="mean_field", dt=DT, seed=0):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 2, "activation": "relu", "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "gaussian"},
        data={"kind": "teacher", "n": 200, "n_test": 500, "inputs": "gaussian", "teacher_m0": 3},
        flow={"dt": dt, "t_end": T},
        record={"n_records": 6, "spacing": "linear"})


DT_SEEDS = (0, 1)          # seeds of the dt panel


def final_predictions(m, dt, X, seed=0):
    """f(x) on X at t = T of the m-particle mean-field run with step dt."""
    cfg = config(m, dt=dt, seed=seed).updated({"record.n_records": 2, "record.snapshots": False})
    return twolayer.predict(mf.simulate(cfg).theta, X, cfg.network)


def limit_predictions(dt, X, level, seed=0):
    """f(x) on X at t = T of the computed limit with step dt, and its error estimate."""
    limit = mean_field_limit(config(1, dt=dt, seed=seed).updated({"record.n_records": 2}), level)
    return twolayer.predict(limit.theta, X, limit.config.network, weights=limit.weights), limit.stats["limit"]["error"]


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    at_T = np.zeros((3, len(widths), size["seeds"]))          # coupled, predictor, W2 at t = T
    limit_error = []
    for seed in range(size["seeds"]):
        X_test = mf.run_data(config(1, seed=seed)).X_test
        for k, m in enumerate(widths):
            particles = mf.simulate(config(int(m), seed=seed))
            limit = mean_field_limit(config(int(m), seed=seed), size["level"], probes=particles.theta0,
                                     estimate=k == 0)               # the probes do not change the limit's error
            if k == 0:
                limit_error.append(limit.stats["limit"]["error"])
            found = compare(particles, limit, X_test, method="exact", w2_at="last")
            at_T[:, k, seed] = found["coupled_distance"][-1], found["predictor_distance"][-1], found["w2"][-1]
    coupled, predictor, w2_final = np.median(at_T, axis=2)
    # against dt, at t = T: total error to the limit (computed, dt = FINE) and Euler's part alone;
    # each (seeds, len(dts) + 1), the last column the finite-m floor (dt = FINE against the limit)
    dts = np.array(size["dts"])
    total = {m: np.zeros((len(DT_SEEDS), len(dts) + 1)) for m in size["dt_widths"]}
    euler = {m: np.zeros((len(DT_SEEDS), len(dts))) for m in size["dt_widths"]}
    for k, seed in enumerate(DT_SEEDS):
        X_test = mf.run_data(config(1, seed=seed)).X_test
        limit, fine_error = limit_predictions(FINE, X_test, size["level"], seed)
        limit_error.append(fine_error)
        for m in size["dt_widths"]:
            fine = final_predictions(int(m), FINE, X_test, seed)
            runs = [final_predictions(int(m), float(dt), X_test, seed) for dt in dts]
            total[m][k] = [np.sqrt(np.mean((f - limit) ** 2)) for f in runs + [fine]]
            euler[m][k] = [np.sqrt(np.mean((f - fine) ** 2)) for f in runs]
    # lazy: how far the measure moves from its initial condition
    lazy_runs = [mf.simulate(config(int(m), "lazy")) for m in widths]
    lazy_w2 = np.array([w2(r.theta, r.theta0, method="exact").value for r in lazy_runs])

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    names = ("coupled particle distance", "predictor distance", "W2 (exact) at t = T")
    fits = plotting.seed_scaling(axes[0], widths, dict(zip(names, at_T)), "width $m$",
                                 f"distance to the limit at t = {T:g}",
                                 colors=dict(zip(names, ("tab:blue", "tab:green", "tab:red"))))
    axes[0].plot(widths, np.median(at_T[0, 0]) * (widths / widths[0]) ** -0.5, "k--", lw=1,
                 label=r"$m^{-1/2}$ (theory)")
    axes[0].plot(widths, np.median(at_T[2, 0]) * (widths / widths[0]) ** -0.25, "k:", lw=1,
                 label=r"$m^{-1/4}$ (sampling rate in dimension 3)")
    axes[0].legend(fontsize=7)
    axes[0].axhline(max(limit_error), color="tab:purple", ls=":", lw=1, label="the computed limit's error estimate")
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"mean-field: convergence to the computed limit ({size['seeds']} seeds, 95% CI)")
    shades = plt.cm.viridis(np.linspace(0.15, 0.85, len(size["dt_widths"])))
    for shade, m in zip(shades, size["dt_widths"]):
        axes[1].loglog(dts, np.median(total[m][:, :-1], axis=0), "o-", lw=1.8, color=shade,
                       label=f"m = {m}: to the limit")
        axes[1].fill_between(dts, total[m][:, :-1].min(axis=0), total[m][:, :-1].max(axis=0), color=shade,
                             alpha=0.2, lw=0)
        axes[1].axhline(np.median(total[m][:, -1]), color=shade, ls=":", lw=1)
    big = size["dt_widths"][-1]
    euler_fit = seed_slopes(dts, euler[big].T)
    axes[1].loglog(dts, np.median(euler[big], axis=0), "k--", lw=1.2,
                   label=f"Euler part (m = {big}): slope {euler_fit['slope']:+.2f} [{euler_fit['ci_low']:+.2f}, "
                         f"{euler_fit['ci_high']:+.2f}]")
    plotting.quiet_minor_ticks(axes[1])
    axes[1].set_xlabel("time step dt")
    axes[1].set_ylabel(f"predictor distance at t = {T:g}  (dotted: dt → 0)")
    axes[1].set_title(r"error $\approx \max(C\,dt,\ C' m^{-1/2})$" + f" (median, range over {len(DT_SEEDS)} seeds)")
    axes[1].legend(fontsize=8)
    label = r"lazy: $W_2(\mu_T, \mu_0)$"
    lazy_fit = plotting.scaling(axes[2], widths, {label: lazy_w2}, "width $m$", r"$W_2(\mu_T, \mu_0)$ (exact)",
                                expected={label: -0.5})
    axes[2].set_title("lazy: the measure stays at its initial condition")
    fig.suptitle("Propagation of chaos: the particle system approaches its mean-field limit as m grows "
                 r"(particles and predictor like $m^{-1/2}$, the measure in $W_2$ like $m^{-1/4}$)")
    fig.tight_layout()
    numbers = {"widths": widths, "limit_level": size["level"], "limit_error": max(limit_error),
               "seeds": size["seeds"], "coupled_distance": coupled,
               "predictor_distance": predictor,
               "w2_final": w2_final, "w2_method": "exact",
               "fits": {**fits,
                        "lazy W2(mu_T, mu_0)": next(iter(lazy_fit.values())).to_dict(),
                        "euler dt": euler_fit},
               "dts": dts, "dt_seeds": DT_SEEDS, "dt_total_error": {str(m): e[:, :-1] for m, e in total.items()},
               "finite_m_floor": {str(m): e[:, -1] for m, e in total.items()},
               "dt_euler_error": {str(m): e for m, e in euler.items()}, "lazy_w2": lazy_w2}
    lazy_slope = numbers["fits"]["lazy W2(mu_T, mu_0)"]["slope"]
    claims = [
        rate("each coupled particle approaches its limit like m^-1/2", "slope of coupled distance vs m",
             fits[names[0]], [-0.7, -0.3]),
        rate("the predictor approaches the limit predictor like m^-1/2", "slope of predictor distance vs m",
             fits[names[1]], [-0.7, -0.3]),
        rate("the measure approaches it in W2 about like m^-1/4, the sampling rate in dimension 3",
             "slope of W2 at T vs m", fits[names[2]], [-0.45, -0.15]),
        rate("Euler's part of the error is first order in dt", "slope of Euler error vs dt", euler_fit, [0.7, 1.3]),
        claim("the error to the limit never falls below the finite-m floor by more than the computed limit's "
              "own error estimate", "min over dt of (error - floor) / limit error estimate, each seed and m",
              [(row[:-1].min() - row[-1]) / max(limit_error) for e in total.values() for row in e], ">", -1.0),
        claim("the computed limit is far more accurate than the widest particle system it is compared with",
              "limit error estimate / median predictor distance at the largest m", max(limit_error) / predictor[-1],
              "<", 0.2),
        claim("lazy: the measure moves from its initial condition only O(m^-1/2) in W2",
              "slope of lazy W2(mu_T, mu_0) vs m", lazy_slope, "in", [-0.65, -0.35]),
    ]
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(int(widths[0])),
                 "numbers": numbers,
                 "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
