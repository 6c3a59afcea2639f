"""Mean-field particles travel to the teacher's neurons (the share of their mass within 10 degrees
of a teacher direction grows several-fold); lazy particles move many times less; both fit.

Source: Chizat & Bach (2018); Chizat, Oyallon & Bach (2019), teacher-student in d = 2.

One student (balanced init |a_i| = |w_i|, symmetric so f_0 = 0), trained twice on 200 points of
the circle labelled by a teacher of 3 ReLU neurons: with mean-field scaling (output 1/m, time factor m) the neurons |a_i| w_i move
O(1) and gather on the teacher's directions; with lazy scaling (1/sqrt(m)) they move
O(1/sqrt(m)) and the fit is a kernel regression. Also writes ``regimes_2d.gif`` (mean-field flow).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield import plotting
from meanfield.claims import claim
from meanfield.figures import scenario_main
from meanfield.measures import homogeneous_projection

SETTING = "d = 2, n = 200, m = 1000, 1 seed (full mode)"
SEED = 1
QUICK = {"m": 60, "t_end": 60.0, "n_records": 30}
FULL = {"m": 1000, "t_end": 300.0, "n_records": 80}


def config(scaling, size):
    return mf.Config(
        seed=SEED,
        network={"m": size["m"], "d": 2, "activation": "relu", "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "balanced", "symmetric": True},
        data={"kind": "teacher", "n": 200, "n_test": 1000, "inputs": "sphere", "teacher_m0": 3},
        flow={"dt": 0.05, "t_end": size["t_end"]},
        record={"n_records": size["n_records"], "spacing": "geometric"})


def cone_share(theta, teacher, degrees=10.0):
    """Share of the unsigned mass sum_i |a_i| |w_i| within ``degrees`` of a teacher direction (the
    signed mass of a symmetric initialisation is zero)."""
    directions, masses = homogeneous_projection(theta)
    centres = teacher[:, :-1] / np.linalg.norm(teacher[:, :-1], axis=1, keepdims=True)
    inside = np.any(directions @ centres.T >= np.cos(np.radians(degrees)), axis=1)
    return float(np.abs(masses[inside]).sum() / np.abs(masses).sum())


def run(quick, out):
    size = QUICK if quick else FULL
    results = {s: mf.simulate(config(s, size)) for s in ("mean_field", "lazy")}
    cfg = config("mean_field", size)
    teacher = mf.make_data(cfg, np.random.default_rng(np.random.SeedSequence(SEED).spawn(4)[0])).teacher
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    for ax, (scaling, res) in zip(axes, results.items()):
        moved = res.observables["displacement_mean"][-1]
        plotting.particles(ax, res, teacher=teacher, title=f"{scaling.replace('_', '-')}: mean |θ_i(t) − θ_i(0)| = {moved:.3f}")
    plotting.risk_curves(axes[2], {f"{s}, {k}": (r.t, r.observables[f"{k}_risk"])
                                   for s, r in results.items() for k in ("train", "test")},
                         ylabel="risk $R(\\theta_t)$ (train, test)")
    axes[2].set_title("both regimes fit the data")
    fig.suptitle(f"Two regimes, one engine (m = {size['m']}, d = 2, teacher of 3 ReLU neurons): "
                 "mean-field particles gather on the teacher's directions, lazy ones barely move")
    fig.tight_layout()
    plotting.animate(results["mean_field"], out / "regimes_2d.gif", teacher=teacher,
                     title="mean-field flow")
    numbers = {s: {"final_train_risk": r.observables["train_risk"][-1],
                   "final_test_risk": r.observables["test_risk"][-1],
                   "displacement_mean": r.observables["displacement_mean"][-1],
                   "displacement_max": r.observables["displacement_max"][-1]}
               for s, r in results.items()}
    mf_obs, lazy_obs = results["mean_field"].observables, results["lazy"].observables
    share = {s: np.array([cone_share(theta, teacher) for theta in (r.theta0, r.theta)]) for s, r in results.items()}
    for s in results:
        numbers[s]["cone_share"] = [float(share[s][0]), float(share[s][-1])]
    claims = [
        claim("mean-field particles move over 3 times farther than lazy ones (mean displacement)",
              "mean-field / lazy mean displacement", mf_obs["displacement_mean"][-1] / lazy_obs["displacement_mean"][-1],
              ">", 3.0),
        claim("mean-field: the share of mass within 10 degrees of a teacher neuron at least triples",
              "cone mass share at T / at 0 (mean-field)", share["mean_field"][-1] / share["mean_field"][0], ">=", 3.0),
        claim("lazy: that share changes by less than 20 %", "cone mass share at T / at 0 (lazy)",
              share["lazy"][-1] / share["lazy"][0], "in", [0.8, 1.2]),
        claim("both regimes fit the training data (risk below 0.02)", "final training risk (mean-field, lazy)",
              [mf_obs["train_risk"][-1], lazy_obs["train_risk"][-1]], "<", 0.02),
    ]
    return fig, {"setting": SETTING, "seed": SEED, "config": {s: r.config for s, r in results.items()}, "numbers": numbers,
                 "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
