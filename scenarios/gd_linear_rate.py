"""Discrete gradient descent on a wide ReLU network converges linearly, under Du et al.'s bound
R(k) <= (1 - eta lambda0 / 2)^k R(0), for every step size up to 0.9 of the stability limit
2 / lambda_max; past the limit, training both layers, the risk first spikes, the kernel's top
eigenvalue falls below 2 / eta, and the risk then converges below R(0): the catapult of Lewkowycz
et al. (2020); far past it, training diverges.

Source: Du, Zhai, Poczos & Singh (2019), Gradient descent provably optimizes over-parameterized
neural networks (Theorem 4.1, gradient descent with a constant step size); Lewkowycz, Bahri, Dyer,
Sohl-Dickstein & Gur-Ari (2020), The large learning rate phase of deep learning: the catapult mechanism.

Setting: lazy scaling 1/sqrt(m), w ~ N(0, I), a = ±1, n = 20 unit-norm inputs in d = 10 with
teacher labels, m = 4096 (2048 in quick mode), 3 seeds of the initialisation, 400 steps. With the
README's convention an Euler step dt is gradient descent on R = (1/n) sum_j (f(x_j) - y_j)^2 / 2, so
the predictions move by u_{k+1} - u_k ~ -(dt / n) H (u_k - y): the step size on the kernel is
eta = dt / n. Left (Du et al., their setting: only w trains): eta = 0.05-0.9 of 2 / lambda_max(H_inf),
lambda0 = lambda_min(H_inf); the theorem asks for eta = O(lambda0 / n^2) and is checked here well
beyond that. Right (Lewkowycz et al.'s setting: both layers train, so the kernel can move): eta =
1.2, 1.5 and 1.8 of 2 / lambda_max(Theta), Theta the infinite-width two-layer NTK (both layers) that
H(0) approaches, and 2.6 of it for the divergent phase; lambda_max(H(t)) is recorded at every step
(``record.diagnostics = ["lambda_max"]``). What theory predicts there: the risk grows while
eta lambda_max > 2, the kernel's top eigenvalue falls until eta lambda_max < 2, then the risk
converges; beyond a width-free maximal step (4 / lambda for their two-layer linear model) the
dynamics diverge. How this differs from the papers: m is far below Du et al.'s sufficient width,
and the step fractions are chosen here.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim
from meanfield.model import ntk
from meanfield.tools.figures import scenario_main

SETTING = "d = 10, n = 20, m = 4096, 4 + 4 step sizes, 3 seeds, 400 steps (full mode)"
N, D, STEPS = 20, 10, 400
LINEAR = (0.05, 0.2, 0.5, 0.9)          # of 2 / lambda_max(H_inf): Du et al.'s regime, w trained
CATAPULT = (1.2, 1.5, 1.8)              # of 2 / lambda_max(Theta): both layers trained
DIVERGENT = 2.6
QUICK = {"m": 2048, "seeds": 2}
FULL = {"m": 4096, "seeds": 3}


def config(m, seed, dt, train="hidden"):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": D, "activation": "relu", "scaling": "lazy", "train": train},
        init={"w_law": "gaussian", "a_law": "rademacher"},
        data={"kind": "teacher", "n": N, "inputs": "sphere", "teacher_m0": 5, "teacher_signs": "rademacher"},
        flow={"dt": dt, "t_end": dt * STEPS},
        record={"n_records": STEPS + 1, "spacing": "linear", "snapshots": False, "divergence_factor": 1e6,
                "diagnostics": ["lambda_max"] if train == "both" else []})


def run(quick, out):
    size = QUICK if quick else FULL
    seeds = range(size["seeds"])
    data = mf.make_data(config(1, 0, 1.0), np.random.default_rng(0))
    X, y = data.X, data.y
    evals = np.linalg.eigvalsh(ntk.h_infinity(X))
    lam0, lam_max = evals[0], evals[-1]
    limit = 2 / lam_max                              # eta at which the top mode stops contracting (w trained)
    both_limit = 2 / ntk.lambda_max(ntk.two_layer_ntk(X, train="both"))
    linear = {f: [mf.simulate(config(size["m"], s, f * limit * N), data=(X, y), throw=False) for s in seeds]
              for f in LINEAR}
    catapult = {f: [mf.simulate(config(size["m"], s, f * both_limit * N, "both"), data=(X, y), throw=False)
                    for s in seeds] for f in (*CATAPULT, DIVERGENT)}
    k = np.arange(STEPS + 1)
    ratios = {f: [float(np.max(r.observables["train_risk"][1:] / (r.observables["train_risk"][0]
                                                                  * (1 - f * limit * lam0 / 2) ** k[1:])))
                  for r in runs] for f, runs in linear.items()}
    rise = {f: [float(np.max(r.observables["train_risk"]) / r.observables["train_risk"][0]) for r in runs]
            for f, runs in {**linear, **catapult}.items()}
    settle = {f: [r.observables["train_risk"][-1] / r.observables["train_risk"][0] for r in runs]
              for f, runs in catapult.items() if f != DIVERGENT}
    # eta lambda_max(H) / 2 at the start and at the end: above 1 (unstable) at the start, below 1 at the end
    sharpness = {f: [tuple(f * both_limit * r.observables["lambda_max"][[0, -1]] / 2) for r in runs]
                 for f, runs in catapult.items() if f != DIVERGENT}

    fig, axes = plt.subplots(1, 3, figsize=(19, 5.0))
    shades = plt.cm.viridis(np.linspace(0.05, 0.85, len(LINEAR)))
    ax = axes[0]
    for shade, f in zip(shades, LINEAR):
        for s, r in enumerate(linear[f]):
            ax.semilogy(r.observables["train_risk"], color=shade, lw=1.4 if s == 0 else 0.8,
                        label=rf"$\eta$ = {f:g} $\times 2/\lambda_{{max}}(H^\infty)$" if s == 0 else None)
        ax.semilogy(k, linear[f][0].observables["train_risk"][0] * (1 - f * limit * lam0 / 2) ** k, "--",
                    color=shade, lw=0.9)
    ax.set_ylim(1e-6, 1e1)
    ax.set_xlabel("gradient descent step $k$")
    ax.set_ylabel("training risk $R(k)$ (each seed)")
    ax.set_title(r"w trained: under Du et al.'s bound $R(0)(1 - \eta\lambda_0/2)^k$ (dashed)")
    ax.legend(fontsize=8)
    shades = plt.cm.plasma(np.linspace(0.1, 0.8, len(CATAPULT) + 1))
    for ax, key, ylabel in ((axes[1], "train_risk", "training risk $R(k)$ (each seed)"),
                            (axes[2], "lambda_max", r"$\eta\,\lambda_{\max}(H(k)) / 2$ (each seed)")):
        for shade, f in zip(shades, (*CATAPULT, DIVERGENT)):
            for s, r in enumerate(catapult[f]):
                values = r.observables[key] * (f * both_limit / 2 if key == "lambda_max" else 1.0)
                ax.semilogy(values, color=shade, lw=1.4 if s == 0 else 0.8,
                            label=rf"$\eta$ = {f:g} $\times 2/\lambda_{{max}}(\Theta)$" if s == 0 else None)
        ax.set_xlabel("gradient descent step $k$")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[1].set_ylim(1e-8, 1e4)
    axes[1].set_title("both layers trained: the risk spikes, then converges (the catapult)")
    axes[2].axhline(1.0, color="k", lw=1)
    axes[2].set_ylim(0.1, 10)
    axes[2].set_title(r"the kernel's top eigenvalue falls below $2/\eta$ (the line)")
    fig.suptitle(f"Gradient descent, m = {size['m']}, n = {N}, d = {D}, {size['seeds']} seeds: linear convergence "
                 "under Du et al.'s bound up to 0.9 of the stability limit;\npast it, the catapult: the risk spikes, "
                 rf"$\lambda_{{max}}(H)$ falls below $2/\eta$, the risk converges; at {DIVERGENT:g}x, divergence")
    fig.tight_layout()
    ends = [end for pairs in sharpness.values() for _, end in pairs]
    starts = [start for pairs in sharpness.values() for start, _ in pairs]
    claims = [
        claim("w trained, every step size up to 0.9 of the stability limit: every run stays under "
              "R(0)(1 - eta lambda0 / 2)^k", "max_k R(k) / bound, each run", [v for f in LINEAR for v in ratios[f]],
              "<=", 1.0),
        claim("both layers trained, past the limit (1.2-1.8 x): the risk first rises above R(0) in every run",
              "max_k R(k) / R(0)", [v for f in CATAPULT for v in rise[f]], ">", 1.0),
        claim("... the kernel starts unstable: eta lambda_max(H(0)) / 2 > 1 in every run", "eta lambda_max(H(0)) / 2",
              starts, ">", 1.0, kind="construction",
              because="the step sizes are set above 2 / lambda_max of the limit kernel, which H(0) approaches"),
        claim("... its top eigenvalue then falls below 2 / eta: eta lambda_max(H(T)) / 2 < 1 in every run",
              "eta lambda_max(H(T)) / 2", ends, "<", 1.0),
        claim("... and the risk converges below R(0) (under 1e-3 of it at T) in every run", "R(T) / R(0)",
              [v for f in CATAPULT for v in settle[f]], "<", 1e-3),
        claim(f"at {DIVERGENT:g} x the limit every run diverges", "runs diverged",
              float(np.mean([r.status == "diverged" for r in catapult[DIVERGENT]])), ">=", 1.0),
    ]
    numbers = {"lambda0": lam0, "lambda_max_hinf": lam_max, "stability_limit_eta": limit,
               "both_layers_limit_eta": both_limit, "fractions": {"linear": LINEAR, "catapult": CATAPULT,
                                                                 "divergent": DIVERGENT},
               "max_ratio_to_bound": {str(f): v for f, v in ratios.items()},
               "max_risk_over_initial": {str(f): v for f, v in rise.items()},
               "final_risk_over_initial": {str(f): v for f, v in settle.items()},
               "eta_lambda_max_over_2_start_end": {str(f): v for f, v in sharpness.items()}, "steps": STEPS}
    return fig, {"setting": SETTING, "seed": list(seeds), "config": config(size["m"], 0, CATAPULT[0] * both_limit * N,
                                                                           "both"),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
