"""Propagation of chaos in time: the m-particle Euler scheme's error to the mean-field limit is
Euler's part, first order in dt, over a finite-m floor that is lower for wider networks (at most
max(C dt, C' m^-1/2) up to constants), and the floor's level is predicted, not fitted, by the
finite-width band of the limit; under lazy scaling the measure barely leaves its initial condition.
(The rates in m, to the computed limit, with many seeds: ``mean_field_limit``.)

Source: Mei, Montanari & Nguyen (2018), A mean field view of the landscape of two-layer neural
networks (the risk of SGD within sqrt(max(dt, 1/m)) of the limit's); Sirignano & Spiliopoulos
(2020), Mean field analysis of neural networks (the central limit theorem behind the band).

Setting: tanh, mean-field scaling, d = 2, n = 200 Gaussian inputs labelled by a teacher of 3 ReLU
neurons, T = 6.4; one data set (seed 0), the seeds drawing the initial particles. The limit is
computed (``limits.mean_field_limit``): a quadrature of the initial law run as weighted particles
with dt = 0.0125, its error estimated from two refinement levels. The error at t = T is the RMS
distance between the m-particle predictor and the limit's on 100 test inputs; Euler's part is the
distance between the runs at dt and at dt = 0.0125 from the same particles; the floor is the
latter's distance to the limit. What theory predicts: Euler's part first order in dt (rivals: 0,
no convergence in dt, and 2, a second-order scheme; the window holds the exponents nearer 1); a
floor that falls with m; and its level: for i.i.d. particles Var f_m(x, T) = C(x, T) / m + o(1/m)
(``meanfield.theory.fluctuations``, from the limit itself), so m floor^2 -> mean_x C(x, T). The
claim: the 95 % interval over seeds of m floor^2 / mean_x C(x, T) (both widths) lies in [0.71,
1.41], nearer 1 than a factor 2 either way, and far from C(x, 0) / C(x, T) (the initial spread
carried along); full mode only (a seed's floor^2 varies by a factor 10: 3 seeds cannot
decide; quick mode's widths are 16 and 32, whose floors lie above its coarser limit's error).
Lazy: W2(mu_T, mu_0) is at most the displacement sqrt(mean_i |theta_i(T) - theta_i(0)|^2) (the
identity coupling), which falls like m^-1/2 in the lazy regime (``scalings_table``): a claim that
holds by construction, drawn beside that displacement.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.analysis.distances import w2
from meanfield.analysis.fits import seed_slopes
from meanfield.model import twolayer
from meanfield.theory.fluctuations import fluctuations
from meanfield.theory.limits import mean_field_limit
from meanfield.tools.figures import scenario_main

SETTING = ("d = 2, tanh, n = 200, dt = 0.05-0.8 at m = 64 and 512, against the computed limit (level 24), "
           "48 seeds of the initial particles on one data set; the band at level 6 (full mode)")
QUICK = {"level": 16, "dts": [0.8, 0.4, 0.2, 0.1, 0.05], "dt_widths": [16, 32], "seeds": 3, "band_level": 4,
         "lazy_widths": [16, 32, 64, 128, 256]}
FULL = {"level": 24, "dts": [0.8, 0.4, 0.2, 0.1, 0.05], "dt_widths": [64, 512], "seeds": 48, "band_level": 6,
        "lazy_widths": [16, 32, 64, 128, 256, 512]}
T, FINE = 6.4, 0.0125      # T is a multiple of every dt
FIRST_ORDER = [0.5, 1.5]   # the exponents nearer 1 than the rivals 0 and 2
BAND = [0.71, 1.41]        # m floor^2 / mean C: nearer 1 than its rivals 1/2 and 2 (geometrically)


def config(m, scaling="mean_field", dt=0.05, seed=0):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 2, "activation": "tanh", "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "gaussian"},
        data={"kind": "teacher", "n": 200, "n_test": 100, "inputs": "gaussian", "teacher_m0": 3},
        flow={"dt": dt, "t_end": T},
        record={"n_records": 2, "spacing": "linear", "snapshots": False})


def final_predictions(m, dt, data, seed):
    """f(x) on the test inputs at t = T of the m-particle mean-field run with step dt."""
    cfg = config(m, dt=dt, seed=seed)
    return twolayer.predict(mf.simulate(cfg, data=(data.X, data.y)).theta, data.X_test, cfg.network)


def limit_predictions(data, level):
    """f(x) on the test inputs at t = T of the computed limit (dt = FINE), and its error estimate."""
    limit = mean_field_limit(config(1, dt=FINE).updated({"record.snapshots": True}), level, data=(data.X, data.y))
    return (twolayer.predict(limit.theta, data.X_test, limit.config.network, weights=limit.weights),
            limit.stats["limit"]["error"])


def run(quick, out):
    size = QUICK if quick else FULL
    dts, seeds = np.array(size["dts"]), range(size["seeds"])
    # against dt, at t = T: total error to the limit and Euler's part alone, each (seeds, dts);
    # floor (seeds,): the run at dt = FINE against the limit
    total = {m: np.zeros((size["seeds"], len(dts))) for m in size["dt_widths"]}
    euler = {m: np.zeros((size["seeds"], len(dts))) for m in size["dt_widths"]}
    floor = {m: np.zeros(size["seeds"]) for m in size["dt_widths"]}
    data = mf.run_data(config(1))
    limit, error = limit_predictions(data, size["level"])
    limit_error = [error]
    band = fluctuations(config(1, dt=FINE), size["band_level"], x=data.X_test, times=[0.0, T],
                        data=(data.X, data.y))
    spread, spread0 = float(np.mean(band.predictor[1])), float(np.mean(band.predictor[0]))
    for seed in seeds:
        for m in size["dt_widths"]:
            fine = final_predictions(int(m), FINE, data, seed)
            runs = [final_predictions(int(m), float(dt), data, seed) for dt in dts]
            total[m][seed] = [np.sqrt(np.mean((f - limit) ** 2)) for f in runs]
            euler[m][seed] = [np.sqrt(np.mean((f - fine) ** 2)) for f in runs]
            floor[m][seed] = np.sqrt(np.mean((fine - limit) ** 2))
    # lazy: how far the measure moves from its initial condition, and the displacement bounding it
    lazy_widths = np.array(size["lazy_widths"])
    lazy_runs = [mf.simulate(config(int(m), "lazy")) for m in lazy_widths]
    lazy_w2 = np.array([w2(r.theta, r.theta0, method="exact").value for r in lazy_runs])
    displacement = np.array([np.sqrt(np.mean(np.sum((r.theta - r.theta0) ** 2, axis=1))) for r in lazy_runs])

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    shades = dict(zip(size["dt_widths"], plt.cm.viridis(np.linspace(0.15, 0.85, len(size["dt_widths"])))))
    for m, shade in shades.items():
        axes[0].loglog(dts, np.median(total[m], axis=0), "o-", lw=1.8, color=shade, label=f"m = {m}: to the limit")
        axes[0].fill_between(dts, total[m].min(axis=0), total[m].max(axis=0), color=shade, alpha=0.2, lw=0)
        axes[0].axhline(np.median(floor[m]), color=shade, ls=":", lw=1)
        axes[0].axhline(np.sqrt(spread / m), color=shade, ls="-.", lw=1.2,
                        label=rf"m = {m}: the band's floor $\sqrt{{\overline{{C(x, T)}} / m}}$ (nothing fitted)")
    big = size["dt_widths"][-1]
    euler_fit = seed_slopes(dts, euler[big].T)
    axes[0].loglog(dts, np.median(euler[big], axis=0), "k--", lw=1.2,
                   label=f"Euler part (m = {big}): slope {euler_fit['slope']:+.2f} [{euler_fit['ci_low']:+.2f}, "
                         f"{euler_fit['ci_high']:+.2f}]")
    plotting.label_ticks(axes[0], dts)
    axes[0].set_xlabel("time step dt (flow units)")
    axes[0].set_ylabel(f"distance to the limit at t = {T:g} (dotted: floor, dt → 0, median)")
    axes[0].set_title(f"error to the limit against dt (median, range over {size['seeds']} seeds)")
    axes[0].legend(fontsize=8)
    series = {r"lazy: $W_2(\mu_T, \mu_0)$": lazy_w2, r"lazy: displacement $\sqrt{\mathrm{mean}_i|\theta_i(T) - "
              r"\theta_i(0)|^2}$": displacement}
    plotting.scaling(axes[1], lazy_widths, series, "width $m$", "distance at t = T (seed 0)",
                     colors=dict(zip(series, ("tab:orange", "tab:gray"))))
    plotting.label_ticks(axes[1], lazy_widths)
    axes[1].set_title(r"lazy: the measure stays at its initial condition ($W_2 \leq$ displacement)")
    fig.suptitle("Propagation of chaos in time: the error to the mean-field limit is Euler's part, first order in dt, "
                 "over a finite-m floor that falls with m,\nat the level the finite-width band predicts; lazy "
                 "particles barely move "
                 "(here W2 equals the displacement: the identity coupling is optimal)")
    fig.tight_layout()
    numbers = {"dts": dts, "dt_widths": size["dt_widths"], "limit_level": size["level"],
               "limit_error": max(limit_error), "seeds": size["seeds"], "euler_fit": euler_fit,
               "dt_total_error": {str(m): e for m, e in total.items()},
               "finite_m_floor": {str(m): e for m, e in floor.items()},
               "dt_euler_error": {str(m): e for m, e in euler.items()}, "lazy_widths": lazy_widths,
               "lazy_w2": lazy_w2, "lazy_displacement": displacement,
               "band": {"level": size["band_level"], "mean_C_T": spread, "mean_C_0": spread0,
                        "error_C_T": float(np.mean(band.error["predictor"][1]))}}
    floors = np.array([floor[m] for m in size["dt_widths"]])                  # (widths, seeds)
    ratio = np.array(size["dt_widths"])[:, None] * floors ** 2 / spread    # m floor^2 / mean_x C(x, T)
    numbers["band"]["ratio"] = ratio
    claims = [
        rate(f"Euler's part of the error is first order in dt (m = {big}), not dt-free nor second order",
             "slope of Euler error vs dt (95 % interval over seeds)", euler_fit, theory=1.0, window=FIRST_ORDER,
             rival=[0.0, 2.0]),
        claim("the finite-m floor falls with the width (the median over seeds, each width below the next narrower)",
              "median over seeds of the floor ratio wider / narrower", np.median(floors[1:] / floors[:-1], axis=1),
              "<", 1.0),
        claim("the computed limit is far more accurate than the widest floor it is compared with",
              "limit error estimate / median floor at the largest m", max(limit_error) / np.median(floor[big]),
              "<", 0.2, kind="check"),
        claim("lazy: the measure moves from its initial condition no more than the particles do (W2 <= displacement)",
              "W2(mu_T, mu_0) / displacement, each width", lazy_w2 / displacement, "<=", 1.0 + 1e-12,
              kind="construction", because="the identity coupling gives W2(mu_T, mu_0) <= the displacement, which "
              "falls like m^-1/2 in the lazy regime (scalings_table)"),
    ]
    if not quick:                    # 3 seeds cannot decide the band (a seed's floor^2 varies by a factor 10)
        claims.insert(2, claim(
            "the finite-width band predicts the floor with no fitted constant: m floor^2 is the limit's C(x, T) "
            "averaged over the test inputs, not a factor 2 off, nor the initial spread C(x, 0) carried along",
            "m floor^2 / mean_x C(x, T), both widths: 95 % interval over seeds (bootstrap)", _bootstrap(ratio),
            "in", BAND, rival=[0.5, 2.0, spread0 / spread], measured=float(np.mean(ratio))))
    return fig, {"setting": SETTING, "seed": list(seeds), "config": config(big), "numbers": numbers,
                 "claims": claims}


def _bootstrap(ratio, draws: int = 4000) -> list:
    """95 % interval of the mean of ratio (widths, seeds) over seeds resampled together (seed 0)."""
    rng = np.random.default_rng(0)
    means = [ratio[:, rng.integers(0, ratio.shape[1], ratio.shape[1])].mean() for _ in range(draws)]
    return np.percentile(means, [2.5, 97.5]).tolist()


if __name__ == "__main__":
    scenario_main(__file__, run)
