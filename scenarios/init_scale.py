"""The initialisation scale decides the regime in d = 100: from a small init the mean-field flow
aligns its first layer with the teacher's span (fully with online SGD, partly with GD on 300
samples) and generalises better; from a large one the neurons barely move, stay random, and the
test risk is worse, both for gradient descent on a finite sample and for online SGD.

Source: Chizat's lecture notes (numerical experiment I); Chizat, Oyallon & Bach (2019).

Teacher of m0 = 3 ReLU neurons in d = 100 (unit directions, unit output weights), student of
m = 100 neurons under mean-field scaling, both layers trained, symmetric initialisation (f_0 = 0)
scaled by tau, 3 seeds. Two arms: gradient descent on n = 300 samples (over-parameterised:
m (d + 1) = 10100 parameters), and online SGD with batches of 10 fresh samples (3 x 10^4 samples
seen: under-parameterised). The tangent kernel grows like tau^2, so time runs on the scale
1/max(1, tau^2): dt and the horizon are divided by it (3000 steps in every run). Feature
learning is measured by the alignment of the student's first layer with the teacher's span S: the
mean of |P_S v|^2 over the top 3 right singular vectors v of W (1 if they lie in S; about 3 / 100
for a random W). Displacement is relative: the mean over neurons of |theta_i(T) - theta_i(0)| over the
mean of |theta_i(0)| (lazy training moves every neuron by a small fraction of its own size).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim
from meanfield.tools.figures import scenario_main

SETTING = "d = 100, m = 100, n = 300 (GD) or online, tau = 0.01-10, 3 seeds (full mode)"
D, M0 = 100, 3
QUICK = {"taus": [0.01, 1.0, 10.0], "m": 100, "n": 300, "seeds": 2, "steps": 2000}
FULL = {"taus": [0.01, 0.1, 1.0, 3.0, 10.0], "m": 100, "n": 300, "seeds": 3, "steps": 3000}
ARMS = {"GD on n = 300 samples": False, "online SGD (fresh samples)": True}
COLORS = {"GD on n = 300 samples": "tab:blue", "online SGD (fresh samples)": "tab:green"}


def config(size, tau, online, seed):
    rescale = max(1.0, tau * tau)
    dt = 0.1 / rescale
    return mf.Config(
        seed=seed,
        network={"m": size["m"], "d": D, "activation": "relu", "scaling": "mean_field"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(D), "a_law": "gaussian", "tau": tau, "symmetric": True},
        data={"kind": "teacher", "n": size["n"], "n_test": 2000, "teacher_m0": M0},
        flow={"dt": dt, "t_end": dt * size["steps"], "online": online, "batch_size": 10 if online else 0},
        record={"n_records": 20, "snapshots": False})


def alignment(theta, teacher) -> float:
    """Mean |P_S v|^2 over the top M0 right singular vectors v of W, S the teacher's span."""
    basis = np.linalg.qr(teacher[:, :-1].T)[0]                       # (d, M0)
    top = np.linalg.svd(theta[:, :-1], full_matrices=False)[2][:M0]  # (M0, d)
    return float(np.mean(np.sum((top @ basis) ** 2, axis=1)))


def run(quick, out):
    size = QUICK if quick else FULL
    taus = np.array(size["taus"])
    shape = (len(taus), size["seeds"])
    test, moved, aligned = ({arm: np.zeros(shape) for arm in ARMS} for _ in range(3))
    for arm, online in ARMS.items():
        for i, tau in enumerate(taus):
            for seed in range(size["seeds"]):
                cfg = config(size, float(tau), online, seed)
                res = mf.simulate(cfg)
                teacher = res.teacher
                test[arm][i, seed] = res.observables["test_risk"][-1]
                moved[arm][i, seed] = res.observables["displacement_mean"][-1] / np.mean(
                    np.linalg.norm(res.theta0, axis=1))
                aligned[arm][i, seed] = alignment(res.theta, teacher)

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    panels = ((axes[0], test, "test risk after training", True),
              (axes[1], aligned, r"alignment of $W$ with the teacher's span", False),
              (axes[2], moved, r"relative displacement "
               r"$\overline{|\theta_i(T) - \theta_i(0)|}\,/\,\overline{|\theta_i(0)|}$", True))
    for ax, values, ylabel, logy in panels:
        for arm in ARMS:
            v = values[arm]
            ax.plot(taus, np.median(v, axis=1), "o-", color=COLORS[arm], lw=2, label=arm)
            ax.fill_between(taus, v.min(axis=1), v.max(axis=1), color=COLORS[arm], alpha=0.2, lw=0)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        plotting.label_ticks(ax, taus)
        ax.set_xlabel(r"initialisation scale $\tau$")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[1].axhline(M0 / D, color="k", ls=":", lw=1, label="random W")
    axes[1].legend(fontsize=8)
    axes[0].set_title(f"large init generalises worse (median, range over {size['seeds']} seeds)")
    axes[1].set_title("small init learns the teacher's features")
    axes[2].set_title("large init: neurons move by a few % of their size (lazy)")
    fig.suptitle(f"Initialisation scale and the two regimes (mean-field scaling, d = {D}, m = {size['m']}, "
                 f"teacher of {M0} ReLU neurons)")
    fig.tight_layout()
    claims = []
    for arm in ARMS:
        med_test = np.median(test[arm], axis=1)
        claims += [
            claim(f"{arm}: the largest init's median test risk is over 1.5 times the smallest init's",
                  f"median test risk at tau = {taus[-1]:g} / at {taus[0]:g} ({arm})", med_test[-1] / med_test[0],
                  ">", 1.5),
            claim(f"{arm}: from the smallest init W aligns with the teacher's span, over 5 times a random W's "
                  "alignment in every seed", f"alignment at tau = {taus[0]:g} / random ({arm})",
                  aligned[arm][0] / (M0 / D), ">", 5.0),
            claim(f"{arm}: from the largest init W stays near random (under twice a random W's alignment)",
                  f"alignment at tau = {taus[-1]:g} / random ({arm})", aligned[arm][-1] / (M0 / D), "<", 2.0),
            claim(f"{arm}: from the largest init the neurons move by under 5 % of their initial size in every seed "
                  "(lazy)",
                  f"relative displacement at tau = {taus[-1]:g} ({arm})", moved[arm][-1], "<", 0.05),
            claim(f"{arm}: ... from the smallest init by more than their initial size",
                  f"relative displacement at tau = {taus[0]:g} ({arm})", moved[arm][0], ">", 1.0),
        ]
    claims += [
        claim("online SGD from the smallest init aligns W fully with the teacher's span (alignment over 0.95 in "
              "every seed)", f"alignment at tau = {taus[0]:g} (online)", aligned["online SGD (fresh samples)"][0],
              ">", 0.95),
        claim("GD on 300 samples aligns it partly (alignment under 0.6 in every seed)",
              f"alignment at tau = {taus[0]:g} (GD)", aligned["GD on n = 300 samples"][0], "<", 0.6),
    ]
    numbers = {"taus": taus, "test_risk": test, "alignment": aligned, "relative_displacement": moved}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": config(size, float(taus[0]), False, 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
