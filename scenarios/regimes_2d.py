"""Mean-field particles travel to the teacher's neurons: the share of their mass (|a_i| |w_i|)
within 10 degrees of a teacher direction at least triples, to over half of it (the rest stays
spread out, most of it near the origin); lazy particles move over 3 times less and that share
changes by less than half; both fit, in each of 3 seeds.

Source: Chizat & Bach (2018); Chizat, Oyallon & Bach (2019), teacher-student in d = 2.

One student (balanced init |a_i| = |w_i|, symmetric so f_0 = 0), trained twice on 200 points of the
circle labelled by a teacher of 3 ReLU neurons: with mean-field scaling (output 1/m, time factor m)
the neurons |a_i| w_i move O(1) and gather on the teacher's directions; with lazy scaling
(1/sqrt(m)) they move O(1/sqrt(m)) and the fit is a kernel regression. Also writes
``regimes_2d.gif`` (mean-field flow).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim
from meanfield.model.measures import homogeneous_projection
from meanfield.tools.figures import scenario_main

SETTING = "d = 2, n = 200, m = 1000, 3 seeds (seed 1 drawn) (full mode)"
SEED, SEEDS = 1, (0, 1, 2)          # the seed drawn; the claims hold for each of the seeds
QUICK = {"m": 60, "t_end": 60.0, "n_records": 30, "gathered": 0.4}        # gathered: the share claimed at T
FULL = {"m": 1000, "t_end": 300.0, "n_records": 80, "gathered": 0.5}


def config(scaling, size, seed=SEED):
    return mf.Config(
        seed=seed,
        network={"m": size["m"], "d": 2, "activation": "relu", "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "balanced", "symmetric": True},
        data={"kind": "teacher", "n": 200, "n_test": 1000, "inputs": "sphere", "teacher_m0": 3},
        flow={"dt": 0.05, "t_end": size["t_end"]},
        record={"n_records": size["n_records"], "spacing": "geometric"})


CONE = 10.0             # degrees


def nearest_angles(theta, teacher):
    """Each neuron's angle (degrees) to its nearest teacher direction and its unsigned mass
    |a_i| |w_i| (the signed mass of a symmetric initialisation is zero): two (m,) arrays."""
    directions, masses = homogeneous_projection(theta)
    centres = teacher[:, :-1] / np.linalg.norm(teacher[:, :-1], axis=1, keepdims=True)
    cosine = np.clip((directions @ centres.T).max(axis=1), -1.0, 1.0)
    return np.degrees(np.arccos(cosine)), np.abs(masses)


def cone_share(theta, teacher, degrees=CONE):
    """Share of the unsigned mass within ``degrees`` of a teacher direction."""
    angles, masses = nearest_angles(theta, teacher)
    return float(masses[angles <= degrees].sum() / masses.sum())


def measure(size, seed):
    """Both regimes from one seed: their results, the teacher, and per regime (mean displacement,
    cone share at 0, cone share at T, final training risk)."""
    results = {s: mf.simulate(config(s, size, seed)) for s in ("mean_field", "lazy")}
    teacher = results["mean_field"].teacher
    values = {s: (r.observables["displacement_mean"][-1], cone_share(r.theta0, teacher), cone_share(r.theta, teacher),
                  r.observables["train_risk"][-1]) for s, r in results.items()}
    return results, teacher, values


def run(quick, out):
    size = QUICK if quick else FULL
    per_seed = {seed: measure(size, seed) for seed in SEEDS}
    results, teacher, _ = per_seed[SEED]
    values = {s: np.array([per_seed[seed][2][s] for seed in SEEDS]) for s in ("mean_field", "lazy")}   # (seeds, 4)
    fig, axes = plt.subplots(1, 4, figsize=(21, 5), gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    colors = {"mean_field": plotting.COLORS["mean-field"], "lazy": plotting.COLORS["lazy"]}
    for ax, (scaling, res) in zip(axes, results.items()):
        moved = res.observables["displacement_mean"][-1]
        plotting.particles(ax, res, teacher=teacher,
                           title=f"{scaling.replace('_', '-')}: mean |θ_i(T) − θ_i(0)| = {moved:.3f}")
    ax = axes[2]
    grid = np.linspace(0, 90, 181)
    curves = {"t = 0 (both)": (results["lazy"].theta0, "0.5", ":"),
              "lazy, t = T": (results["lazy"].theta, colors["lazy"], "-"),
              "mean-field, t = T": (results["mean_field"].theta, colors["mean_field"], "-")}
    for label, (theta, color, style) in curves.items():
        angles, masses = nearest_angles(theta, teacher)
        ax.plot(grid, [masses[angles <= g].sum() / masses.sum() for g in grid], style, color=color, lw=2, label=label)
    ax.axvline(CONE, color="k", lw=0.8, ls="--", label=f"{CONE:g} degrees")
    ax.set_xlabel("angle to the nearest teacher direction (degrees)")
    ax.set_ylabel(r"share of the mass $\sum_i |a_i|\,|w_i|$ within it")
    ax.set_title(f"mass gathered near the teacher (seed {SEED})")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[3]
    for scaling, res in results.items():
        for kind, style in (("train", "-"), ("test", "--")):
            ax.loglog(res.t[1:], res.observables[f"{kind}_risk"][1:], style, color=colors[scaling], lw=1.8,
                      label=f"{scaling.replace('_', '-')}, {kind}")
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"risk $R(\theta_t)$")
    ax.set_title("both regimes fit the data")
    ax.legend(fontsize=8)
    share = values["mean_field"][:, 2]
    fig.suptitle(f"Two regimes, one engine (m = {size['m']}, d = 2, teacher of 3 ReLU neurons): mean-field particles "
                 f"carry {share.min():.0%}-{share.max():.0%} of their mass to within {CONE:g} degrees of the "
                 "teacher's directions (seeds), lazy ones barely move")
    fig.tight_layout()
    plotting.animate(results["mean_field"], out / "regimes_2d.gif", teacher=teacher,
                     title="mean-field flow")
    numbers = {s: {"final_train_risk": r.observables["train_risk"][-1],
                   "final_test_risk": r.observables["test_risk"][-1],
                   "displacement_mean": r.observables["displacement_mean"][-1],
                   "displacement_max": r.observables["displacement_max"][-1]}
               for s, r in results.items()}
    for s in results:
        numbers[s]["per_seed"] = {"seeds": SEEDS, "displacement_mean": values[s][:, 0],
                                  "cone_share_start": values[s][:, 1], "cone_share_end": values[s][:, 2],
                                  "final_train_risk": values[s][:, 3]}
    mean_field, lazy = values["mean_field"], values["lazy"]
    claims = [
        claim("mean-field particles move over 3 times farther than lazy ones (mean displacement, every seed)",
              "mean-field / lazy mean displacement", mean_field[:, 0] / lazy[:, 0], ">", 3.0),
        claim("mean-field: the share of mass within 10 degrees of a teacher neuron at least triples (every seed)",
              "cone mass share at T / at 0 (mean-field)", mean_field[:, 2] / mean_field[:, 1], ">=", 3.0),
        claim(f"mean-field: over {size['gathered']:.0%} of the mass ends within 10 degrees of a teacher neuron "
              "(every seed)", "cone mass share at T (mean-field)", mean_field[:, 2], ">", size["gathered"]),
        claim("lazy: that share changes by less than half (every seed)", "cone mass share at T / at 0 (lazy)",
              lazy[:, 2] / lazy[:, 1], "in", [0.5, 1.5]),
        claim("both regimes fit the training data (risk below 0.02, every seed)", "final training risk",
              np.concatenate([mean_field[:, 3], lazy[:, 3]]), "<", 0.02),
    ]
    return fig, {"setting": SETTING, "seed": SEED, "config": {s: r.config for s, r in results.items()},
                 "numbers": numbers,
                 "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
