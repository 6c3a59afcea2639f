"""Past interpolation, wider is better: at a fixed sample size every width from the interpolation
threshold fits the noisy training data, yet the test risk keeps falling as the width grows, to
well below its value at the threshold, and levels off as the network approaches its mean-field
limit.

Source: Neyshabur, Tomioka & Srebro (2015), In search of the real inductive bias; Neyshabur, Li,
Bhojanapalli, LeCun & Srebro (2019), The role of over-parametrization in generalization of neural
networks; Mei, Montanari & Nguyen (2018) for the mean-field limit that the widest networks approach.

Teacher of m0 = 3 ReLU neurons in d = 10, n = 60 training samples with label noise 0.1 (test labels
noisy too: the noise alone gives test risk 0.005), 2000 test samples. Student: two-layer ReLU
network under mean-field scaling, both layers trained, w ~ N(0, I), a ~ N(0, 1), gradient flow
(Euler, dt = 0.1) to T = 500. The interpolation threshold is the first width whose parameter
count m (d + 1) reaches n.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim
from meanfield.tools.figures import scenario_main

SETTING = "d = 10, n = 60 (noisy), m = 2-4096, 4 seeds (full mode)"
D, N, NOISE = 10, 60, 0.1
FIT = NOISE ** 2 / 4             # fitted: training risk below half the label noise's own risk sigma^2 / 2
QUICK = {"widths": [2, 8, 32, 256, 1024], "seeds": 3}
FULL = {"widths": [2, 4, 8, 16, 64, 256, 1024, 4096], "seeds": 4}


def config(m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": D, "activation": "relu", "scaling": "mean_field"},
        init={"w_law": "gaussian", "w_scale": 1.0, "a_law": "gaussian"},
        data={"kind": "teacher", "n": N, "n_test": 2000, "teacher_m0": 3, "label_noise": NOISE},
        flow={"dt": 0.1, "t_end": 500.0},
        record={"n_records": 10, "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    threshold = int(widths[np.argmax(widths * (D + 1) >= N)])
    train, test = (np.zeros((len(widths), size["seeds"])) for _ in range(2))
    for a, m in enumerate(widths):
        for seed in range(size["seeds"]):
            obs = mf.simulate(config(int(m), seed)).observables
            train[a, seed], test[a, seed] = obs["train_risk"][-1], obs["test_risk"][-1]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for values, color, name in ((test, "tab:blue", "test risk"), (train, "tab:orange", "training risk")):
        ax.loglog(widths, np.median(values, axis=1), "o-", color=color, lw=2, label=f"{name} (median)")
        ax.fill_between(widths, *np.percentile(values, [25, 75], axis=1), color=color, alpha=0.2, lw=0)
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"interpolation threshold m (d + 1) >= n: m = {threshold}")
    ax.axhline(NOISE ** 2 / 2, color="0.5", ls=":", lw=1, label="label-noise floor of the test risk")
    plotting.label_ticks(ax, widths)
    ax.set_xlabel("width $m$")
    ax.set_ylabel("risk at T = 500")
    ax.set_title(f"n = {N}, d = {D}, mean-field scaling; median and IQR over {size['seeds']} seeds")
    ax.legend(fontsize=8)
    fig.suptitle("Past interpolation the test risk keeps falling with width, then levels off")
    fig.tight_layout()
    past = widths >= threshold
    median_test = np.median(test, axis=1)
    claims = [
        claim("every run from the interpolation threshold fits the noisy training data (risk below half the "
              "noise level, 0.0025)",
              "training risk at T, m >= threshold", train[past].ravel(), "<", FIT),
        claim("the widest network's median test risk is at least 30 % below the threshold width's",
              "median test risk, widest / threshold", median_test[-1] / median_test[widths == threshold][0], "<", 0.7),
    ]
    falling = (widths >= 2 * threshold) & (widths <= 1024)
    claims.append(claim("from twice the threshold to m = 1024 each wider network's median test risk is below the "
                        "narrower one's (the classical U-curve would have it rise past interpolation)",
                        "median test risk, each width / the previous one", median_test[falling][1:]
                        / median_test[falling][:-1], "<", 1.0))
    if widths[-2] >= 1024:        # the quick sizes stop before the plateau and do not claim it
        claims.append(claim("the test risk levels off: the two widest widths' medians differ by under 4 %",
                            "median test risk, widest / second widest",
                            median_test[-1] / median_test[-2], "in", [0.96, 1.04]))
    numbers = {"widths": widths, "interpolation_threshold": threshold, "train_risk": train, "test_risk": test}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(int(widths[0]), 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
