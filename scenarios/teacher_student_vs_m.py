"""Over-parameterisation makes the mean-field flow global in d = 100: with m = m0 neurons every run
stalls at a positive population risk, while from m = 2 m0 every run drives the risk below 1e-5 of
its initial value (where it is stopped), its mass gathered on the teacher's directions. The m =
infinity limit, computed by the symmetry-reduced solver (``meanfield.reduced``), is approached by
the finite widths' risk curves as m grows, and the predictor approaches it like m^-1/2. The
finite-width band of the risk, C_R(t) = lim m Var R_m(t), is computed from the limit itself
(``fluctuations`` on the reduced limit) and predicts the measured spread over seeds with no fitted
constant until the escape from the saddle at 0; after it the measured spread exceeds the band at
these widths (m Var R_m / C_R measured at t = 4.2: 1.8 at m = 640, 1.6 at m = 1280, 100 seeds
each): the o(1/m) terms, amplified by the escape, still dominate.

Source: Chizat & Bach (2018), On the global convergence of gradient descent for
over-parameterized models using optimal transport (population loss against m in high dimension).

Exact population risk (x ~ N(0, I_d), d = 100, teacher of m0 = 10 ReLU neurons with unit output
weights), mean-field scaling, both layers trained, small Gaussian initialisation (w ~ N(0, I/d),
a ~ N(0, 1), both times tau = 0.1), Euler steps dt = 0.2 up to T. How this differs from the paper:
the risk is the exact population risk rather than SGD on samples. Each run stops when its risk
reaches 1e-5 of its start (``record.stop_below``: the risk at convergence is then below it) or at
T; a run counts as stalled when it reaches T with its risk fallen by less than 1 % over the last
half of the horizon. The limit: particles reduced to (w_S, |w_perp|, a) by the rotations
fixing the teacher's span (12 variables whatever d), 2^limit_level scrambled Sobol nodes, its error
estimated from half as many scrambled independently (nested Sobol sets share their errors),
computed up to limit_until, as its error grows with time (with 1024 nodes, estimated: 1.5 % of
the risk at t = 12, 8 % at t = 44, 19 % at t = 100); the distance ||f_m - f_inf|| is measured with seed 0's teacher
for every seed (only the initialisation varies). The band: Sobol nodes at band_level, its error
estimated at one level less, relu's nearly parallel pairs (reduced nodes that have left the
teacher's orthogonal complement meet themselves) dropped from its second-order terms, which the
sidecar states (``dropped_parallel_share``), measured against early_seeds runs at m = band_width
up to the escape and band_seeds of them after, with seed 0's teacher, the intervals by bootstrap
over seeds (the risk's spread has heavy tails). Cone mass: signed mass of the 2-homogeneous projection within 10
degrees of a teacher direction (the teacher has mass m0).
"""
import time
import warnings

import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.model.measures import cone_masses
from meanfield.theory import reduced
from meanfield.theory.fluctuations import fluctuations
from meanfield.tools.figures import scenario_main, simulate_all

SETTING = ("d = 100, population risk, m0 = 10, m = 10-320 and the m = ∞ limit (1024 nodes, t <= 50), 4 seeds; the band "
           "of the risk at 512 nodes against 400 seeds at m = 640, 120 of them to t = 8.4 (full mode)")
D, M0 = 100, 10
# distance_widths: where ||f_m - f_inf|| is measured, at t ~ 12.6 only (cheap: five widths in either mode)
# band_*: the finite-width band of the risk (its level) against band_seeds runs at m = band_width
QUICK = {"widths": [10, 20, 40], "seeds": 2, "t_end": 1000.0, "limit_level": 9, "limit_until": 12.6,
         "distance_widths": [20, 40, 80, 160, 320], "band_level": 7, "band_width": 160, "band_seeds": 16,
         "early_seeds": 32}
FULL = {"widths": [10, 20, 40, 80, 160, 320], "seeds": 4, "t_end": 2000.0, "limit_level": 10, "limit_until": 50.0,
        "distance_widths": [20, 40, 80, 160, 320], "band_level": 9, "band_width": 640, "band_seeds": 120,
        "early_seeds": 400}
