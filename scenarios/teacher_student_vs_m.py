"""Over-parameterisation makes the mean-field flow global: with m near the teacher's m0 neurons
the population risk often stalls; a few times m0 and it reaches about zero, the particles' mass
gathering on the teacher's directions.

Source: Chizat & Bach (2018), On the global convergence of gradient descent for
over-parameterized models using optimal transport.

Exact population risk (x ~ N(0, I_d), teacher of m0 ReLU neurons with unit output weights),
mean-field scaling, small initialisation (tau = 0.1). Cone mass: signed mass of the
2-homogeneous projection within 10 degrees of a teacher direction (the teacher has m0).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.figures import scenario_main
from meanfield.measures import cone_masses

QUICK = {"d": 10, "m0": 3, "widths": [3, 6, 12, 24, 48], "seeds": 4, "t_end": 300.0}
FULL = {"d": 50, "m0": 5, "widths": [5, 10, 20, 40, 80, 160, 320], "seeds": 6, "t_end": 1000.0}
SUCCESS = 1e-3       # final risk below this fraction of the initial risk


def config(size, m, seed):
    d = size["d"]
    return mf.Config(
        seed=seed,
        network={"m": m, "d": d, "activation": "relu", "scaling": "mean_field"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(d), "a_law": "gaussian", "tau": 0.1},
        data={"kind": "population", "teacher_m0": size["m0"]},
        flow={"dt": 0.2, "t_end": size["t_end"]},
        record={"n_records": 40, "snapshots": False, "diagnostics": ["masses"]})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    final = np.zeros((len(widths), size["seeds"]))
    cone_fraction = np.zeros_like(final)
    curves, per_teacher = {}, None
    for a, m in enumerate(widths):
        for seed in range(size["seeds"]):
            cfg = config(size, int(m), seed)
            res = mf.simulate(cfg)
            obs = res.observables
            final[a, seed] = obs["train_risk"][-1] / obs["train_risk"][0]
            cone_fraction[a, seed] = obs["cone_mass"][-1] / size["m0"]
            if seed == 0:
                curves[int(m)] = (res.t, obs["train_risk"] / obs["train_risk"][0])
        if m == widths[-1]:
            teacher = mf.make_data(cfg, np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[0])).teacher
            per_teacher = cone_masses(res.theta, teacher[:, :-1], cfg.record.cone_angle, scale=1 / m)
    success = np.mean(final < SUCCESS, axis=1)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    for k in range(size["seeds"]):
        ax.loglog(widths / size["m0"], np.maximum(final[:, k], 1e-12), "o", color="0.6", ms=4)
    ax.loglog(widths / size["m0"], np.maximum(np.median(final, axis=1), 1e-12), "-", lw=2, label="median over seeds")
    ax.axhline(SUCCESS, color="k", ls=":", lw=1, label=f"success threshold {SUCCESS:g}")
    ax.set_xlabel(r"over-parameterisation $m / m_0$")
    ax.set_ylabel(r"final population risk $R(\theta_T) / R(\theta_0)$")
    ax.set_title("near m0 the flow can stall; a few times m0 it converges")
    ax.legend(fontsize=8)
    ax = axes[1]
    for m, (t, r) in curves.items():
        ax.loglog(t[1:], np.maximum(r[1:], 1e-12), lw=1.5, label=f"m = {m}")
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"$R(\theta_t) / R(\theta_0)$ (seed 0)")
    ax.set_title("population risk along the flow")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(widths / size["m0"], np.mean(cone_fraction, axis=1), "o-", lw=2, label="mass within 10° of the teacher")
    ax.plot(widths / size["m0"], success, "s--", lw=1.5, label="success fraction")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel(r"$m / m_0$")
    ax.set_ylabel("fraction (mean over seeds)")
    ax.set_title("the mass concentrates on the teacher's neurons")
    ax.legend(fontsize=8)
    fig.suptitle(f"Chizat & Bach (2018): teacher-student on the exact population risk, d = {size['d']}, "
                 f"m0 = {size['m0']} ReLU neurons, {size['seeds']} seeds")
    fig.tight_layout()
    numbers = {"widths": widths, "m0": size["m0"], "d": size["d"], "final_relative_risk": final,
               "success_fraction": success, "cone_mass_fraction": cone_fraction.mean(axis=1),
               "largest_m_cone_mass_per_teacher_neuron": per_teacher}
    return fig, {"seed": list(range(size["seeds"])), "config": config(size, int(widths[0]), 0), "numbers": numbers}


if __name__ == "__main__":
    scenario_main(__file__, run)
