"""At initialisation the empirical tangent kernel of a deep ReLU network converges to its
infinite-width recursion like m^-1/2 at every depth from 1 to 6, fully connected and residual;
the prefactor grows with depth for fully connected networks and stays flat for residual ones.

Source: Jacot, Gabriel & Hongler (2018) and Arora et al. (2019) for the fully connected NNGP / NTK
recursion (c_sigma = 2); Du, Lee, Li, Wang & Zhai (2019) for the residual form
x^(l) = x^(l-1) + c_res / (L sqrt(m)) relu(W_l x^(l-1)), whose recursion ``ntk.deep_resnet_relu_kernels``
derives (it carries the ReLU features' mean along the residual stream).

Setting: NTK parameterisation, ReLU, n = 16 inputs on the unit sphere of R^4, c_res = 1, widths
m = 64-2048, depths L = 1-6 (at L = 1 both architectures are the same network), 16 seeds.
Recorded: ||H(0) - Theta^(L)||_F / ||Theta^(L)||_F, H(0) the empirical kernel on the inputs.
What theory predicts: H(0) is an average over m units of independent terms in each layer, so
its fluctuation, hence the relative error, is O(m^-1/2) at fixed depth, with a constant that
grows with L for fully connected networks (Hanin & Nica 2020: the variance grows like L / m),
while Du et al.'s 1/L branches keep the residual stream, hence the constant, nearly depth-free.
"""
import numpy as np
from matplotlib import pyplot as plt

from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.model import deep, ntk
from meanfield.tools.figures import scenario_main

SETTING = "ReLU, NTK parameterisation, n = 16 on the sphere in d = 4, L = 1-6, m = 64-2048, 16 seeds (full mode)"
D, N, C_RES = 4, 16, 1.0
QUICK = {"widths": [64, 128, 256, 512, 1024], "depths": [1, 2, 4, 6], "seeds": 12}
FULL = {"widths": [64, 128, 256, 512, 1024, 2048], "depths": [1, 2, 3, 4, 5, 6], "seeds": 16}
ARCHITECTURES = ("mlp", "resnet")


def inputs():
    X = np.random.default_rng(0).standard_normal((N, D))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def limit(architecture, depth, X):
    """Theta^(L) of the architecture (ReLU, c_sigma = 2)."""
    if architecture == "mlp":
        return ntk.deep_relu_kernels(X, depth)[1]
    return ntk.deep_resnet_relu_kernels(X, depth, deep.resnet_scale(depth, C_RES, 2.0))[1]


def error(architecture, depth, m, seed, X, theta):
    net = deep.DeepNet(D, m, depth, "relu", architecture, "ntk", 2.0, deep.resnet_scale(depth, C_RES, 2.0))
    H = deep.tangent_kernel(net, net.init(np.random.default_rng(seed)), X)
    return np.linalg.norm(H - theta) / np.linalg.norm(theta)


def run(quick, out):
    size = QUICK if quick else FULL
    widths, depths, X = np.array(size["widths"]), size["depths"], inputs()
    errors = {}
    for arch in ARCHITECTURES:
        for L in depths:
            theta = limit(arch, L, X)
            errors[arch, L] = np.array([[error(arch, L, int(m), seed, X, theta) for seed in range(size["seeds"])]
                                        for m in widths])

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.0))
    shades = dict(zip(depths, plt.cm.viridis(np.linspace(0.1, 0.9, len(depths)))))
    fits = {}
    for ax, arch in zip(axes[:2], ARCHITECTURES):
        series = {f"L = {L}": errors[arch, L] for L in depths}
        found = plotting.seed_scaling(ax, widths, series, "width $m$",
                                      r"$\|H(0) - \Theta^{(L)}\|_F / \|\Theta^{(L)}\|_F$",
                                      {f"L = {L}": shades[L] for L in depths})
        fits.update({(arch, L): found[f"L = {L}"] for L in depths})
        ax.set_title(f"{arch}: fitted slopes [95% CI] (theory -1/2)")
        ax.legend(fontsize=7, title="depth")
    ax = axes[2]
    widest = {arch: np.array([np.median(errors[arch, L][-1]) for L in depths]) for arch in ARCHITECTURES}
    for arch, color in zip(ARCHITECTURES, ("tab:red", "tab:blue")):
        ax.plot(depths, widest[arch], "o-", color=color, label=arch)
    ax.set_xlabel("depth $L$ (hidden layers)")
    ax.set_xticks(depths)
    ax.set_ylabel(f"median relative error at m = {widths[-1]}")
    ax.set_title("the constant: grows with depth (mlp), flat (resnet)")
    ax.legend()
    fig.suptitle(r"The deep NTK at initialisation meets its infinite-width recursion like $m^{-1/2}$ at every "
                 "depth, fully connected and residual (ReLU, NTK parameterisation);\nthe constant grows with depth "
                 "only when fully connected")
    fig.tight_layout()

    claims = [rate(f"{arch}, L = {L}: the relative error falls like m^-1/2 (a fluctuation), not like m^-1 (a bias) "
                   "nor not at all", f"slope vs m ({arch}, L = {L})", fits[arch, L], -0.5, [-0.75, -0.25], [-1.0, 0.0],
                   **({"kind": "construction", "because": "at L = 1 the residual network is the fully connected one "
                       "(the mlp, L = 1 claim)"} if arch == "resnet" and L == 1 else {}))
              for arch in ARCHITECTURES for L in depths]
    claims.append(claim(f"at m = {widths[-1]} the fully connected network's error grows with depth (over 1.5x, "
                        "deepest over shallowest)", "median error at L = max over L = 1 (mlp)",
                        float(widest["mlp"][-1] / widest["mlp"][0]), ">", 1.5))
    claims.append(claim(f"at m = {widths[-1]} the residual network's error stays within 25 % of its depth-1 value at "
                        "every depth", "median error at each L over L = 1 (resnet)",
                        widest["resnet"] / widest["resnet"][0], "in", [0.75, 1.25]))
    numbers = {"widths": widths, "depths": depths, "n": N, "d": D, "c_res": C_RES,
               "errors": {f"{a}, L = {L}": v for (a, L), v in errors.items()},
               "fits": {f"{a}, L = {L}": f for (a, L), f in fits.items()}, "widest_median": widest}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": {"d": D, "n": N, "activation": "relu", "parameterization": "ntk", "c_res": C_RES},
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
