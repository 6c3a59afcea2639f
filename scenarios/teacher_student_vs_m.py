"""Over-parameterisation makes the mean-field flow global in d = 100: with m = m0 neurons every run
stalls at a positive population risk, while from m = 2 m0 every run drives the risk below 1e-5 of
its initial value (where it is stopped), its mass gathered on the teacher's directions. The m =
infinity limit, computed by the symmetry-reduced solver (``meanfield.reduced``), is approached by
the finite widths' risk curves as m grows, and the predictor approaches it like m^-1/2.

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
for every seed (only the initialisation varies). Cone mass: signed mass of the 2-homogeneous projection within 10
degrees of a teacher direction (the teacher has mass m0).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.model.measures import cone_masses
from meanfield.theory import reduced
from meanfield.tools.figures import scenario_main, simulate_all

SETTING = "d = 100, population risk, m0 = 10, m = 10-320 and the m = ∞ limit (1024 nodes, t <= 50), 4 seeds (full mode)"
D, M0 = 100, 10
# distance_widths: where ||f_m - f_inf|| is measured, at t ~ 12.6 only (cheap: five widths in either mode)
QUICK = {"widths": [10, 20, 40], "seeds": 2, "t_end": 1000.0, "limit_level": 9, "limit_until": 12.6,
         "distance_widths": [20, 40, 80, 160, 320]}
FULL = {"widths": [10, 20, 40, 80, 160, 320], "seeds": 4, "t_end": 2000.0, "limit_level": 10, "limit_until": 50.0,
        "distance_widths": [20, 40, 80, 160, 320]}
DISTANCE_AT = 12.6     # the record time nearest this: where the predictor distance to the limit is measured
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

    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8))
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
    numbers = {"limit": {"t": limit.t, "risk": limit.risk, "coarse_risk": limit.coarse_risk, "nodes": nodes,
                         "relative_error": limit_error},
               "risk_gap_to_limit": gaps, "distance_time": at, "predictor_distance": distances, "distance_fit": fit,
               "widths": widths, "m0": M0, "d": D, "final_relative_risk": final,
               "relative_decrease_last_half": decrease, "stalled": stalled, "converged": converged,
               "stopping_time": stopped, "distance_widths": near, "cone_mass_fraction": cone,
               "largest_m_cone_mass_per_teacher_neuron": per_teacher}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(size, int(widths[0]), 0),
                 "numbers": numbers, "claims": claims}


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
