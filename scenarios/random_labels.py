"""A wide network fits random labels too, but more slowly than true labels, as the spectrum of its
limit tangent kernel predicts: true labels live on the top eigenvectors of H_inf. The network
follows H_inf's kernel flow within 35 % while its risk is above 10 % of its start; later, when the
risk is carried by the smallest eigenvalues, it falls more slowly than either kernel flow predicts
(H_inf's or its own initial kernel's), by far more for random labels (about 18x at T) than for true
labels (under 2x).

Source: Zhang et al. (2017), as explained by Arora, Du, Hu, Li & Wang (2019) and Du et al. (2019).

Same inputs, two label vectors of equal norm (a teacher's, normalised; random ±1). Lazy scaling,
Du et al.'s setting (a_i = ±1 fixed, symmetric init so u_0 = 0), Euler steps dt = 2. The kernel-flow
predictions are Euler steps of the same size, u_k = y + (I - dt H / n)^k (u_0 - y), with H = H_inf
and with H = H(0), the network's own initial tangent kernel. Their relative gap R / R_kernel is drawn
over time: the late gap is not the initial kernel's error (H(0) does not close it) but the kernel's
O(m^-1/2) change along training, which matters most for the slowest modes.
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
EARLY = 0.1              # "early": while H_inf's predicted risk is above this fraction of R(0)
FOLLOWS = 1.35           # ... the network's risk is within this factor of it (measured: at most 1.30)
COLORS = {"true labels (teacher)": "tab:blue", "random labels (±1)": "tab:red"}


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


def kernel_risk(H, y, t, dt):
    """The training risk of Euler kernel gradient descent with H from u_0 = 0, at the times t."""
    u = ntk.kernel_gradient_descent(H, y, np.zeros(len(y)), np.round(t / dt), dt)
    return 0.5 * np.mean((u - y) ** 2, axis=1)


def run(quick, out):
    size = QUICK if quick else FULL
    cfg = config(size)
    data = mf.make_data(cfg, np.random.default_rng(0))          # one data set; the seeds vary the network
    n = size["n"]
    labels = {"true labels (teacher)": data.y / np.sqrt(np.mean(data.y ** 2)),
              "random labels (±1)": np.random.default_rng(1).choice([-1.0, 1.0], n)}
    H_inf = ntk.h_infinity(data.X)
    evals, evecs = np.linalg.eigh(H_inf)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    fig, axes = plt.subplots(1, 3, figsize=(19, 5))
    numbers = {}
    for name, y in labels.items():
        energy = (evecs.T @ y) ** 2
        per_seed = {key: [] for key in ("time_to_10_percent", "final_risk_fraction", "early_ratio_max",
                                         "ratio_at_T", "ratio_at_T_initial_kernel")}
        for seed in SEEDS:
            res = mf.simulate(config(size, seed), data=(data.X, y))
            t, risk = res.t, res.observables["train_risk"]
            limit = kernel_risk(H_inf, y, t, size["dt"])
            initial = kernel_risk(ntk.tangent_kernel(res.theta0, data.X, res.config.network), y, t, size["dt"])
            early = limit > EARLY * limit[0]
            ratio = risk / limit
            per_seed["time_to_10_percent"].append(time_to(t, risk, 0.1))
            per_seed["final_risk_fraction"].append(risk[-1] / risk[0])
            per_seed["early_ratio_max"].append(float(np.exp(np.abs(np.log(ratio[early])).max())))
            per_seed["ratio_at_T"].append(float(ratio[-1]))
            per_seed["ratio_at_T_initial_kernel"].append(float(risk[-1] / initial[-1]))
            first = seed == SEEDS[0]
            axes[0].loglog(t[1:], risk[1:], lw=2 if first else 0.8, color=COLORS[name],
                           label=f"{name}: network, m = {size['m']}, {len(SEEDS)} seeds" if first else None)
            axes[1].loglog(t[1:], ratio[1:], lw=2 if first else 0.8, color=COLORS[name],
                           label=f"{name}: against $H^\\infty$" if first else None)
            axes[1].loglog(t[1:], (risk / initial)[1:], ":", lw=1.5 if first else 0.6, color=COLORS[name],
                           label=f"{name}: against its own $H(0)$" if first else None)
        axes[0].loglog(t[1:], limit[1:], "--", color="k", lw=0.9)
        axes[2].plot(np.arange(1, n + 1), np.cumsum(energy) / np.sum(energy), color=COLORS[name], lw=2, label=name)
        numbers[name] = {**per_seed, "energy_on_top_10_percent_eigenvectors":
                         float(np.sum(energy[: max(1, n // 10)]) / np.sum(energy))}
    true, rand = numbers["true labels (teacher)"], numbers["random labels (±1)"]
    axes[0].plot([], [], "--", color="k", lw=0.9, label=r"kernel flow with $H^\infty$")
    axes[0].set_xlabel("time $t$ (flow units)")
    axes[0].set_ylabel(r"training risk $R(\theta_t)$")
    axes[0].set_title("both are fitted; random labels take longer")
    axes[0].legend(fontsize=8)
    axes[1].axhspan(1 / FOLLOWS, FOLLOWS, color="0.9", lw=0, label=f"within x{FOLLOWS:g}")
    axes[1].set_xlabel("time $t$ (flow units)")
    axes[1].set_ylabel(r"$R(\theta_t) / R_{\mathrm{kernel}}(t)$")
    axes[1].set_title(f"the gap to the kernel flow: at T x{np.median(rand['ratio_at_T']):.0f} (random), "
                      f"x{np.median(true['ratio_at_T']):.1f} (true), medians")
    axes[1].legend(fontsize=7)
    axes[2].plot([0, n], [0, 1], color="0.5", lw=1, ls="--", label="k / n (energy spread evenly)")
    axes[2].set_xlabel(r"eigenvector index $k$ of $H^\infty$ (largest eigenvalue first)")
    axes[2].set_ylabel(r"cumulative fraction of $\|y\|^2$")
    axes[2].set_title("true labels sit on the fast (top) eigendirections")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Random vs true labels, n = {n}, d = {D}: training speed is set by the kernel spectrum; late, the "
                 "slowest modes fall more slowly than the kernel flow")
    fig.tight_layout()
    numbers["eigenvalues"] = {"max": float(evals[0]), "min": float(evals[-1])}
    slower = [r / t if r is not None and t is not None else np.nan
              for r, t in zip(rand["time_to_10_percent"], true["time_to_10_percent"])]
    claims = [
        claim("random labels take more than twice as long to reach 10 % of the initial risk (every seed)",
              "time to 10 % (random) / (true)", slower, ">", 2.0),
        claim("both are fitted: risk below 1 % (true) and 10 % (random) of its initial value (every seed)",
              "final risk fraction / its threshold (true, random)",
              np.concatenate([np.array(true["final_risk_fraction"]) / 0.01,
                              np.array(rand["final_risk_fraction"]) / 0.1]), "<", 1.0),
        claim("true labels put over twice the share of their energy on the top 10 % eigenvectors of H_inf",
              "energy share on top 10 % eigenvectors, true / random",
              true["energy_on_top_10_percent_eigenvectors"] / rand["energy_on_top_10_percent_eigenvectors"], ">", 2.0),
        claim(f"while H_inf's predicted risk is above {EARLY:g} of R(0) the network's is within a factor {FOLLOWS:g} "
              "of it (every seed, both labels)", "max over those records of max(R / R_inf, R_inf / R)",
              true["early_ratio_max"] + rand["early_ratio_max"], "<", FOLLOWS),
        claim("later the network falls more slowly than the kernel flow, by more for random labels than for true "
              "labels (the smallest random-label gap at T above the largest true-label one)",
              "min R / R_inf at T (random) over max (true)", min(rand["ratio_at_T"]) / max(true["ratio_at_T"]),
              ">", 1.0),
        claim("the late gap is not the initial kernel's error: against the network's own H(0) it stays over half "
              "of the gap to H_inf at T (random labels, every seed)", "(R / R_H(0)) / (R / R_inf) at T, random",
              np.array(rand["ratio_at_T_initial_kernel"]) / np.array(rand["ratio_at_T"]), ">", 0.5),
    ]
    return fig, {"setting": SETTING, "seed": list(SEEDS), "config": cfg, "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
