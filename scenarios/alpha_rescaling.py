"""Scaling the output by alpha makes training lazy. Trained to convergence, the model stays within
O(1/alpha) of its own linearisation for tanh (O(1/alpha^2) from a symmetric initialisation); for
ReLU the gap falls like 1/alpha up to alpha ~ m/32, then about like alpha^-1/2. In d = 100 the
lazier the training, the worse the test risk.

Source: Chizat, Oyallon & Bach (2019), On lazy training in differentiable programming (Theorem
2.2 for the gap; the two-layer test-risk experiment for the last panel).

Left and middle: model alpha (h(theta) - h(theta_0)) with h the mean-field network (centered, as in
the paper), m = 512 (256 in quick mode), n = 30 inputs on the sphere in d = 5 with the labels of a
tanh teacher of 3 neurons, 2 seeds, trained on the flow time scale m / alpha^2 (Euler, dt = 0.1) to
T = 100 (60 in quick mode), where every run's training risk is below 1 % of its start; the tangent
model is trained in lockstep on the same samples. The theorem assumes a smooth model (tanh); its gap
is fitted from alpha = 32 (16 in quick mode), where the O(1/alpha) term dominates (below, an
O(1/alpha^2) term steepens it). For ReLU the gap comes from activation-pattern flips, about m /
alpha of them per input: while they are many (alpha << m) the gap falls like 1/alpha too, so ReLU is
fitted on 4 <= alpha <= m/32; once fewer than one flip per input remains it is Poisson noise,
~1/sqrt(m alpha). A symmetric initialisation (pairs (w, a), (w, -a)) instead of centering cancels
the second-order term pairwise, and the gap falls like 1/alpha^2. Right: the paper's two-layer
experiment in d = 100: ReLU, m = 256, n = 200 samples of a teacher of 3 ReLU neurons, centered, both
layers trained to convergence (training risk below 1e-6 of its start at T = 100), test risk on 2000
fresh samples, 3 seeds.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.analysis.fits import power_law, seed_slopes
from meanfield.tools.figures import scenario_main

SETTING = ("gap: d = 5, n = 30, m = 512, alpha = 1-1024, 2 seeds; test risk: d = 100, n = 200, m = 256, 3 seeds "
           "(full mode)")
QUICK = {"alphas": [1, 4, 8, 16, 64, 256], "m": 256, "t_end": 60.0, "tanh_from": 16,
         "test_alphas": [1, 16, 256], "test_m": 128, "seeds": 2}
FULL = {"alphas": [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024], "m": 512, "t_end": 100.0, "tanh_from": 32,
        "test_alphas": [1, 4, 16, 64, 256], "test_m": 256, "seeds": 3}
VARIANTS = {"tanh, centered": ("tanh", False), "relu, centered": ("relu", False),
            "tanh, symmetric init": ("tanh", True)}
COLORS = {"tanh, centered": "tab:purple", "relu, centered": "tab:red", "tanh, symmetric init": "tab:cyan"}
CONVERGED = 0.01


GAP_SEEDS = (0, 1)


def config(alpha, m, t_end, activation="tanh", symmetric=False, seed=0):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 5, "activation": activation, "scaling": "mean_field", "alpha": float(alpha),
                 "centered": not symmetric},
        init={"w_law": "gaussian", "a_law": "gaussian", "symmetric": symmetric},
        data={"kind": "teacher", "n": 30, "inputs": "sphere", "teacher_m0": 3, "teacher_activation": "tanh"},
        flow={"dt": 0.1, "t_end": t_end},
        record={"n_records": 30, "snapshots": False, "diagnostics": ["tangent_gap"]})


def test_config(alpha, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 100, "activation": "relu", "scaling": "mean_field", "alpha": float(alpha),
                 "centered": True},
        init={"w_law": "gaussian", "w_scale": 0.1, "a_law": "gaussian"},
        data={"kind": "teacher", "n": 200, "n_test": 2000, "teacher_m0": 3},
        flow={"dt": 0.1, "t_end": 100.0},
        record={"n_records": 8, "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    m, alphas = size["m"], np.array(size["alphas"], dtype=float)
    runs = {name: [[mf.simulate(config(a, m, size["t_end"], act, sym, seed)) for seed in GAP_SEEDS] for a in alphas]
            for name, (act, sym) in VARIANTS.items()}
    gaps = {name: np.array([[r.observables["tangent_gap"].max() for r in rs] for rs in by_alpha])
            for name, by_alpha in runs.items()}                                       # (alphas, seeds)
    trained = np.array([r.observables["train_risk"][-1] / r.observables["train_risk"][0]
                        for by_alpha in runs.values() for rs in by_alpha for r in rs])
    test_alphas = np.array(size["test_alphas"], dtype=float)
    test = np.zeros((len(test_alphas), size["seeds"]))
    test_trained = np.zeros_like(test)
    for i, a in enumerate(test_alphas):
        for seed in range(size["seeds"]):
            obs = mf.simulate(test_config(a, size["test_m"], seed)).observables
            test[i, seed] = obs["test_risk"][-1]
            test_trained[i, seed] = obs["train_risk"][-1] / obs["train_risk"][0]

    fig, axes = plt.subplots(1, 3, figsize=(19, 4.8))
    shades = plt.cm.viridis(np.linspace(0.1, 0.9, len(alphas)))
    for shade, alpha, rs in zip(shades, alphas, runs["tanh, centered"]):
        r = rs[0]
        axes[0].loglog(r.t[1:], r.observables["tangent_gap"][1:], lw=1.4, color=shade, label=f"α = {alpha:g}")
    axes[0].set_xlabel("time $t$ (flow units)")
    axes[0].set_ylabel(r"$\|f_\alpha(t) - f_{lin}(t)\|$ on the training inputs")
    axes[0].set_title("tanh, centered: gap to the tangent model over training (seed 0)")
    axes[0].legend(fontsize=7, ncol=2)
    fits = {}
    relu_tail = alphas > m / 32
    tail = seed_slopes(alphas[relu_tail], gaps["relu, centered"][relu_tail])
    for name, gap in gaps.items():
        keep = (alphas <= m / 32) & (alphas >= 4) if name.startswith("relu") else alphas >= size["tanh_from"]
        fits[name] = seed_slopes(alphas[keep], gap[keep])
        axes[1].loglog(alphas, np.median(gap, axis=1), "o", ms=5, color=COLORS[name])
        axes[1].fill_between(alphas, gap.min(axis=1), gap.max(axis=1), color=COLORS[name], alpha=0.2, lw=0)
        span = f"4 ≤ α ≤ {m // 32}" if name.startswith("relu") else f"α ≥ {size['tanh_from']}"
        line = power_law(alphas[keep], np.median(gap[keep], axis=1))
        axes[1].loglog(alphas[keep], line(alphas[keep]), "-", color=COLORS[name],
                       label=f"{name}: slope {fits[name]['slope']:+.2f} [{fits[name]['ci_low']:+.2f}, "
                             f"{fits[name]['ci_high']:+.2f}] on {span}")
    line = power_law(alphas[relu_tail], np.median(gaps["relu, centered"][relu_tail], axis=1))
    axes[1].loglog(alphas[relu_tail], line(alphas[relu_tail]), "--", color=COLORS["relu, centered"],
                   label=f"relu, α > {m // 32}: slope {tail['slope']:+.2f} (under one flip per input)")
    plotting.label_ticks(axes[1], alphas)
    axes[1].set_xlabel(r"output scale $\alpha$")
    axes[1].set_ylabel(r"$\max_t \|f_\alpha(t) - f_{lin}(t)\|$")
    axes[1].set_title(r"tanh: $1/\alpha$ (symmetric: $1/\alpha^2$); ReLU: $1/\alpha$, then $\approx\alpha^{-1/2}$"
                      f" ({len(GAP_SEEDS)} seeds, range)")
    axes[1].legend(fontsize=7)
    axes[2].semilogx(test_alphas, np.median(test, axis=1), "o-", color="tab:blue", lw=2, label="median over seeds")
    axes[2].fill_between(test_alphas, test.min(axis=1), test.max(axis=1), color="tab:blue", alpha=0.2, lw=0,
                         label=f"range over {size['seeds']} seeds")
    plotting.label_ticks(axes[2], test_alphas)
    axes[2].set_xlabel(r"output scale $\alpha$ (larger: lazier)")
    axes[2].set_ylabel("test risk at convergence")
    axes[2].set_title(f"d = 100, n = 200, m = {size['test_m']}: lazy training generalises worse")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Chizat, Oyallon & Bach (2019): a large output scale makes training lazy (m = {m}, mean-field "
                 f"network, trained to T = {size['t_end']:g})")
    fig.tight_layout()
    numbers = {"alphas": alphas, "max_gap": gaps, "fits": dict(fits),
               "final_relative_risk": trained, "test_alphas": test_alphas, "test_risk": test,
               "test_final_relative_risk": test_trained}
    numbers["fits"]["relu, centered, alpha > m/32"] = tail
    median_test = np.median(test, axis=1)
    claims = [
        claim(f"every gap run is trained to below {CONVERGED:.0%} of its initial risk", "R(T) / R(0), gap runs",
              trained, "<", CONVERGED),
        rate(f"tanh, centered: the gap to the tangent model falls like 1/alpha (alpha >= {size['tanh_from']}, where "
             "the O(1/alpha) term dominates)",
             "fitted slope (tanh, centered)", fits["tanh, centered"], [-1.1, -0.9]),
        rate("tanh, symmetric init: the gap falls like 1/alpha^2 (the second-order term cancels pairwise)",
             "fitted slope (tanh, symmetric init)", fits["tanh, symmetric init"], [-2.15, -1.85]),
        rate("relu, centered: about 1/alpha while activation-pattern flips are many (4 <= alpha <= m/32)",
             "fitted slope (relu, 4 <= alpha <= m/32)", fits["relu, centered"], [-1.3, -0.6]),
        rate("relu, centered: slower beyond alpha = m/32, where fewer than one flip per input remains",
             "fitted slope (relu, alpha > m/32)", tail, [-0.8, -0.2]),
        claim("d = 100: every test-risk run is trained to below 1e-6 of its initial risk",
              "R(T) / R(0), test-risk runs", test_trained.ravel(), "<", 1e-6),
        claim("d = 100: the median test risk rises with alpha, from the smallest alpha to the largest",
              "consecutive differences of the median test risk", np.diff(median_test), ">", 0.0),
    ]
    return fig, {"setting": SETTING, "seed": list(GAP_SEEDS), "config": config(alphas[0], m, size["t_end"]),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
