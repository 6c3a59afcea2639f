"""Over-parameterisation removes bad local minima: a student with exactly the teacher's k0
neurons gets trapped from most random initialisations, one with 2 k0 neurons reaches
near-zero risk from all of them.

Source: J. Lee's lecture, after Livni, Shalev-Shwartz & Shamir (2014) and Safran & Shamir (2018).

Exact population risk, x ~ N(0, I_d) with d = k0, a teacher of k0 orthonormal ReLU neurons with
unit output weights; student trained on both layers under mean-field scaling from a Gaussian
initialisation. A run succeeds when its final risk is below 1e-3 of its initial risk.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.figures import scenario_main

QUICK = {"k0s": [4, 6], "seeds": 6, "t_end": 600.0}
FULL = {"k0s": [4, 6, 8, 10, 12], "seeds": 16, "t_end": 2000.0}
SUCCESS = 1e-3
FACTORS = (1, 2)


def config(k0, k, seed, t_end):
    return mf.Config(
        seed=seed,
        network={"m": k, "d": k0, "activation": "relu", "scaling": "mean_field"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(k0), "a_law": "gaussian"},
        data={"kind": "population", "teacher_m0": k0, "teacher_orthonormal": True},
        flow={"dt": 0.1, "t_end": t_end},
        record={"n_records": 20, "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    k0s = np.array(size["k0s"])
    final = {f: np.array([[(lambda o: o["train_risk"][-1] / o["train_risk"][0])(
                 mf.simulate(config(int(k0), f * int(k0), seed, size["t_end"])).observables)
                 for seed in range(size["seeds"])] for k0 in k0s]) for f in FACTORS}
    success = {f: np.mean(final[f] < SUCCESS, axis=1) for f in FACTORS}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    width = 0.35
    for j, f in enumerate(FACTORS):
        label = "k = k0" if f == 1 else f"k = {f} k0"
        axes[0].bar(np.arange(len(k0s)) + (j - 0.5) * width, success[f], width, label=label)
        for a, k0 in enumerate(k0s):
            axes[1].semilogy(np.full(size["seeds"], a + (j - 0.5) * width), np.maximum(final[f][a], 1e-14), "o",
                             color=f"C{j}", ms=4, alpha=0.7, label=label if a == 0 else None)
    for ax in axes:
        ax.set_xticks(np.arange(len(k0s)), [f"k0 = {k}" for k in k0s])
        ax.set_xlabel("teacher width $k_0$ (= input dimension d)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"success fraction over {size['seeds']} seeds")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title("trapped at k = k0, global at k = 2 k0")
    axes[1].axhline(SUCCESS, color="k", ls=":", lw=1)
    axes[1].set_ylabel(r"final risk $R(\theta_T) / R(\theta_0)$ (each seed)")
    axes[1].set_title("spurious minima hold ~1e-2 of the risk")
    fig.suptitle("Over-parameterisation and the landscape: a student twice the teacher's width escapes every trap")
    fig.tight_layout()
    numbers = {"k0s": k0s, "success_threshold": SUCCESS,
               "success_fraction": {f"k = {f} k0": success[f] for f in FACTORS},
               "final_relative_risk": {f"k = {f} k0": final[f] for f in FACTORS}}
    return fig, {"seed": list(range(size["seeds"])), "config": config(int(k0s[0]), int(k0s[0]), 0, size["t_end"]),
                 "numbers": numbers}


if __name__ == "__main__":
    scenario_main(__file__, run)
