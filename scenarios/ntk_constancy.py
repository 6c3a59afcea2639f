"""Under lazy scaling the tangent kernel freezes as the width grows: its relative change falls
like 1/m for tanh and between m^-1 and m^-1/2 for ReLU (within the general m^-1/2 bound); under
mean-field scaling it changes by O(1) at every width.

Source: Jacot, Gabriel & Hongler (2018), Neural tangent kernel; Chizat, Oyallon & Bach (2019);
Lee et al. (2019), Wide neural networks of any depth evolve as linear models.

Same symmetric initialisation (pairs (w, a), (w, -a), so f_0 = 0), data (n = 30 points on the
sphere in d = 5, teacher labels) and flow time T under both scalings; recorded: the relative
change ||H(T) - H(0)||_F / ||H(0)||_F of the tangent kernel on the training inputs. What theory
predicts for this setting: the first-order change of H cancels within each symmetric pair, so for
a smooth activation the change is second order in the O(m^-1/2) weight movement, i.e. O(1/m); for
ReLU, activation patterns flip for a fraction O(m^-1/2) of neurons, which adds a term between m^-1
and m^-1/2. The general bound is O(m^-1/2) (Jacot et al.), drawn as a bound.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.tools.figures import scenario_main, simulate_all

SETTING = "d = 5, n = 30, m = 16-8192, 4 seeds (full mode)"
T = 20.0
QUICK = {"widths": [16, 32, 64, 128, 256, 512], "seeds": 8}
FULL = {"widths": [16, 64, 256, 1024, 4096, 8192], "seeds": 4}
ACTIVATIONS = ("relu", "tanh")
# apart from one another and from each claim's rivals (ReLU's: both ends of its range)
WINDOWS = {"lazy, tanh": [-1.25, -0.9], "lazy, relu": [-0.88, -0.55], "mean-field": [-0.25, 0.25]}
REGIMES = {"mean-field": "mean_field", "lazy": "lazy"}


def config(scaling, activation, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 5, "activation": activation, "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "gaussian", "symmetric": True},
        data={"kind": "teacher", "n": 30, "inputs": "sphere", "teacher_m0": 3},
        flow={"dt": 0.05, "t_end": T},
        record={"n_records": 30, "snapshots": False, "diagnostics": ["kernel_change"]})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    final, curves = {}, {}
    for regime, scaling in REGIMES.items():
        for act in ACTIVATIONS:
            flat = simulate_all([config(scaling, act, int(m), seed) for m in widths for seed in range(size["seeds"])])
            runs = [flat[k * size["seeds"]:(k + 1) * size["seeds"]] for k in range(len(widths))]
            final[regime, act] = np.array([[r.observables["kernel_change"][-1] for r in rs] for rs in runs])
            if act == "relu":
                curves[regime] = {int(m): (rs[0].t, rs[0].observables["kernel_change"]) for m, rs in zip(widths, runs)}

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    shades = plt.cm.viridis(np.linspace(0.1, 0.9, len(widths)))
    for ax, regime in zip(axes[:2], REGIMES):
        for shade, (m, (t, change)) in zip(shades, curves[regime].items()):
            ax.plot(t, change, lw=1.5, color=shade, label=f"m = {m}")
        ax.set_yscale("log")                          # every width visible, the lazy ones orders of magnitude down
        ax.set_xlabel("time $t$ (flow units)")
        ax.set_ylabel(r"$\|H(t) - H(0)\|_F / \|H(0)\|_F$ (ReLU, seed 0)")
        ax.set_title(f"{regime} scaling, ReLU")
        ax.legend(fontsize=8, title="width")
    ax = axes[2]
    series = {f"{regime}, {act}": final[regime, act] for regime in REGIMES for act in ACTIVATIONS}
    colors = {"mean-field, relu": "tab:blue", "mean-field, tanh": "tab:cyan",
              "lazy, relu": "tab:red", "lazy, tanh": "tab:purple"}
    fits = plotting.seed_scaling(ax, widths, series, "width $m$", f"relative kernel change at t = {T:g}", colors)
    top = np.max(final["lazy", "relu"][0])
    ax.plot(widths, top * (widths / widths[0]) ** -0.5, "k--", lw=1, label=r"$m^{-1/2}$ bound (Jacot et al.)")
    ax.plot(widths, np.median(final["lazy", "tanh"][0]) * (widths / widths[0]) ** -1.0, "k:", lw=1,
              label=r"$m^{-1}$ (smooth $\sigma$, theory)")
    ax.legend(fontsize=7)
    ax.set_title(f"median and IQR over {size['seeds']} seeds; slopes with 95% CI")
    fig.suptitle("The tangent kernel freezes under lazy scaling (tanh like 1/m, ReLU between "
                 r"$m^{-1}$ and $m^{-1/2}$), not under mean-field scaling")
    fig.tight_layout()

    claims = [
        rate("lazy, tanh: the kernel's relative change falls like m^-1 (smooth activation, symmetric init), not like "
             "the m^-1/2 bound", "slope of kernel change vs m (lazy, tanh), 95 % interval over seeds",
             fits["lazy, tanh"], theory=-1.0, window=WINDOWS["lazy, tanh"], rival=-0.5),
        rate("lazy, ReLU: it falls strictly between m^-1 and the m^-1/2 bound (pattern flips)",
             "slope of kernel change vs m (lazy, relu), 95 % interval over seeds", fits["lazy, relu"], theory=-0.75,
             window=WINDOWS["lazy, relu"], rival=[-1.0, -0.5]),
        rate("mean-field, ReLU: the change does not shrink with m (not like the lazy m^-1/2)",
             "slope of kernel change vs m (mean-field, relu), 95 % interval over seeds", fits["mean-field, relu"],
             theory=0.0, window=WINDOWS["mean-field"], rival=-0.5),
        rate("mean-field, tanh: the change does not shrink with m (not like the lazy m^-1/2)",
             "slope of kernel change vs m (mean-field, tanh), 95 % interval over seeds", fits["mean-field, tanh"],
             theory=0.0, window=WINDOWS["mean-field"], rival=-0.5),
        claim("mean-field: the kernel changes by O(1) (over 10 % at every width and seed)",
              "relative kernel change at T (mean-field, both activations)",
              np.concatenate([final["mean-field", a].ravel() for a in ACTIVATIONS]), ">", 0.1),
    ]
    numbers = {"widths": widths, "time": T, "activations": ACTIVATIONS,
               "final_kernel_change": {f"{r}, {a}": final[r, a] for r in REGIMES for a in ACTIVATIONS},
               "fits": fits, "predicted": {"lazy, tanh": -1.0, "lazy, relu": "between -1 and -0.5",
                                           "mean-field": 0.0}}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": config("lazy", "relu", int(widths[0]), 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