DISTANCE_AT = 12.6     # the record time nearest this: where the predictor distance to the limit is measured
BAND_TIMES = [0.0, 0.6, 1.2, 2.0, 3.0, 4.2, 6.0, 8.4]   # where the band of the risk is computed and measured
BEFORE_ESCAPE = 2.0  # the band's claim: up to this time (the risk still above 40 % of its start)
BAND = [0.71, 1.41]  # m Var R_m / C_R: nearer 1 than its rivals 1/2 and 2 (geometrically)
GLOBAL = 1e-5        # risk at T below this fraction of the initial risk
STALLED = 0.01       # relative decrease over the last half of the horizon below this


def config(size, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": D, "activation": "relu", "scaling": "mean_field"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(D), "a_law": "gaussian", "tau": 0.1},
        data={"kind": "population", "teacher_m0": M0},
        flow={"dt": 0.2, "t_end": size["t_end"]},
        record={"n_records": 60, "spacing": "geometric", "snapshots": False, "diagnostics": ["masses"],
                "stop_below": GLOBAL})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    shape = (len(widths), size["seeds"])
    final, decrease, cone, stopped = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    converged = np.zeros(shape, bool)
    curves, per_teacher = {}, None
    results = iter(simulate_all([config(size, int(m), seed) for m in widths for seed in range(size["seeds"])]))
    for a, m in enumerate(widths):
        for seed in range(size["seeds"]):
            res = next(results)
            risk = res.observables["train_risk"]
            half = np.searchsorted(res.t, res.t[-1] / 2)
            final[a, seed] = risk[-1] / risk[0]
            decrease[a, seed] = 1 - risk[-1] / risk[half]
            converged[a, seed], stopped[a, seed] = res.status == "converged", res.t[-1]
            cone[a, seed] = res.observables["cone_mass"][-1] / M0
            if seed == 0:
                curves[int(m)] = (res.t, risk / risk[0])
        if m == widths[-1]:
            teacher = res.teacher
            per_teacher = cone_masses(res.theta, teacher[:, :-1], res.config.record.cone_angle, scale=1 / m)
    stalled = decrease < STALLED
    over = widths >= 2 * M0
    near = np.array(size["distance_widths"])
    limit, distances, at = limit_and_distances(size, near)
    band, spread, early_spread, band_seconds = band_and_spread(size)
    shown = int(widths[-1])

    fig, axes = plt.subplots(1, 5, figsize=(26, 4.8))
    ax = axes[0]
    ratio = widths / M0
    for k in range(size["seeds"]):
        ax.loglog(ratio, final[:, k], "o", color="0.6", ms=4, label="each seed" if k == 0 else None)
    ax.loglog(ratio, np.median(final, axis=1), "-", color="tab:blue", lw=2, label="median over seeds")
    ax.fill_between(ratio, *np.percentile(final, [25, 75], axis=1), color="tab:blue", alpha=0.2, lw=0)
    ax.axhline(GLOBAL, color="k", ls=":", lw=1, label=f"the stopping rule: {GLOBAL:g} R(0)")
    for a, m in enumerate(widths):
        if converged[a].all():
            ax.annotate(f"t = {np.median(stopped[a]):.0f}", (ratio[a], GLOBAL), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=7)
    plotting.label_ticks(ax, ratio)
    ax.set_xlabel(r"over-parameterisation $m / m_0$")
    ax.set_ylabel(r"population risk at the end, $R(\theta_{end}) / R(\theta_0)$")
    ax.set_title(f"m = m0: all {size['seeds']} runs stall; from 2 m0 all converge\n(median stopping time marked)",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    shades = plt.cm.viridis(np.linspace(0.1, 0.9, len(curves)))
    for shade, (m, (t, r)) in zip(shades, curves.items()):
        ax.loglog(t[1:], r[1:], lw=1.5, color=shade, label=f"m = {m}")
    nodes = len(limit.weights)
    ax.loglog(limit.t[1:], limit.risk[1:] / limit.risk[0], color="k", lw=2.2, ls="--",
              label=f"m = ∞ (reduced limit, {nodes} nodes)")
    ax.fill_between(limit.t[1:], *(np.sort([limit.risk[1:], limit.coarse_risk[1:]], axis=0) / limit.risk[0]),
                    color="k", alpha=0.25, lw=0, label=f"limit at {nodes // 2} other nodes (its error)")
    ax.errorbar(band.t, band.limit_risk / limit.risk[0], yerr=2 * np.sqrt(band.risk / shown) / limit.risk[0],
                fmt="none", ecolor="tab:red", elinewidth=1.5, capsize=3,
                label=rf"predicted band at m = {shown}: $R_\infty \pm 2\sqrt{{C_R(t)/m}}$")
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"$R(\theta_t) / R(\theta_0)$ (seed 0)")
    ax.set_title("population risk along the flow, and its m = ∞ limit")
    ax.legend(fontsize=7, title="width")
    ax = axes[2]
    ax.plot(ratio, np.median(cone, axis=1), "o-", color="tab:blue", lw=2, label="median over seeds")
    ax.fill_between(ratio, *np.percentile(cone, [25, 75], axis=1), color="tab:blue", alpha=0.2, lw=0)
    ax.set_xscale("log")
    plotting.label_ticks(ax, ratio)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel(r"$m / m_0$")
    ax.set_ylabel("mass within 10° of a teacher neuron / $m_0$")
    ax.set_title("the mass gathers on the teacher's directions")
    ax.legend(fontsize=8)
    ax = axes[3]
    fit = plotting.seed_scaling(ax, near, {"m particles": distances}, "width $m$",
                                rf"$\|f_m - f_\infty\|_{{L^2}}$ at t = {at:g} (same teacher)")["m particles"]
    ax.loglog(near, np.median(distances[0]) * (near / near[0]) ** -0.5, "k--", lw=1,
              label=r"$m^{-1/2}$ (propagation of chaos)")
    plotting.label_ticks(ax, near)
    ax.legend(fontsize=8)
    ax.set_title(f"the predictor approaches the limit's ({size['seeds']} seeds)")
    ax = axes[4]
    m_band, early = size["band_width"], band.t <= BEFORE_ESCAPE + 1e-9
    measured = m_band * spread.var(axis=0, ddof=1)
    measured[early] = m_band * early_spread.var(axis=0, ddof=1)
    interval = m_band * _variance_interval(spread) / band.risk
    interval[:, early] = m_band * _variance_interval(early_spread) / band.risk[early]
    ratio = measured / band.risk
    ax.axhspan(*BAND, color="tab:green", alpha=0.12, lw=0, label=f"the claim's window {BAND} (t <= {BEFORE_ESCAPE:g})")
    ax.axhline(1.0, color="k", lw=1.2, label=r"the band's prediction $C_R(t)$ (nothing fitted; "
               f"{band.stats['dropped']:.1%} of its pair terms dropped: nearly parallel)")
    ax.errorbar(band.t, ratio, yerr=[ratio - interval[0], interval[1] - ratio], fmt="o", color="tab:red", capsize=3,
                label=f"measured, m = {m_band} ({len(early_spread)} seeds to t = {BEFORE_ESCAPE:g}, "
                f"{len(spread)} after; 95 % bootstrap interval)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.3)
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"$m\,\mathrm{Var}[R_m(t)] \,/\, C_R(t)$")
    ax.set_title("the band of the risk: measured / predicted spread", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Chizat & Bach (2018) in d = {D}: teacher of m0 = {M0} ReLU neurons, exact population risk, "
                 f"{size['seeds']} seeds per width, stopped at {GLOBAL:g} R(0) or T = {size['t_end']:g}; m = ∞ by the "
                 "symmetry-reduced limit solver")
    fig.tight_layout()
    claims = [
        claim("at m = m0 every run stalls at a positive risk (less than 1 % decrease over the last half)",
              "relative decrease over [T/2, T] at m = m0", decrease[widths == M0].ravel(), "<", STALLED),
        claim("at m = m0 the stalled risk is far from zero", "R(T)/R(0) at m = m0", final[widths == M0].ravel(),
              ">", 1e-3),
        claim(f"from m = 2 m0 every run goes below {GLOBAL:g} of its initial risk before T (the stopping rule)",
              "fraction of runs with m >= 2 m0 stopped by the rule", float(np.mean(converged[over])), ">=", 1.0),
        claim("from m = 2 m0 at least 90 % of the mass lies within 10 degrees of the teacher's neurons (median)",
              "median cone mass / m0 for m >= 2 m0", np.median(cone[over], axis=1), ">", 0.9),
    ]
    horizon = limit.t[-1]
    limit_error = np.abs(limit.risk - limit.coarse_risk) / limit.risk
    gaps = {m: np.max(np.abs(curves[m][1][:len(limit.t)] * limit.risk[0] / limit.risk - 1)) for m in curves}
    claims += [
        claim(f"the computed m = ∞ limit is accurate to 10 % of its risk up to t = {horizon:g} (estimated: its {nodes} "
              f"nodes against {nodes // 2} scrambled independently)",
              f"relative risk gap between the two levels, t <= {horizon:g}",
              float(np.max(limit_error)), "<", 0.10, kind="check"),
        claim(f"the widest network's risk is closer to the limit's than m = 2 m0's (largest relative gap, "
              f"t <= {horizon:g})",
              f"max |R_m / R_inf - 1| at m = {widths[-1]} minus at m = {2 * M0}", gaps[int(widths[-1])] - gaps[2 * M0],
              "<", 0.0),
        rate("the predictor approaches the limit's like m^-1/2 (from m = 2 m0), not width-free nor like m^-1",
             f"slope of ||f_m - f_inf|| at t = {at:g} vs m (95 % interval over seeds)", fit, theory=-0.5,
             window=[-0.75, -0.25], rival=[0.0, -1.0]),
    ]
    band_error = band.error["risk"][early] / band.risk[early]
    claims.append(claim(f"the band of the risk is resolved before the escape (t <= {BEFORE_ESCAPE:g}): its two levels "
                        "agree to 10 % (an estimate of the coarser level's error)",
                        f"relative gap of C_R between levels {band.stats['level']} and {band.stats['coarse_level']}",
                        float(np.max(band_error)), "<", 0.10, kind="check"))
    if not quick:
        claims.append(claim(
            f"the finite-width band predicts the spread of the population risk before the escape (t <= "
            f"{BEFORE_ESCAPE:g}) with no fitted constant: m Var R_m(t) at m = {m_band} is the limit's "
            "C_R(t), not a factor 2 off, nor the initial spread C_R(0) carried along",
            f"m Var R_m / C_R at t = {', '.join(f'{t:g}' for t in band.t[early])}: 95 % intervals (bootstrap, "
            f"{len(early_spread)} seeds)", interval[:, early].ravel(), "in", BAND,
            rival=[0.5, 2.0] + (band.risk[0] / band.risk[early][1:]).tolist(), measured=ratio[early].tolist()))
    numbers = {"limit": {"t": limit.t, "risk": limit.risk, "coarse_risk": limit.coarse_risk, "nodes": nodes,
                         "relative_error": limit_error},
               "risk_gap_to_limit": gaps, "distance_time": at, "predictor_distance": distances, "distance_fit": fit,
               "widths": widths, "m0": M0, "d": D, "final_relative_risk": final,
               "relative_decrease_last_half": decrease, "stalled": stalled, "converged": converged,
               "stopping_time": stopped, "distance_widths": near, "cone_mass_fraction": cone,
               "largest_m_cone_mass_per_teacher_neuron": per_teacher,
               "band": {"t": band.t, "C_risk": band.risk, "limit_risk": band.limit_risk, "level": band.stats["level"],
                        "nodes": band.stats["nodes"], "error_C_risk": band.error["risk"],
                        "dropped_parallel_share": band.stats["dropped"], "cpu_seconds": band_seconds,
                        "width": m_band, "measured_m_var": measured, "ratio": ratio, "ratio_interval": interval,
                        "seeds": len(spread), "early_seeds": len(early_spread), "mean_risk": spread.mean(axis=0)}}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(size, int(widths[0]), 0),
                 "numbers": numbers, "claims": claims}


