"""Scaling the output by alpha makes training lazy: over the training horizon the model stays
within O(1/alpha) of its own linearisation (the tangent model) for tanh (O(1/alpha^2) from a
symmetric initialisation); for ReLU the gap falls like 1/alpha up to alpha ~ m/32, then more slowly.

Source: Chizat, Oyallon & Bach (2019), On lazy training in differentiable programming.

Model alpha (h(theta) - h(theta_0)) with h the mean-field network (centered, as in the paper),
trained on the flow time scale m / alpha^2 so that the predictor moves at an O(1) rate; the
tangent model is trained in lockstep on the same samples. The theorem assumes a smooth model
(tanh). For ReLU the gap comes from activation-pattern flips, about m / alpha of them per input:
while they are many (alpha << m) the gap falls like 1/alpha too, so ReLU is fitted on
4 <= alpha <= m/32; once fewer than one flip per input remains it is Poisson noise, ~1/sqrt(m alpha).
A symmetric initialisation (pairs (w, a), (w, -a)) instead of centering cancels the second-order
term pairwise, and the gap falls faster, like 1/alpha^2.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.claims import claim
from meanfield.fits import power_law
from meanfield.figures import scenario_main

QUICK = {"alphas": [1, 4, 8, 16, 64, 256], "m": 512}
FULL = {"alphas": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], "m": 2048}
VARIANTS = {"tanh, centered": ("tanh", False), "relu, centered": ("relu", False),
            "tanh, symmetric init": ("tanh", True)}
EXPECTED = {"tanh, centered": -1.0, "relu, centered": -1.0, "tanh, symmetric init": -2.0}


def config(alpha, m, activation="tanh", symmetric=False):
    return mf.Config(
        seed=0,
        network={"m": m, "d": 5, "activation": activation, "scaling": "mean_field", "alpha": float(alpha),
                 "centered": not symmetric},
        init={"w_law": "gaussian", "a_law": "gaussian", "symmetric": symmetric},
        data={"kind": "teacher", "n": 30, "inputs": "sphere", "teacher_m0": 3},
        flow={"dt": 0.02, "t_end": 20.0},
        record={"n_records": 40, "snapshots": False, "diagnostics": ["tangent_gap"]})


def run(quick, out):
    size = QUICK if quick else FULL
    alphas = np.array(size["alphas"], dtype=float)
    runs = {name: [mf.simulate(config(a, size["m"], act, sym)) for a in alphas] for name, (act, sym) in VARIANTS.items()}
    gaps = {name: np.array([r.observables["tangent_gap"].max() for r in rs]) for name, rs in runs.items()}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for alpha, r in zip(alphas, runs["tanh, centered"]):
        axes[0].loglog(r.t[1:], r.observables["tangent_gap"][1:], lw=1.4, label=f"α = {alpha:g}")
    axes[0].set_xlabel("time $t$ (flow units)")
    axes[0].set_ylabel(r"$\|f_\alpha(t) - f_{lin}(t)\|$ on the training inputs")
    axes[0].set_title("tanh, centered: gap to the tangent model over training")
    axes[0].legend(fontsize=7, ncol=2)
    fits = {}
    relu_tail = alphas > size["m"] / 32
    tail = power_law(alphas[relu_tail], gaps["relu, centered"][relu_tail])
    axes[1].loglog(alphas[relu_tail], tail(alphas[relu_tail]), "--", color="0.3",
                   label=f"relu, α > {size['m'] // 32}: slope {tail.slope:+.2f} (fewer than one flip per input: ~α^-1/2)")
    for name, gap in gaps.items():
        keep = (alphas >= 4) & ((alphas <= size["m"] / 32) if name.startswith("relu") else True)
        fit = power_law(alphas[keep], gap[keep])
        fits[name] = fit
        line, = axes[1].loglog(alphas, gap, "o", ms=5)
        span = f"α ≤ {size['m'] // 32}" if name.startswith("relu") else "α ≥ 4"
        axes[1].loglog(alphas[keep], fit(alphas[keep]), "-", color=line.get_color(),
                       label=f"{name}: slope {fit.slope:+.2f} ± {fit.stderr:.2f} on {span} (expected {EXPECTED[name]:+g})")
    axes[1].set_xlabel(r"output scale $\alpha$")
    axes[1].set_ylabel(r"$\max_t \|f_\alpha(t) - f_{lin}(t)\|$")
    axes[1].set_title(r"tanh: gap $\sim 1/\alpha$ (symmetric init $1/\alpha^2$); ReLU $1/\alpha$ then $\alpha^{-1/2}$")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"Chizat, Oyallon & Bach (2019): large output scale = lazy training (m = {size['m']}, mean-field network)")
    fig.tight_layout()
    numbers = {"alphas": alphas, "max_gap": gaps, "fits": {k: f.to_dict() for k, f in fits.items()},
               "expected": EXPECTED, "final_train_risk": {k: [r.observables["train_risk"][-1] for r in rs]
                                                         for k, rs in runs.items()}}
    numbers["fits"]["relu, centered, alpha > m/32"] = tail.to_dict()
    risk0 = {k: float(rs[0].observables["train_risk"][0]) for k, rs in runs.items()}
    numbers["initial_train_risk"] = risk0
    claims = [
        claim("tanh, centered: the gap to the tangent model falls like 1/alpha (alpha >= 4)",
              "fitted slope (tanh, centered)", fits["tanh, centered"].slope, "in", [-1.1, -0.9]),
        claim("tanh, symmetric init: the gap falls like 1/alpha^2 (the second-order term cancels pairwise)",
              "fitted slope (tanh, symmetric init)", fits["tanh, symmetric init"].slope, "in", [-2.15, -1.85]),
        claim("relu, centered: about 1/alpha while activation-pattern flips are many (4 <= alpha <= m/32)",
              "fitted slope (relu, 4 <= alpha <= m/32)", fits["relu, centered"].slope, "in", [-1.3, -0.6]),
        claim("relu, centered: slower beyond alpha = m/32, where fewer than one flip per input remains",
              "fitted slope (relu, alpha > m/32)", tail.slope, "in", [-0.8, -0.2]),
    ]
    return fig, {"seed": 0, "config": config(alphas[0], size["m"]), "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
