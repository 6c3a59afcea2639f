"""With quadratic activation, gradient descent from random initialisation ends certified globally
optimal on generic targets in every run from one neuron above the width m_c at which an
interpolating solution first exists, well below Du & Lee's sufficient m >= sqrt(2 n). Below m_c no
run can be certified (its global minimum is positive); the runs there that reach a critical point
within the horizon are local minima the certificate rejects, the others are still moving
(unresolved), as are the runs at m_c itself.

Source: Du & Lee (2018), On the power of over-parametrization in neural networks with quadratic
activation; the certificate: Chizat & Bach (2018).

f(x) = (1/m) sum_i a_i (w_i . x)^2 = x^T M x with M = (1/m) sum_i a_i w_i w_i^T of rank <= m, both
layers trained, n generic targets y ~ N(0, 1) on x ~ N(0, I/d), plain gradient descent (Euler,
dt = 0.1) to T. A symmetric matrix of rank m has m d - m (m - 1)/2 degrees of freedom: below n
the global minimum is positive (shaded), above it zero training risk is reachable. Each run is
labelled by ``landscape.verdict``: Levenberg–Marquardt steps polish it to the nearby critical
point, and the mean-field certificate calls it "global" when psi(w, a) = C a w^T G w >= 0 on the
unit sphere, G = E[r x x^T], i.e. when no quadratic form correlates with the residual; otherwise
its Hessian (the O(p, q) mixing of neurons and the rescalings factored out) says "trapped",
"saddle" or "degenerate", or "unresolved" when no critical point is near. Unlike the paper, no
weight decay: with both layers trained and this 2-homogeneous activation a weight decay makes
the measure relaxation unbounded below, so no run could be certified (docs/conventions.md).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim
from meanfield.theory import landscape
from meanfield.tools.figures import scenario_main, simulate_all

SETTING = "d = 20, n = 100, m = 3-16, 6 seeds (full mode)"
QUICK = {"d": 8, "n": 20, "widths": [2, 3, 4, 6], "seeds": 2, "t_end": 3000.0}
FULL = {"d": 20, "n": 100, "widths": [3, 4, 5, 6, 7, 8, 10, 12, 16], "seeds": 6, "t_end": 2000.0}
ROUND_OFF = 1e-16     # a relative risk below this is zero to round-off and is drawn on this line
LABELS = {"global": "tab:green", "trapped": "tab:red", "saddle": "tab:orange", "degenerate": "tab:purple",
          "unresolved": "0.6"}


def config(size, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": size["d"], "activation": "quadratic", "scaling": "mean_field", "train": "both"},
        init={"w_law": "gaussian", "a_law": "gaussian"},
        data={"kind": "arrays"},
        flow={"dt": 0.1, "t_end": size["t_end"]},
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
    final = np.zeros((len(widths), size["seeds"]))
    polished = np.zeros_like(final)
    label = np.empty(final.shape, dtype=object)
    results = iter(simulate_all([config(size, int(m), seed) for m in widths for seed in range(size["seeds"])], (X, y)))
    for i, m in enumerate(widths):
        for seed in range(size["seeds"]):
            res = next(results)
            risk = res.observables["train_risk"]
            label[i, seed], point, _ = landscape.verdict(res)
            final[i, seed] = risk[-1] / risk[0]
            polished[i, seed] = landscape.Landscape.of(res).objective(point.theta) / risk[0]
    fraction = {name: np.mean(label == name, axis=1) for name in LABELS}
    m_capacity, m_du_lee = capacity_width(size["d"], size["n"]), np.sqrt(2 * size["n"])

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax in axes:
        ax.axvspan(widths.min() - 0.5, m_capacity - 0.5, color="0.92", label="global minimum > 0 (rank too small)")
        ax.axvline(m_du_lee, color="k", ls="--", lw=1, label=r"Du & Lee: $m \geq \sqrt{2n}$")
        ax.set_xlabel("width $m$")
    bottom = np.zeros(len(widths))
    for name, color in LABELS.items():
        axes[0].bar(widths, fraction[name], 0.7, bottom=bottom, color=color,
                    label=name if fraction[name].any() else None)
        bottom += fraction[name]
    axes[0].set_ylim(0, 1.05)
    axes[0].set_ylabel(f"fraction of {size['seeds']} random initialisations")
    at_capacity = fraction["global"][widths == m_capacity]
    axes[0].set_title("certified global in every run from $m_c + 1$"
                      + (f"; at $m_c$ = {m_capacity}: {at_capacity[0]:.0%}" if at_capacity.size else ""))
    axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    for name, color in LABELS.items():
        rows, seeds = np.nonzero(label == name)
        if len(rows):
            axes[1].semilogy(widths[rows], np.maximum(final[rows, seeds], ROUND_OFF), "o", color=color, ms=4)
    axes[1].axhline(ROUND_OFF, color="0.6", lw=0.8, label=f"zero to round-off (below {ROUND_OFF:g}), drawn here")
    axes[1].set_ylabel(r"training risk at T, $R(\theta_T) / R(\theta_0)$")
    axes[1].set_title("training risk after gradient descent (each run, coloured by label)")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"Quadratic activation, d = {size['d']}, n = {size['n']} generic targets: every run certified global "
                 f"from $m_c + 1$ = {m_capacity + 1}, below Du & Lee's $\\sqrt{{2n}}$;\n below $m_c$ the runs that "
                 f"reach a critical point are local minima ({size['seeds']} initialisations per width, T = "
                 f"{size['t_end']:g}, labels by polish + certificate)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    numbers = {"widths": widths, "fractions": fraction, "labels": label.tolist(), "final_relative_risk": final,
               "polished_relative_objective": polished, "capacity_width": m_capacity, "du_lee_width": m_du_lee}
    certified = label == "global"
    below = widths < m_capacity
    resolved_below = label[below][label[below] != "unresolved"]
    claims = [
        claim("below the capacity width no run is certified global", "certified fraction for m < m_c",
              fraction["global"][below], "<=", 0.0, kind="construction",
              because="a rank-m quadratic form cannot interpolate n generic targets below m_c: the global minimum "
                      "is positive, so the certificate cannot hold"),
        claim("every run is certified global from m_c + 1 on", "certified fraction for m > m_c",
              fraction["global"][widths > m_capacity], ">=", 1.0),
        claim("below m_c every run that reaches a critical point within the horizon is a local minimum (trapped), "
              "none a saddle", "fraction trapped among the resolved runs below m_c",
              float(np.mean(resolved_below == "trapped")) if resolved_below.size else float("nan"), ">=", 1.0),
        claim("the first width where every run is certified is below Du & Lee's sqrt(2 n)",
              "smallest m with certified fraction 1", float(widths[fraction["global"] >= 1.0].min(initial=10**9)),
              "<", m_du_lee, kind="construction",
              because=f"implied by the second claim: m_c + 1 = {m_capacity + 1} < sqrt(2 n) = {m_du_lee:.1f}"),
        claim("the certificate agrees with the risk: certified runs are near zero risk (certified to 1e-6, "
              "not at the minimum)", "J / J(0) of certified runs", polished[certified], "<", 1e-4, kind="check"),
        claim("... and the trapped runs hold a positive risk", "J / J(0) of trapped runs",
              polished[label == "trapped"], ">", 1e-6, kind="check"),
    ]
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(size, int(widths[0]), 0),
                 "numbers": numbers,
                 "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
