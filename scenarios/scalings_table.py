"""Lazy vs mean-field, measured: how the initial predictor, the neurons' displacement and the
relative function change scale with the width m under each scaling.

Source: Chizat's lecture notes (the lazy vs mean-field table); Chizat, Oyallon & Bach (2019).

Same initialisation law (not symmetric, so f_0 is a sum of m random terms), same data, same
flow time T. Expected exponents of m: ||f_0||: -1/2 (mean-field) vs 0 (lazy); mean displacement
|theta_i(T) - theta_i(0)|: 0 vs -1/2; relative change ||f_T - f_0|| / ||f_0||: +1/2 vs 0.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield import model, plotting
from meanfield.claims import claim
from meanfield.figures import scenario_main

T = 2.0
QUICK = {"widths": [16, 64, 256, 1024], "seeds": 4}
FULL = {"widths": [16, 64, 256, 1024, 4096, 16384, 65536], "seeds": 8}
EXPECTED = {"initial predictor": {"mean_field": -0.5, "lazy": 0.0},
            "displacement": {"mean_field": 0.0, "lazy": -0.5},
            "relative change": {"mean_field": 0.5, "lazy": 0.0}}


def config(scaling, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 5, "activation": "relu", "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "gaussian"},
        data={"kind": "teacher", "n": 50, "inputs": "sphere", "teacher_m0": 3},
        flow={"dt": 0.02, "t_end": T},
        record={"n_records": 2, "snapshots": False})


def measure(scaling, m, seed):
    """(||f_0||, mean displacement at T, ||f_T - f_0|| / ||f_0||) on the training inputs."""
    cfg = config(scaling, m, seed)
    res = mf.simulate(cfg)
    X = mf.make_data(cfg, np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[0])).X
    f0, fT = model.predict(res.theta0, X, cfg.network), model.predict(res.theta, X, cfg.network)
    norm0 = np.sqrt(np.mean(f0 ** 2))
    return norm0, res.observables["displacement_mean"][-1], np.sqrt(np.mean((fT - f0) ** 2)) / norm0


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    values = {s: np.array([[measure(s, m, seed) for seed in range(size["seeds"])] for m in widths])
              for s in ("mean_field", "lazy")}                        # (widths, seeds, 3)
    means = {s: v.mean(axis=1) for s, v in values.items()}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    labels = [(r"initial predictor $\|f_0\|$", "initial predictor"),
              (r"mean displacement $|\theta_i(T)-\theta_i(0)|$", "displacement"),
              (r"relative change $\|f_T - f_0\| / \|f_0\|$", "relative change")]
    fits = {}
    for k, (ax, (ylabel, key)) in enumerate(zip(axes, labels)):
        found = plotting.scaling(ax, widths, {s: means[s][:, k] for s in means},
                                 xlabel="width $m$ (neurons)", ylabel=ylabel, expected=EXPECTED[key])
        fits[key] = {s: f.to_dict() for s, f in found.items()}
        ax.set_title(key)
    fig.suptitle(f"Mean-field (1/m) vs lazy (1/√m) scaling, measured at t = {T:g}: "
                 "the lazy regime's neurons barely move, the mean-field predictor starts near 0")
    fig.tight_layout()
    table = ["quantity            | mean_field exponent | lazy exponent",
             "--------------------|---------------------|--------------"]
    for key in EXPECTED:
        table.append(f"{key:20s}| {fits[key]['mean_field']['slope']:+.2f} (expected {EXPECTED[key]['mean_field']:+.1f}) "
                     f"| {fits[key]['lazy']['slope']:+.2f} (expected {EXPECTED[key]['lazy']:+.1f})")
    print("\n".join(table))
    numbers = {"widths": widths, "seeds": size["seeds"], "time": T, "expected": EXPECTED,
               "fits": fits, "table": table,
               "means": {s: {key: means[s][:, k] for k, (_, key) in enumerate(labels)} for s in means}}
    construction = {"initial predictor": " (holds by construction: a sum of m independent terms at t = 0)"}
    claims = [claim(f"{key}, {scaling.replace('_', '-')}: exponent of m within 0.15 of {EXPECTED[key][scaling]:+g}"
                    + construction.get(key, ""), f"fitted exponent ({key}, {scaling})",
                    fits[key][scaling]["slope"], "in", [EXPECTED[key][scaling] - 0.15, EXPECTED[key][scaling] + 0.15])
              for key in EXPECTED for scaling in ("mean_field", "lazy")]
    return fig, {"seed": list(range(size["seeds"])), "config": config("mean_field", int(widths[0]), 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
