"""The coordinate check: after one gradient step at a fixed learning rate, the pre-activations of a
deep network move by Theta(1) per coordinate under muP, vanish like m^-1/2 under the NTK
parameterisation, and blow up like m^+1/2 in the hidden layers under the standard one.

Source: Yang & Hu (2021), Feature learning in infinite-width neural networks (abc-parameterisations,
the maximal update parameterisation, Table 3); the coordinate check of Yang et al. (2022), Tensor
programs V (muTransfer).

Setting: fully connected tanh network, L = 3 hidden layers of width m, d = 10, n = 64 teacher
samples, squared loss, one full-batch gradient-descent step of size eta = dt = 0.01 on every
layer (no per-layer learning rates: Yang & Hu's c = 0 for all three). Why tanh: ReLU features
have a mean, so each update carries a rank-one term set by the random sum of the initial
residuals; with 3-4 seeds that makes ReLU's single-step exponents scatter by +-0.2 (measured:
ntk -0.28 to -0.40), while an odd activation's features have none. Recorded: the root mean
square over samples and units of h^(l)(eta) - h^(l)(0) for each layer l. What theory predicts
for this step (derived in ``deep.py``'s normalisation: d f / d h^(l) is m^-1/2 per coordinate under
ntk and standard, m^-1 under mup): ntk, m^-1/2 in every layer; mup, m^0 in every layer; standard,
m^-1/2 in the first layer (its input is d-dimensional) and m^+1/2 in the hidden ones (their inputs
have m coordinates of size 1). The fitted exponents are printed beside these.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import rate
from meanfield.tools.figures import scenario_main

SETTING = "tanh mlp, L = 3, d = 10, n = 64, one step of eta = 0.01, m = 64-4096, 6 seeds (full mode)"
DEPTH, ETA = 3, 0.01
QUICK = {"widths": [64, 128, 256, 512, 1024], "seeds": 6}
FULL = {"widths": [64, 128, 256, 512, 1024, 2048, 4096], "seeds": 6}
THEORY = {"ntk": [-0.5, -0.5, -0.5], "mup": [0.0, 0.0, 0.0], "standard": [-0.5, 0.5, 0.5]}
# each exponent's window excludes its rivals, halfway between: vanishing (-1/2), Theta(1) (0), blowing up (+1/2)
WINDOWS = {-0.5: ([-0.75, -0.25], 0.0), 0.0: ([-0.2, 0.2], [-0.5, 0.5]), 0.5: ([0.25, 0.75], 0.0)}


def config(parameterization, m, seed):
    return mf.Config(seed=seed, network={"m": m, "d": 10, "depth": DEPTH, "activation": "tanh",
                              "parameterization": parameterization},
                     data={"kind": "teacher", "n": 64, "n_test": 0},
                     flow={"dt": ETA, "t_end": ETA}, record={"n_records": 2, "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    updates = {}
    for param in THEORY:
        runs = [[mf.simulate(config(param, int(m), seed)) for seed in range(size["seeds"])] for m in widths]
        for l in range(1, DEPTH + 1):
            updates[param, l] = np.array([[r.observables[f"feature_update_l{l}"][-1] for r in rs] for rs in runs])

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.0), sharey=True)
    shades = dict(zip(range(1, DEPTH + 1), plt.cm.viridis(np.linspace(0.15, 0.85, DEPTH))))
    fits = {}
    for ax, param in zip(axes, THEORY):
        series = {f"layer {l} (theory {THEORY[param][l - 1]:+.1f})": updates[param, l] for l in range(1, DEPTH + 1)}
        found = plotting.seed_scaling(ax, widths, series, "width $m$",
                                      r"RMS of $h^{(l)}_{\mathrm{after}} - h^{(l)}_{\mathrm{before}}$ per coordinate",
                                      {label: shades[l] for l, label in enumerate(series, start=1)})
        fits.update({(param, l): fit for l, fit in enumerate(found.values(), start=1)})
        ax.set_title(f"{param} parameterisation")
        ax.legend(fontsize=8, title="pre-activations: fitted slope [95% CI]")
    fig.suptitle(f"Coordinate check, one step of eta = {ETA} (tanh, L = {DEPTH}): feature updates stay Theta(1) "
                 r"under muP, vanish like $m^{-1/2}$ under NTK, grow like $m^{+1/2}$ in standard's hidden layers")
    fig.tight_layout()

    claims = []
    for param, exponents in THEORY.items():
        for l, predicted in enumerate(exponents, start=1):
            window, rival = WINDOWS[predicted]
            same = param == "standard" and l == 1
            claims.append(rate(f"{param}, layer {l}: the feature update scales like m^{predicted:+.1f}",
                               f"slope of the layer-{l} update vs m ({param})", fits[param, l], predicted, window,
                               rival, kind="construction" if same else "outcome",
                               because="at initialisation the standard and NTK networks are one function with one "
                                       "first-layer parameterisation, so their first-layer updates coincide (the ntk, "
                                       "layer 1 claim)" if same else ""))
    numbers = {"widths": widths, "eta": ETA, "depth": DEPTH, "theory": THEORY,
               "updates": {f"{p}, layer {l}": v for (p, l), v in updates.items()},
               "fits": {f"{p}, layer {l}": f for (p, l), f in fits.items()}}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config("mup", int(widths[0]), 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