def band_and_spread(size):
    """The predicted band of the population risk, C_R(t) = lim m Var R_m(t) (``fluctuations`` on
    the reduced limit, seed 0's teacher, Sobol nodes at band_level and their estimate at one level
    less; relu's nearly parallel pairs dropped and said), and the risk of runs at m = band_width
    (seed 0's teacher, seeds 1, 2, ...): band_seeds of them at every BAND_TIMES, early_seeds at the
    times up to BEFORE_ESCAPE (the first band_seeds and more, run that far only): (band, risks
    (band_seeds, times), early risks (early_seeds, early times), CPU s)."""
    base = config(size, size["band_width"], 0)
    teacher = mf.run_data(base).teacher
    steps = round(BAND_TIMES[-1] / base.flow.dt)
    base = base.updated({"data.teacher_weights": teacher.tolist(), "flow.t_end": BAND_TIMES[-1],
                         "record.n_records": steps, "record.spacing": "linear", "record.diagnostics": []})
    tic = time.process_time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dropped the second derivatives")   # said on the figure
        band = fluctuations(base, size["band_level"], times=BAND_TIMES, parallel="drop")
    seconds = time.process_time() - tic
    long, early = size["band_seeds"], [t for t in BAND_TIMES if t <= BEFORE_ESCAPE]
    short = base.updated({"flow.t_end": early[-1], "record.n_records": round(early[-1] / base.flow.dt)})
    runs = simulate_all([base.updated({"seed": seed}) for seed in range(1, long + 1)]
                        + [short.updated({"seed": seed}) for seed in range(long + 1, size["early_seeds"] + 1)])

    def risks(run, times):
        return run.observables["train_risk"][[int(np.argmin(np.abs(run.t - t))) for t in times]]
    return (band, np.array([risks(run, BAND_TIMES) for run in runs[:long]]),
            np.array([risks(run, early) for run in runs]), seconds)


