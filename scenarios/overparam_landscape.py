"""Over-parameterisation removes bad local minima: in Safran & Shamir's setting a student with
exactly the teacher's k0 neurons is trapped at a spurious minimum from some random initialisations
once k0 is large enough, while a student with 2 k0 neurons reaches the global minimum from every
one of them.

Source: Safran & Shamir (2018), Spurious local minima are common in two-layer ReLU neural
networks; J. Lee's lecture, after Livni, Shalev-Shwartz & Shamir (2014).

Setting of the paper: x ~ N(0, I_d) with d = k0, teacher sum_j relu(v_j . x) with k0 orthonormal
v_j, student sum_i relu(w_i . x) with its output weights fixed at +1 and only the hidden layer
trained, w_i ~ N(0, I / d), exact population risk, plain gradient flow (here: the lazy
parameterisation with a_i = sqrt(k) fixed, which is exactly that model and that flow; Euler steps
dt = 0.05 up to T). A run is classified by its own numbers: "global" when its risk at T is below
1e-5 of its initial risk (or zero to round-off), "trapped" when its risk is above 1e-3 of it and
fell by less than 1 % over the last half of the horizon (a stationary point of positive risk),
"slow" otherwise.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.claims import claim
from meanfield.figures import scenario_main

SETTING = "d = k0 = 4-12, population risk, k = k0 and 2 k0, 12 seeds (full mode)"
QUICK = {"k0s": [10], "seeds": 8, "t_end": 400.0}
FULL = {"k0s": [4, 6, 8, 10, 12], "seeds": 12, "t_end": 500.0}
GLOBAL, TRAPPED, STALLED = 1e-5, 1e-3, 0.01
FACTORS = (1, 2)
ROUND_OFF = 1e-15        # |R(T) / R(0)| below this is zero to round-off (the closed form can be -1e-16)
COLORS = {1: "tab:red", 2: "tab:blue"}


def config(k0, k, seed, t_end):
    return mf.Config(
        seed=seed,
        network={"m": k, "d": k0, "activation": "relu", "scaling": "lazy", "train": "hidden"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(k0), "a_law": "constant", "a_scale": float(np.sqrt(k))},
        data={"kind": "population", "teacher_m0": k0, "teacher_orthonormal": True},
        flow={"dt": 0.05, "t_end": t_end},
        record={"n_records": 41, "spacing": "linear", "snapshots": False})


def classify(final, decrease):
    return np.where(final < GLOBAL, "global", np.where((final > TRAPPED) & (decrease < STALLED), "trapped", "slow"))


def run(quick, out):
    size = QUICK if quick else FULL
    k0s = np.array(size["k0s"])
    final = {f: np.zeros((len(k0s), size["seeds"])) for f in FACTORS}
    decrease = {f: np.zeros_like(final[f]) for f in FACTORS}
    for f in FACTORS:
        for a, k0 in enumerate(k0s):
            for seed in range(size["seeds"]):
                risk = mf.simulate(config(int(k0), f * int(k0), seed, size["t_end"])).observables["train_risk"]
                final[f][a, seed] = risk[-1] / risk[0]
                decrease[f][a, seed] = 1 - risk[-1] / risk[len(risk) // 2] if abs(risk[len(risk) // 2]) > 0 else 1.0
    label = {f: classify(final[f], decrease[f]) for f in FACTORS}
    fraction = {f: {c: np.mean(label[f] == c, axis=1) for c in ("global", "slow", "trapped")} for f in FACTORS}

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
    width = 0.38
    for j, f in enumerate(FACTORS):
        name = "k = k0" if f == 1 else f"k = {f} k0"
        x = np.arange(len(k0s)) + (j - 0.5) * width
        axes[0].bar(x, fraction[f]["trapped"], width, color=COLORS[f], label=f"{name}: trapped")
        axes[0].bar(x, fraction[f]["slow"], width, bottom=fraction[f]["trapped"], color=COLORS[f], alpha=0.35,
                    label=f"{name}: slow")
        jitter = np.linspace(-0.12, 0.12, size["seeds"])
        for a in range(len(k0s)):
            shown = np.maximum(final[f][a], ROUND_OFF)
            axes[1].semilogy(x[a] + jitter, shown, "o", color=COLORS[f], ms=4, alpha=0.8,
                             label=name if a == 0 else None)
    for ax in axes:
        ax.set_xticks(np.arange(len(k0s)), [f"k0 = {k}" for k in k0s])
        ax.set_xlabel("teacher width $k_0$ (= input dimension d)")
    axes[0].set_ylabel(f"fraction of {size['seeds']} random initialisations")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title("runs not at the global minimum at T (the rest are global)")
    axes[0].legend(fontsize=8)
    axes[1].axhline(TRAPPED, color="k", ls=":", lw=1, label=f"trapped above {TRAPPED:g} (if stalled)")
    axes[1].axhline(GLOBAL, color="k", ls="--", lw=1, label=f"global below {GLOBAL:g}")
    axes[1].axhline(ROUND_OFF, color="0.5", lw=0.8, label=f"zero to round-off (|R| < {ROUND_OFF:g}), drawn here")
    axes[1].set_ylabel(r"$R(\theta_T) / R(\theta_0)$, each run")
    axes[1].set_title("trapped runs hold ~1e-3 to 1e-2 of the risk")
    axes[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)   # below: hides no run
    fig.suptitle(f"Safran & Shamir's setting (outputs fixed at +1, hidden layer trained, orthonormal teacher): "
                 f"k = k0 is sometimes trapped, k = 2 k0 never (T = {size['t_end']:g})")
    fig.tight_layout()
    claims = [
        claim("k = 2 k0: every run reaches the global minimum, at every k0", "global fraction at k = 2 k0",
              fraction[2]["global"], ">=", 1.0),
        claim(f"k = k0: some runs are trapped at a spurious minimum at k0 = {k0s[-1]}",
              f"trapped fraction at k = k0 = {k0s[-1]}", fraction[1]["trapped"][-1], ">", 0.0),
        claim("k = k0: the trapped runs are stationary (risk fell by under 1 % over the last half)",
              "relative decrease over [T/2, T] of trapped runs (k = k0)",
              decrease[1][label[1] == "trapped"], "<", STALLED),
    ]
    numbers = {"k0s": k0s, "thresholds": {"global": GLOBAL, "trapped": TRAPPED, "stalled": STALLED},
               "fractions": {f"k = {f} k0": fraction[f] for f in FACTORS},
               "labels": {f"k = {f} k0": label[f] for f in FACTORS},
               "final_relative_risk": {f"k = {f} k0": final[f] for f in FACTORS},
               "relative_decrease_last_half": {f"k = {f} k0": decrease[f] for f in FACTORS}}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(int(k0s[0]), int(k0s[0]), 0, size["t_end"]),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
