"""Discrete gradient descent on a wide ReLU network converges linearly, under Du et al.'s bound
R(k) <= (1 - eta lambda0 / 2)^k R(0), for every step size up to 0.9 of the stability limit
eta = 2 / lambda_max(H_inf); past the limit the linear picture fails: the risk first rises above
R(0) before falling (the catapult of Lewkowycz et al. 2020).

Source: Du, Zhai, Poczos & Singh (2019), Gradient descent provably optimizes over-parameterized
neural networks (Theorem 4.1, gradient descent with a constant step size); Lewkowycz, Bahri, Dyer,
Sohl-Dickstein & Gur-Ari (2020), The large learning rate phase of deep learning: the catapult mechanism.

Setting of the paper: lazy scaling 1/sqrt(m), a_i = ±1 fixed (only w trains), w ~ N(0, I),
n = 20 unit-norm inputs in d = 10 with teacher labels, m = 4096 (2048 in quick mode), 3 seeds of
the initialisation. With the README's convention an Euler step dt is gradient descent on
R = (1/n) sum_j (f(x_j) - y_j)^2 / 2, so the predictions move by u_{k+1} - u_k ~ -(dt / n) H (u_k - y):
Du et al.'s step size on the kernel is eta = dt / n, lambda0 = lambda_min(H_inf). The theorem
asks for eta = O(lambda0 / n^2); the bound is checked here well beyond that, up to 0.9 of the
stability limit, where the kernel model still satisfies it. How this differs from the paper: m
is far below its sufficient width, and the fractions of the stability limit are chosen here.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim
from meanfield.model import ntk
from meanfield.tools.figures import scenario_main

SETTING = "d = 10, n = 20, m = 4096, 5 step sizes, 3 seeds (full mode)"
N, D, STEPS = 20, 10, 400
FRACTIONS = (0.05, 0.2, 0.5, 0.9, 1.1)          # of the stability limit 2 / lambda_max(H_inf)
QUICK = {"m": 2048, "seeds": 2}
FULL = {"m": 4096, "seeds": 3}


def config(m, seed, dt):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": D, "activation": "relu", "scaling": "lazy", "train": "hidden"},
        init={"w_law": "gaussian", "a_law": "rademacher"},
        data={"kind": "teacher", "n": N, "inputs": "sphere", "teacher_m0": 5, "teacher_signs": "rademacher"},
        flow={"dt": dt, "t_end": dt * STEPS},
        record={"n_records": STEPS + 1, "spacing": "linear", "snapshots": False, "divergence_factor": 1e3})


def run(quick, out):
    size = QUICK if quick else FULL
    data = mf.make_data(config(1, 0, 1.0), np.random.default_rng(0))
    X, y = data.X, data.y
    evals = np.linalg.eigvalsh(ntk.h_infinity(X))
    lam0, lam_max = evals[0], evals[-1]
    limit = 2 / lam_max                                   # eta at which the top mode stops contracting
    risks, ratios, peak = {}, {}, {}         # peak: max_k R(k) / R(0) of each run
    for frac in FRACTIONS:
        eta = frac * limit
        curves, worst, highest = [], [], []
        for seed in range(size["seeds"]):
            res = mf.simulate(config(size["m"], seed, eta * N), data=(X, y), throw=False)
            risk = res.observables["train_risk"]
            k = np.arange(len(risk))
            bound = risk[0] * (1 - eta * lam0 / 2) ** k
            worst.append(float(np.max(risk[1:] / bound[1:])))
            highest.append(float(np.max(risk) / risk[0]))
            curves.append(risk)
        risks[frac], ratios[frac], peak[frac] = curves, worst, highest

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    shades = plt.cm.viridis(np.linspace(0.05, 0.85, len(FRACTIONS)))
    ax = axes[0]
    for shade, frac in zip(shades, FRACTIONS):
        eta = frac * limit
        for s, risk in enumerate(risks[frac]):
            ax.semilogy(np.arange(len(risk)), risk, color=shade, lw=1.4 if s == 0 else 0.8,
                        label=rf"$\eta$ = {frac:g} $\times 2/\lambda_{{max}}$" if s == 0 else None)
        if frac < 1:
            k = np.arange(STEPS + 1)
            ax.semilogy(k, risks[frac][0][0] * (1 - eta * lam0 / 2) ** k, "--", color=shade, lw=0.9)
    ax.set_ylim(1e-6, 1e2)
    ax.set_xlabel("gradient descent step $k$")
    ax.set_ylabel(r"training risk $R(k)$ (each seed)")
    ax.set_title(r"dashed: Du et al.'s bound $R(0)(1 - \eta\lambda_0/2)^k$")
    ax.legend(fontsize=8)
    ax = axes[1]
    below = [f for f in FRACTIONS if f < 1]
    for f in below:
        ax.semilogx([f] * len(ratios[f]), ratios[f], "o", color="tab:blue", ms=5)
    ax.axhline(1.0, color="k", lw=1, label="the bound")
    plotting.label_ticks(ax, below)
    ax.set_xlabel(r"step size $\eta$ as a fraction of the stability limit $2/\lambda_{max}(H^\infty)$")
    ax.set_ylabel(r"$\max_{k \geq 1} R(k) / [R(0)(1 - \eta\lambda_0/2)^k]$")
    ax.set_title("every run stays under the bound (ratio <= 1)")
    ax.legend(fontsize=8)
    fig.suptitle(f"Du et al. (2019), gradient descent: under the linear-rate bound up to 0.9 of the stability limit; "
                 f"past it the risk first rises (catapult)\nm = {size['m']}, n = {N}, d = {D}, "
                 f"$\\lambda_0$ = {lam0:.3f}, $\\lambda_{{max}}$ = {lam_max:.2f}, {size['seeds']} seeds")
    fig.tight_layout()
    claims = [
        claim("for every step size up to 0.9 of the stability limit every run stays under R(0)(1 - eta lambda0 / 2)^k",
              "max_k R(k) / bound, each run with eta <= 0.9 limit", [r for f in below for r in ratios[f]], "<=", 1.0),
        claim("past the stability limit (1.1 x) the risk first rises above R(0) in every run (catapult)",
              "max_k R(k) / R(0) at 1.1 x the limit", peak[1.1], ">", 1.0),
        claim("below the limit the risk never rises above R(0)", "max_k R(k) / R(0), eta <= 0.9 limit",
              [r for f in below for r in peak[f]], "<=", 1.0),
    ]
    numbers = {"lambda0": lam0, "lambda_max": lam_max, "stability_limit_eta": limit, "fractions": FRACTIONS,
               "max_ratio_to_bound": {str(f): ratios[f] for f in FRACTIONS},
               "max_risk_over_initial": {str(f): peak[f] for f in FRACTIONS}, "steps": STEPS}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": config(size["m"], 0, FRACTIONS[0] * limit * N),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
