"""Lazy vs mean-field, measured after training: the exponents of m of the initial predictor, the
neurons' displacement, the relative function change and the relative scale kappa agree with
the lazy vs mean-field table: each nearer its own regime's exponent than the other's, 0.5 away.

Source: Chizat's lecture notes (the lazy vs mean-field table); Chizat, Oyallon & Bach (2019), On
lazy training in differentiable programming (the relative scale kappa).

Same initialisation law (not symmetric, so f_0 is a sum of m random terms), same data (n = 50 on
the sphere in d = 5, teacher labels), trained to T = 200, where every run's training risk is below
3 % of its initial value (most below 1 %). Expected exponents of m, mean-field vs lazy: ||f_0||: -1/2 vs 0; mean
displacement |theta_i(T) - theta_i(0)|: 0 vs -1/2; relative change ||f_T - f_0|| / ||f_0||: +1/2
vs 0; relative scale kappa = ||y - f_0|| ||D^2 f(theta_0)|| / ||D f(theta_0)||^2 (Chizat, Oyallon
& Bach, with the output scale inside f): 0 vs -1/2, i.e. kappa ~ 1 / alpha(m) with alpha(m) = 1 and
sqrt(m). Norms are empirical L2 norms on the training inputs; for ReLU, ||D^2 f|| is the largest
block of the block-diagonal Hessian, s(m) max_i sqrt(mean_j 1[w_i . x_j > 0] |x_j|^2). Which rows
hold by construction: ||f_0|| and kappa are properties of the initialisation (a sum of m
independent terms), and the relative change follows from ||f_0|| once the runs fit their labels;
the displacement is the outcome of training. Each exponent's rival is the other regime's.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.model import ntk, twolayer
from meanfield.model.scaling import output_scale
from meanfield.tools.figures import scenario_main

SETTING = "d = 5, n = 50, m = 16-4096, 4 seeds (full mode)"
T, CONVERGED = 200.0, 0.03
QUICK = {"widths": [16, 32, 64, 128, 256, 512], "seeds": 10}
FULL = {"widths": [16, 64, 256, 1024, 4096], "seeds": 4}
QUANTITIES = {"initial predictor": (r"initial predictor $\|f_0\|$", {"mean_field": -0.5, "lazy": 0.0}),
              "displacement": (r"mean displacement $|\theta_i(T)-\theta_i(0)|$", {"mean_field": 0.0, "lazy": -0.5}),
              "relative change": (r"relative change $\|f_T - f_0\| / \|f_0\|$", {"mean_field": 0.5, "lazy": 0.0}),
              "relative scale": (r"relative scale $\kappa$ at $t = 0$", {"mean_field": 0.0, "lazy": -0.5})}
# the rows that hold by construction, and why (the others are outcomes of training)
BY_CONSTRUCTION = {
    "initial predictor": "f_0 is a sum of m independent terms times the output scale s(m) at t = 0",
    "relative scale": "kappa at t = 0 is a property of the initialisation: 1 / alpha(m) by its definition",
    "relative change": "every run fits its labels (the first claim), so ||f_T - f_0|| = O(1) and the exponent is "
                       "minus the initial predictor's"}
LABELS = {"mean_field": "mean-field", "lazy": "lazy"}
HALF_GAP = 0.24          # the regimes' exponents differ by 0.5: each window holds those nearer its own


def config(scaling, m, seed):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": 5, "activation": "relu", "scaling": scaling},
        init={"w_law": "gaussian", "a_law": "gaussian"},
        data={"kind": "teacher", "n": 50, "inputs": "sphere", "teacher_m0": 3},
        flow={"dt": 0.05, "t_end": T},
        record={"n_records": 2, "snapshots": False})


def relative_scale(theta, X, y, network) -> float:
    """kappa = ||y - f_0|| ||D^2 f|| / ||D f||^2 at theta (ReLU, empirical L2 norms)."""
    m, n = theta.shape[0], len(y)
    f0 = twolayer.predict(theta, X, network)
    jacobian_sq = ntk.tangent_kernel(theta, X, network, raw=True)           # J J^T with J = D f (n x P)
    d_norm_sq = np.linalg.eigvalsh(jacobian_sq / n)[-1]
    active = (X @ theta[:, :-1].T > 0).astype(float)                        # (n, m)
    hessian = output_scale(m, network.scaling,
                           network.alpha) * np.sqrt((active * (X ** 2).sum(1)[:, None]).mean(0)).max()
    return float(np.sqrt(np.mean((y - f0) ** 2)) * hessian / d_norm_sq)


def measure(scaling, m, seed):
    """(||f_0||, mean displacement, ||f_T - f_0|| / ||f_0||, kappa, R(T) / R(0)) on the training inputs."""
    cfg = config(scaling, m, seed)
    res = mf.simulate(cfg)
    data = res.data
    f0, fT = twolayer.predict(res.theta0, data.X, cfg.network), twolayer.predict(res.theta, data.X, cfg.network)
    norm0 = np.sqrt(np.mean(f0 ** 2))
    risk = res.observables["train_risk"]
    return (norm0, res.observables["displacement_mean"][-1], np.sqrt(np.mean((fT - f0) ** 2)) / norm0,
            relative_scale(res.theta0, data.X, data.y, cfg.network), risk[-1] / risk[0])


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    values = {s: np.array([[measure(s, int(m), seed) for seed in range(size["seeds"])] for m in widths])
              for s in LABELS}                                              # (widths, seeds, 5)
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8))
    fits = {}
    for k, (ax, (key, (ylabel, _))) in enumerate(zip(axes, QUANTITIES.items())):
        found = plotting.seed_scaling(ax, widths, {LABELS[s]: values[s][:, :, k] for s in LABELS},
                                      "width $m$ (neurons)", ylabel)
        fits[key] = {s: found[LABELS[s]] for s in LABELS}
        ax.legend(fontsize=7)
        ax.set_title(key + (" (by construction)" if key in BY_CONSTRUCTION else f" (at T = {T:g})"))
    fig.suptitle(f"Mean-field (1/m) vs lazy (1/√m) scaling, {size['seeds']} seeds, trained to T = {T:g} "
                 f"(training risk below {CONVERGED:.0%} of its start in every run)")
    fig.tight_layout()
    table = ["quantity            | mean-field exponent | lazy exponent",
             "--------------------|---------------------|--------------"]
    for key, (_, expected) in QUANTITIES.items():
        table.append(f"{key:20s}| {fits[key]['mean_field']['slope']:+.2f} (expected {expected['mean_field']:+.1f}) "
                     f"| {fits[key]['lazy']['slope']:+.2f} (expected {expected['lazy']:+.1f})")
    print("\n".join(table))
    numbers = {"widths": widths, "seeds": size["seeds"], "time": T, "table": table,
               "expected": {key: expected for key, (_, expected) in QUANTITIES.items()}, "fits": fits,
               "values": {s: {key: values[s][:, :, k] for k, key in enumerate(QUANTITIES)} for s in LABELS},
               "final_relative_risk": {s: values[s][:, :, 4] for s in LABELS}}
    claims = [claim(f"every run is trained to below {CONVERGED:.0%} of its initial risk by T", "R(T) / R(0), all runs",
                    np.concatenate([values[s][:, :, 4].ravel() for s in LABELS]), "<", CONVERGED, kind="check")]
    for key, (_, expected) in QUANTITIES.items():
        for s in LABELS:
            rival = expected["lazy" if s == "mean_field" else "mean_field"]       # the other regime's exponent
            claims.append(rate(f"{key}, {LABELS[s]}: exponent of m within {HALF_GAP} of {expected[s]:+g}, not the "
                               f"{LABELS['lazy' if s == 'mean_field' else 'mean_field']} regime's {rival:+g}",
                               f"fitted exponent ({key}, {LABELS[s]}), 95 % interval over seeds", fits[key][s],
                               theory=expected[s], window=[expected[s] - HALF_GAP, expected[s] + HALF_GAP], rival=rival,
                               **({"kind": "construction", "because": BY_CONSTRUCTION[key]}
                                  if key in BY_CONSTRUCTION else {})))
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": config("mean_field", int(widths[0]), 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