def _variance_interval(values, draws: int = 4000) -> np.ndarray:
    """The 95 % interval (2, times) of the variance of values (seeds, times) over seeds resampled
    (bootstrap: the risk's spread over seeds has heavy tails, a chi-square interval is too narrow)."""
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(values), (draws, len(values)))
    return np.percentile(np.var(values[picks], axis=1, ddof=1), [2.5, 97.5], axis=0)


def limit_and_distances(size, widths):
    """The reduced m = infinity limit for seed 0's teacher up to limit_until (Sobol, 2^limit_level
    nodes, and half as many for its error), and ||f_m - f_inf|| at the record time nearest DISTANCE_AT for every
    width and seed, all runs with seed 0's teacher (the init varies with the seed)."""
    base = config(size, int(widths[0]), 0)
    teacher = mf.run_data(base).teacher
    limit = reduced.reduced_limit(base, level=size["limit_level"], rule="sobol", teacher=teacher,
                                  until=size["limit_until"])
    problem, Q = reduced.ReducedFlow.of(base, teacher)
    k = int(np.argmin(np.abs(limit.t - DISTANCE_AT)))
    distances = np.zeros((len(widths), size["seeds"]))
    for a, m in enumerate(widths):
        for seed in range(size["seeds"]):
            cfg = config(size, int(m),
                         seed).updated({"data.teacher_weights": teacher.tolist(), "record.snapshots": True,
                                                      "record.diagnostics": [], "flow.t_end": float(limit.t[k])})
            res = mf.simulate(cfg.updated({"record.n_records": 2}))
            distances[a, seed] = reduced.predictor_distance(problem, Q, res.theta, cfg.network, limit.snapshots[k],
                                                            limit.weights)
    return limit, distances, float(limit.t[k])


if __name__ == "__main__":
    scenario_main(__file__, run)
