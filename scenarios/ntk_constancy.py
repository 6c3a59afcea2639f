"""The tangent kernel stays constant during training as the width grows in the lazy regime
(relative change ~ m^-1/2), but not in the mean-field regime, where features are learnt.

Source: Jacot, Gabriel & Hongler (2018), Neural tangent kernel; Chizat, Oyallon & Bach (2019).

Same symmetric initialisation, data and flow time T under both scalings; recorded: the relative
change ||H(t) - H(0)||_F / ||H(0)||_F of the tangent kernel on the training inputs.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield import plotting
from meanfield.figures import scenario_main

T = 20.0
QUICK = {"widths": [16, 64, 256, 1024], "seeds": 2}
FULL = {"widths": [16, 64, 256, 1024, 4096, 16384], "seeds": 4}


def config(scaling, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 5, "activation": "relu", "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "gaussian", "symmetric": True},
        data={"kind": "teacher", "n": 30, "inputs": "sphere", "teacher_m0": 3},
        flow={"dt": 0.05, "t_end": T},
        record={"n_records": 30, "snapshots": False, "diagnostics": ["kernel_change"]})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    final, curves = {}, {}
    for scaling in ("mean_field", "lazy"):
        runs = [[mf.simulate(config(scaling, int(m), seed)) for seed in range(size["seeds"])] for m in widths]
        final[scaling] = np.array([np.mean([r.observables["kernel_change"][-1] for r in rs]) for rs in runs])
        curves[scaling] = {int(m): (rs[0].t, rs[0].observables["kernel_change"]) for m, rs in zip(widths, runs)}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, scaling in zip(axes[:2], ("mean_field", "lazy")):
        for m, (t, change) in curves[scaling].items():
            ax.plot(t, change, lw=1.5, label=f"m = {m}")
        ax.set_xlabel("time $t$ (flow units)")
        ax.set_ylabel(r"$\|H(t) - H(0)\|_F / \|H(0)\|_F$")
        ax.set_title(f"{scaling} scaling")
        ax.legend(fontsize=8)
    fits = plotting.scaling(axes[2], widths, final, "width $m$", f"relative kernel change at t = {T:g}",
                            expected={"mean_field": 0.0, "lazy": -0.5})
    axes[2].set_title("lazy: the kernel freezes as m grows")
    fig.suptitle("Jacot et al. (2018): the neural tangent kernel is constant in the wide lazy limit, "
                 "not in the mean-field limit")
    fig.tight_layout()
    numbers = {"widths": widths, "time": T, "final_kernel_change": final,
               "fits": {s: f.to_dict() for s, f in fits.items()}, "expected": {"mean_field": 0.0, "lazy": -0.5}}
    return fig, {"seed": list(range(size["seeds"])), "config": config("lazy", int(widths[0]), 0), "numbers": numbers}


if __name__ == "__main__":
    scenario_main(__file__, run)
