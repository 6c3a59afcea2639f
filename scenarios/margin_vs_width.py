"""Regularised logistic training of a two-layer ReLU network reaches the regularised optimum's
normalised margin in every run from m = 16 on, the same at every width (to 0.5 %), as the
optimum's margin cannot fall with width; narrower networks can stop short (two neurons never
separate the XOR clusters), some leaving a training point with no active neuron (f = 0: margin 0,
drawn hollow). At the widest width the margin rises as the weight decay lambda decreases from 0.1
and settles (on the max margin, by Wei et al.'s theorem).

Source: Wei, Lee, Liu & Ma (2019), Regularization matters: generalization and optimization of
neural nets v.s. their induced kernel (the normalised margin of the regularised optimum tends to
the max margin as lambda -> 0, and the max margin does not decrease with width).

Data: n = 40 points in four XOR clusters (centres (±1, ±1), noise 0.25, label sign(x1 x2)) with a
bias input. Student: mean-field scaling, both layers trained, Gaussian initialisation, logistic
loss plus weight decay lambda |theta|^2 / 2, Euler steps dt = 0.1 up to T = min(30 / lambda, 5000)
(the regularised flow's time scale is 1 / lambda). Normalised margin: min_j y_j f(x_j) / ((1/m)
sum_i |theta_i|^2), invariant to theta -> c theta for this 2-homogeneous model; negative when the
data are not separated. How this differs from the paper: the optimum is reached by gradient flow
from a random start, not computed; the limit as lambda -> 0 is read off the runs.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim
from meanfield.tools.figures import scenario_main

SETTING = "d = 2 (+ bias), n = 40, m = 2-128, lambda = 1e-3-0.1, 3 seeds (full mode)"
N = 40
QUICK = {"widths": [2, 16, 64], "lams": [1e-1, 1e-2, 1e-3], "seeds": 2}
FULL = {"widths": [2, 4, 8, 16, 32, 128], "lams": [1e-1, 3e-2, 1e-2, 3e-3, 1e-3], "seeds": 3}
SAME_FROM = 16           # the width from which every run reaches the optimum's margin
DEAD = 1e-9              # |margin| below this: a training point with no active neuron (f = 0)


def clusters(n, rng):
    """(X (n, 2), y (n,)): centres (±1, ±1) with noise 0.25, y = sign(x1 x2)."""
    signs = rng.choice([-1.0, 1.0], (n, 2))
    return signs + 0.25 * rng.standard_normal((n, 2)), signs[:, 0] * signs[:, 1]


def config(m, lam, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 3, "bias": True, "activation": "relu", "scaling": "mean_field"},
        init={"w_law": "gaussian", "a_law": "gaussian"},
        data={"kind": "arrays", "test_fraction": 0.0},
        flow={"loss": "logistic", "dt": 0.1, "t_end": min(30 / lam, 5000.0), "lam": lam},
        record={"n_records": 10, "diagnostics": ["margins"], "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    widths, lams = np.array(size["widths"]), np.array(size["lams"])
    X, y = clusters(N, np.random.default_rng(0))
    margin = np.zeros((len(lams), len(widths), size["seeds"]))
    for i, lam in enumerate(lams):
        for j, m in enumerate(widths):
            for seed in range(size["seeds"]):
                obs = mf.simulate(config(int(m), float(lam), seed), data=(X, y)).observables
                margin[i, j, seed] = obs["normalized_margin"][-1]
    dead = np.abs(margin) < DEAD
    median = np.median(margin, axis=2)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    shades = plt.cm.viridis(np.linspace(0.9, 0.1, len(lams)))          # darker: smaller lambda
    markers = "os^Dv"
    for k, (shade, lam, row, runs) in enumerate(zip(shades, lams, median, margin)):
        axes[0].semilogx(widths, row, markers[k % 5] + "-", color=shade, lw=3.0 - 0.4 * k, ms=8 - k,
                         label=rf"$\lambda$ = {lam:g}")
        axes[0].fill_between(widths, runs.min(axis=1), runs.max(axis=1), color=shade, alpha=0.15, lw=0)
        fell = np.nonzero(dead[k])
        axes[0].plot(widths[fell[0]], runs[fell], markers[k % 5], mfc="white", color=shade, ms=10 - k,
                     label="a point with no active neuron (f = 0)" if k == len(lams) - 1 and dead.any() else None)
    axes[0].axhline(0, color="k", lw=0.6)
    plotting.label_ticks(axes[0], widths)
    axes[0].set_xlabel("width $m$")
    axes[0].set_ylabel(r"normalised margin $\gamma$ at T")
    axes[0].set_title(f"the same margin from m = {SAME_FROM} (median, range over {size['seeds']} seeds; hollow: "
                      "runs with margin 0)", fontsize=10)
    axes[0].legend(fontsize=8, title="weight decay")
    axes[1].semilogx(lams, median[:, -1], "o-", color="tab:blue", lw=2, label=f"m = {widths[-1]} (median)")
    axes[1].axhline(median[-1, -1], color="k", ls="--", lw=1, label=rf"smallest $\lambda$: {median[-1, -1]:.4f}")
    plotting.label_ticks(axes[1], lams)
    axes[1].invert_xaxis()
    axes[1].set_xlabel(r"weight decay $\lambda$ (decreasing to the right)")
    axes[1].set_ylabel(r"normalised margin $\gamma$ at T")
    axes[1].set_title(r"as $\lambda \to 0$ the margin rises to a limit")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Regularised logistic loss, XOR clusters (n = {N}), mean-field ReLU network: the optimum's margin, "
                 f"the same at every width from m = {SAME_FROM},\nrises as the weight decay falls and settles")
    fig.tight_layout()
    widest = median[:, -1]
    same = margin[:, widths >= SAME_FROM]                                   # (lams, widths from SAME_FROM, seeds)
    claims = [
        claim(f"from m = {SAME_FROM} every run reaches the same margin at each lambda (within 0.5 % of the widest "
              "width's median)", f"max |margin / widest median - 1| over runs from m = {SAME_FROM}, per lambda",
              np.abs(same / widest[:, None, None] - 1).max(axis=(1, 2)), "<", 5e-3),
        claim("at every lambda the widest network's median margin is at least every narrower width's",
              "max over narrower widths of (median margin - widest's)", (median[:, :-1] - median[:, -1:]).max(axis=1),
              "<=", 1e-4, kind="construction",
              because="the optimum's margin cannot fall with width (a narrower network is a wider one with zero "
                      "neurons) and the runs reach the optimum (the first claim)"),
        claim("two neurons never separate the XOR clusters (margin <= 0 at every lambda and seed)",
              "largest margin at m = 2", margin[:, widths == 2].max(), "<=", 1e-12),
        claim("at the widest width the margin rises as lambda decreases from its largest value",
              "margin at the second-largest lambda - at the largest (widest m)", widest[1] - widest[0], ">", 0.0),
        claim("and settles: the two smallest lambdas' margins differ by under 0.5 %",
              "margin at the smallest / second-smallest lambda (widest m)", widest[-1] / widest[-2], "in",
              [0.995, 1.005]),
    ]
    numbers = {"widths": widths, "lams": lams, "normalized_margin": margin, "median": median,
               "margin_zero": dead}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": config(int(widths[0]), float(lams[0]), 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
