"""With quadratic activation and weight decay, gradient descent from random initialisation
reaches zero training risk on generic targets in every run from one neuron above the width at
which an interpolating solution first exists, well below Du & Lee's sufficient m >= sqrt(2 n); at
that capacity width itself only some runs get there within the horizon.

Source: Du & Lee (2018), On the power of over-parametrization in neural networks with quadratic
activation.

f(x) = (1/m) sum_i a_i (w_i . x)^2 = x^T M x with M = (1/m) sum_i a_i w_i w_i^T of rank <= m, both
layers trained, weight decay lam = 1e-4, n generic targets y ~ N(0, 1) on x ~ N(0, I/d). A
symmetric matrix of rank m has m d - m (m - 1)/2 degrees of freedom: below n the global minimum is
positive (shaded), above it zero training risk is reachable; the weight decay leaves a floor far
below the success threshold (final risk < 1e-3 of the initial one).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.claims import claim
from meanfield.figures import scenario_main

SETTING = "d = 20, n = 100, m = 3-16, 6 seeds (full mode)"
QUICK = {"d": 8, "n": 20, "widths": [1, 2, 3, 4, 6], "seeds": 3, "t_end": 3000.0}
FULL = {"d": 20, "n": 100, "widths": [3, 4, 5, 6, 7, 8, 10, 12, 16], "seeds": 6, "t_end": 2000.0}
SUCCESS = 1e-3        # final training risk below this fraction of the initial one
LAM = 1e-4
ROUND_OFF = 1e-16     # a relative risk below this is zero to round-off and is drawn on this line


def config(size, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": size["d"], "activation": "quadratic", "scaling": "mean_field", "train": "both"},
        init={"w_law": "gaussian", "a_law": "gaussian"},
        data={"kind": "arrays"},
        flow={"dt": 0.1, "t_end": size["t_end"], "lam": LAM},
        record={"n_records": 30, "snapshots": False})


def capacity_width(d, n):
    """The smallest m with m d - m (m - 1) / 2 >= n: rank-m symmetric matrices can interpolate."""
    return next(m for m in range(1, d + 1) if m * d - m * (m - 1) // 2 >= n)


def run(quick, out):
    size = QUICK if quick else FULL
    rng = np.random.default_rng(0)
    X = rng.standard_normal((size["n"], size["d"])) / np.sqrt(size["d"])
    y = rng.standard_normal(size["n"])
    widths = np.array(size["widths"])
    runs = [[mf.simulate(config(size, int(m), seed), data=(X, y)).observables for seed in range(size["seeds"])]
            for m in widths]
    final = np.array([[o["train_risk"][-1] / o["train_risk"][0] for o in row] for row in runs])
    success = np.mean(final < SUCCESS, axis=1)
    m_capacity, m_du_lee = capacity_width(size["d"], size["n"]), np.sqrt(2 * size["n"])

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax in axes:
        ax.axvspan(widths.min() - 0.5, m_capacity - 0.5, color="0.9", label="global minimum > 0 (rank too small)")
        ax.axvline(m_du_lee, color="k", ls="--", lw=1, label=r"Du & Lee: $m \geq \sqrt{2n}$")
        ax.set_xlabel("width $m$")
    axes[0].plot(widths, success, "o-", lw=2, label="success fraction")
    axes[0].set_ylim(-0.03, 1.05)
    axes[0].set_ylabel(f"fraction of {size['seeds']} random initialisations reaching zero risk")
    at_capacity = success[widths == m_capacity]
    axes[0].set_title("zero risk reached in every run from $m_c + 1$"
                      + (f"; at $m_c$ = {m_capacity}: {at_capacity[0]:.0%} of runs" if at_capacity.size else ""))
    axes[0].legend(fontsize=8, loc="center right")
    for k in range(size["seeds"]):
        axes[1].semilogy(widths, np.maximum(final[:, k], ROUND_OFF), "o", color="0.4", ms=4)
    axes[1].axhline(ROUND_OFF, color="0.6", lw=0.8, label=f"zero to round-off (below {ROUND_OFF:g}), drawn here")
    axes[1].axhline(SUCCESS, color="C3", ls=":", label=f"success threshold {SUCCESS:g}")
    axes[1].set_ylabel(r"final training risk $R(\theta_T) / R(\theta_0)$ (each seed)")
    axes[1].set_title("training risk after gradient descent")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Quadratic activation with weight decay: d = {size['d']}, n = {size['n']} generic targets, "
                 f"{size['seeds']} random initialisations per width, horizon T = {size['t_end']:g}")
    fig.tight_layout()
    numbers = {"widths": widths, "success_fraction": success, "final_relative_risk": final,
               "capacity_width": m_capacity, "du_lee_width": m_du_lee, "success_threshold": SUCCESS}
    claims = [
        claim("below the capacity width no run reaches zero risk (its global minimum is positive: holds by "
              "construction)", "success fraction for m < m_c", success[widths < m_capacity], "<=", 0.0),
        claim("every run reaches zero risk (below 1e-3 of the initial risk) from m_c + 1 on",
              "success fraction for m > m_c", success[widths > m_capacity], ">=", 1.0),
        claim("the first width where every run succeeds is below Du & Lee's sqrt(2 n)",
              "smallest m with success fraction 1", float(widths[success >= 1.0].min(initial=10**9)), "<", m_du_lee),
    ]
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(size, int(widths[0]), 0), "numbers": numbers,
                 "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
