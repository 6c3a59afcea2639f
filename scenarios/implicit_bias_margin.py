"""Trained on both layers, a wide two-layer network under the logistic loss grows a large
normalised margin, finds the low-dimensional structure and ignores spurious coordinates; trained
on its output layer only (a kernel method), its margin stays smaller and it generalises worse.

Source: Chizat & Bach (2020), Implicit bias of gradient descent for wide two-layer neural networks
trained with the logistic loss; Wei, Lee, Liu & Ma (2019), Regularization matters.

Data: XOR-like clusters in two informative coordinates (label = sign(x1 x2), not linearly
separable) plus Gaussian spurious coordinates; a bias input. Mean-field scaling, symmetric
initialisation; the normalised margin is min_j y_j f(x_j) / ((1/m) sum_i |theta_i|^2).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield import model
from meanfield.figures import scenario_main

SPURIOUS = 8
QUICK = {"m": 100, "n": 100, "t_end": 500.0}
FULL = {"m": 400, "n": 100, "t_end": 5000.0}
N_TEST = 1000


def clusters(n, rng):
    """(X (n, 2 + SPURIOUS), y (n,)): centres (±1, ±1) with noise 0.25, y = sign(x1 x2)."""
    signs = rng.choice([-1.0, 1.0], (n, 2))
    X = np.hstack([signs + 0.25 * rng.standard_normal((n, 2)), rng.standard_normal((n, SPURIOUS))])
    return X, signs[:, 0] * signs[:, 1]


def config(size, train):
    return mf.Config(
        seed=0,
        network={"m": size["m"], "d": 2 + SPURIOUS + 1, "bias": True, "activation": "relu",
                 "scaling": "mean_field", "train": train},
        init={"w_law": "gaussian", "w_scale": 0.5, "a_law": "gaussian", "a_scale": 0.5, "symmetric": True},
        data={"kind": "arrays", "test_fraction": N_TEST / (size["n"] + N_TEST)},
        flow={"loss": "logistic", "dt": 0.2, "t_end": size["t_end"]},
        record={"n_records": 30, "diagnostics": ["margins"], "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    X, y = clusters(size["n"] + N_TEST, np.random.default_rng(0))
    labels = {"both": "both layers (mean-field)", "output": "output layer only (kernel)"}
    runs = {train: mf.simulate(config(size, train), data=(X, y)) for train in labels}
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4))
    for train, res in runs.items():
        obs = res.observables
        axes[0].semilogx(res.t[1:], obs["normalized_margin"][1:], lw=1.8, label=labels[train])
        axes[1].semilogx(res.t[1:], obs["test_error"][1:], lw=1.8, label=labels[train])
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].set_xlabel("time $t$ (flow units)")
    axes[0].set_ylabel(r"normalised margin $\gamma(t)$")
    axes[0].set_title("both layers: the margin grows larger")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("time $t$ (flow units)")
    axes[1].set_ylabel(f"test error ({N_TEST} samples)")
    axes[1].set_title("and generalises better")
    axes[1].legend(fontsize=8)
    grid = np.linspace(-2, 2, 161)
    g1, g2 = np.meshgrid(grid, grid)
    plane = np.hstack([g1.reshape(-1, 1), g2.reshape(-1, 1), np.zeros((g1.size, SPURIOUS)), np.ones((g1.size, 1))])
    train_X, train_y = X[: size["n"]], y[: size["n"]]
    for ax, (train, res) in zip(axes[2:], runs.items()):
        f = model.predict(res.theta, plane, res.config.network).reshape(g1.shape)
        ax.contourf(g1, g2, np.sign(f), levels=[-2, 0, 2], colors=["#cfe0f5", "#f5d3cf"], alpha=0.8)
        ax.contour(g1, g2, f, levels=[0], colors="k", linewidths=1.2)
        ax.scatter(*train_X[train_y > 0, :2].T, s=10, color="#c0392b", label="y = +1")
        ax.scatter(*train_X[train_y < 0, :2].T, s=10, color="#2e6db4", label="y = -1")
        ax.set_xlabel("$x_1$ (informative)")
        ax.set_ylabel("$x_2$ (informative)")
        ax.set_title(f"{labels[train]}: decision boundary\n(spurious coordinates set to 0)")
        ax.set_aspect("equal")
    axes[2].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Implicit bias of the logistic loss: XOR clusters + {SPURIOUS} spurious coordinates, "
                 f"n = {size['n']}, m = {size['m']}")
    fig.tight_layout()
    numbers = {train: {"final_normalized_margin": r.observables["normalized_margin"][-1],
                       "final_test_error": r.observables["test_error"][-1],
                       "final_train_error": r.observables["train_error"][-1],
                       "normalized_margin": r.observables["normalized_margin"]} for train, r in runs.items()}
    return fig, {"seed": 0, "config": {k: r.config for k, r in runs.items()}, "numbers": numbers}


if __name__ == "__main__":
    scenario_main(__file__, run)
