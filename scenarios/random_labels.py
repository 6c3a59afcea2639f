"""A wide network fits random labels too, but more slowly than true labels, as the spectrum of its
limit tangent kernel predicts (the network's risk stays within 0.05 of the H_inf kernel flow's,
from 0.5): true labels live on the top eigenvectors of H_inf.

Source: Zhang et al. (2017), as explained by Arora, Du, Hu, Li & Wang (2019) and Du et al. (2019).

Same inputs, two label vectors of equal norm (a teacher's, normalised; random ±1). Lazy scaling,
Du et al.'s setting (a_i = ±1 fixed, symmetric init so u_0 = 0). The kernel-flow prediction is
R(t) = (1/2n) sum_k exp(-2 lambda_k t / n) (v_k . y)^2 with (lambda_k, v_k) the eigenpairs of H_inf.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim
from meanfield.model import ntk
from meanfield.tools.figures import scenario_main

SETTING = "d = 10, n = 100, m = 4096, 3 seeds (full mode)"
QUICK = {"n": 50, "m": 512, "t_end": 2000.0, "dt": 2.0}
FULL = {"n": 100, "m": 4096, "t_end": 6000.0, "dt": 2.0}
D = 10


SEEDS = (0, 1, 2)        # initialisations of the network (the data and labels are fixed)


def config(size, seed=0):
    return mf.Config(
        seed=seed,
        network={"m": size["m"], "d": D, "activation": "relu", "scaling": "lazy", "train": "hidden"},
        init={"w_law": "gaussian", "a_law": "rademacher", "symmetric": True},
        data={"kind": "teacher", "n": size["n"], "inputs": "sphere", "teacher_m0": 2},
        flow={"dt": size["dt"], "t_end": size["t_end"]},
        record={"n_records": 60, "spacing": "geometric", "snapshots": False})


def time_to(t, risk, fraction):
    """First recorded time at which risk <= fraction * risk(0) (None if never)."""
    hit = np.nonzero(risk <= fraction * risk[0])[0]
    return float(t[hit[0]]) if len(hit) else None


def run(quick, out):
    size = QUICK if quick else FULL
    cfg = config(size)
    data = mf.make_data(cfg, np.random.default_rng(0))          # one data set; the seeds vary the network
    n = size["n"]
    labels = {"true labels (teacher)": data.y / np.sqrt(np.mean(data.y ** 2)),
              "random labels (±1)": np.random.default_rng(1).choice([-1.0, 1.0], n)}
    evals, evecs = np.linalg.eigh(ntk.h_infinity(data.X))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    numbers = {}
    colors = {"true labels (teacher)": "tab:blue", "random labels (±1)": "tab:red"}
    for name, y in labels.items():
        energy = (evecs.T @ y) ** 2
        per_seed = {"time_to_10_percent": [], "time_to_1_percent": [], "final_risk_fraction": [],
                    "max_gap_to_kernel_prediction": []}
        for seed in SEEDS:
            res = mf.simulate(config(size, seed), data=(data.X, y))
            risk = res.observables["train_risk"]
            predicted = 0.5 / n * np.exp(-2 * np.outer(res.t, evals) / n) @ energy
            axes[0].loglog(res.t[1:], risk[1:], lw=2 if seed == 0 else 0.8, color=colors[name],
                           label=f"{name}: network, m = {size['m']}, {len(SEEDS)} seeds" if seed == 0 else None)
            for key, value in (("time_to_10_percent", time_to(res.t, risk, 0.1)),
                               ("time_to_1_percent", time_to(res.t, risk, 0.01)),
                               ("final_risk_fraction", risk[-1] / risk[0]),
                               ("max_gap_to_kernel_prediction", float(np.max(np.abs(risk - predicted))))):
                per_seed[key].append(value)
        axes[0].loglog(res.t[1:], predicted[1:], "--", color="k", lw=0.9)
        axes[1].plot(np.arange(1, n + 1), np.cumsum(energy) / np.sum(energy), color=colors[name], lw=2, label=name)
        numbers[name] = {**per_seed,
                         "energy_on_top_10_percent_eigenvectors":
                             float(np.sum(energy[: max(1, n // 10)]) / np.sum(energy))}
    axes[0].plot([], [], "--", color="k", lw=0.9, label="kernel flow with $H^\\infty$")
    axes[0].set_xlabel("time $t$ (flow units)")
    axes[0].set_ylabel(r"training risk $R(\theta_t)$")
    axes[0].set_title("both are fitted; random labels take longer")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("eigenvector index $k$ of $H^\\infty$ (largest eigenvalue first)")
    axes[1].set_ylabel(r"cumulative fraction of $\|y\|^2$")
    axes[1].set_title("true labels sit on the fast (top) eigendirections")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Random vs true labels, n = {n}, d = {D}: training speed is set by the kernel spectrum")
    fig.tight_layout()
    numbers["eigenvalues"] = {"max": float(evals[0]), "min": float(evals[-1])}
    true, rand = numbers["true labels (teacher)"], numbers["random labels (±1)"]
    slower = [r / t if r is not None and t is not None else np.nan
              for r, t in zip(rand["time_to_10_percent"], true["time_to_10_percent"])]
    claims = [
        claim("random labels take more than twice as long to reach 10 % of the initial risk (every seed)",
              "time to 10 % (random) / (true)", slower, ">", 2.0),
        claim("both are fitted: risk below 1 % (true) and 10 % (random) of its initial value (every seed)",
              "final risk fraction / its threshold (true, random)",
              np.concatenate([np.array(true["final_risk_fraction"]) / 0.01,
                              np.array(rand["final_risk_fraction"]) / 0.1]),
              "<", 1.0),
        claim("true labels put over twice the share of their energy on the top 10 % eigenvectors of H_inf",
              "energy share on top 10 % eigenvectors, true / random",
              true["energy_on_top_10_percent_eigenvectors"] / rand["energy_on_top_10_percent_eigenvectors"], ">", 2.0),
        claim("the network's risk stays within 0.05 of the kernel-flow prediction (risks start at 0.5; every seed)",
              "max |R(t) - R_kernel(t)| (true, random)",
              true["max_gap_to_kernel_prediction"] + rand["max_gap_to_kernel_prediction"], "<", 0.05),
    ]
    return fig, {"setting": SETTING, "seed": 0, "config": cfg, "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
