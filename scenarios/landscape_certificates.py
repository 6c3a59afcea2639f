"""Trapped or global, decided by the landscape itself: in Safran & Shamir's setting every run is
polished by Newton steps to its critical point, labelled by its Hessian (up to symmetries), and
checked by the mean-field certificate of global optimality, psi >= 0 on the sphere.

Source: Safran & Shamir (2018), Spurious local minima are common in two-layer ReLU neural
networks; the certificate: Chizat & Bach (2018), Mei, Montanari & Nguyen (2018).

Setting of the paper: x ~ N(0, I_d), d = k0, teacher sum_j relu(v_j . x) with k0 orthonormal v_j,
student sum_i relu(w_i . x) (output weights fixed at +1, hidden layer trained; here the lazy
parameterisation with a_i = sqrt(k), exactly that model), w_i ~ N(0, I / d), exact population
risk. Here the gradient flow itself (flow.integrator = "adaptive", rtol = 1e-8) up to T = 400,
then ``landscape.verdict``: ``landscape.certificate`` (psi's risk part is 1-homogeneous in w: the
run is global iff min over |w| = 1 of psi >= 0, tested at -1e-6 of psi's scale, with
integral psi dmu <= 1e-6 J(0)) where the run stopped, else ``landscape.polish`` (Levenberg–
Marquardt to |grad R| <= 1e-12) and the certificate there. A run is "global" when certified,
else "trapped" (a local minimum), "saddle", "degenerate" or "unresolved".
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim
from meanfield.theory import landscape
from meanfield.tools.figures import scenario_main

SETTING = "d = k0 = 8-12, population risk, k = k0 and 2 k0, 12 seeds, gradient flow to T = 400 (full mode)"
QUICK = {"k0s": [10], "seeds": 2}
FULL = {"k0s": [8, 10, 12], "seeds": 12}
T_END = 400.0
FACTORS = (1, 2)
COLORS = {1: "tab:red", 2: "tab:blue"}
MARKERS = {"global": "o", "trapped": "X", "saddle": "v", "degenerate": "s", "unresolved": "d"}


def config(k0, k, seed):
    return mf.Config(
        seed=seed,
        network={"m": k, "d": k0, "activation": "relu", "scaling": "lazy", "train": "hidden"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(k0), "a_law": "constant", "a_scale": float(np.sqrt(k))},
        data={"kind": "population", "teacher_m0": k0, "teacher_orthonormal": True},
        flow={"dt": 0.05, "t_end": T_END, "integrator": "adaptive", "rtol": 1e-8},
        record={"n_records": 11, "spacing": "linear", "snapshots": False})


def examine(k0, k, seed) -> dict:
    res = mf.simulate(config(k0, k, seed))
    label, point, cert = landscape.verdict(res)
    return {"label": label, "hessian": point.label, "lambda_min": float(point.spectrum[0]),
            "hessian_error": point.hessian_error, "gradient_norm": point.gradient_norm,
            "psi_min": cert.min_psi / cert.scale, "steps": res.stats["steps"],
            "relative_risk": max(landscape.Landscape.of(res).objective(point.theta), 0.0)
            / res.observables["train_risk"][0]}


def run(quick, out):
    size = QUICK if quick else FULL
    k0s = size["k0s"]
    runs = {(f, k0): [examine(k0, f * k0, seed) for seed in range(size["seeds"])] for f in FACTORS for k0 in k0s}
    rows = {f: [r for k0 in k0s for r in runs[f, k0]] for f in FACTORS}

    def values(f, key, label=None):
        return np.array([r[key] for r in rows[f] if label is None or r["label"] == label])

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for j, f in enumerate(FACTORS):
        name = "k = k0" if f == 1 else f"k = {f} k0"
        for label, marker in MARKERS.items():
            psi, lam, risk = (values(f, key, label) for key in ("psi_min", "lambda_min", "relative_risk"))
            if len(psi):
                axes[0].plot(lam, psi, marker, color=COLORS[f], ls="", ms=7, alpha=0.8, label=f"{name}: {label}")
                axes[1].plot(np.maximum(risk, 1e-18), psi, marker, color=COLORS[f], ls="", ms=7, alpha=0.8)
        counts = [np.sum(values(f, "label") == label) for label in MARKERS]
        axes[2].bar(np.arange(len(MARKERS)) + (j - 0.5) * 0.38, counts, 0.38, color=COLORS[f], label=name)
    for ax in axes[:2]:
        ax.set_yscale("symlog", linthresh=1e-8)
        ax.axhline(-1e-6, color="k", ls=":", lw=1)
        ax.set_ylabel(r"$\min_{|w|=1} \psi(w)$ / scale of $\psi$ (certified global: $\geq -10^{-6}$)")
    axes[0].set_xscale("symlog", linthresh=1e-6)
    every = np.concatenate([values(f, "lambda_min") for f in FACTORS])
    axes[0].set_xlim(min(every.min() * 3, -1e-5), every.max() * 3)
    axes[0].axvline(0, color="0.5", lw=0.8)
    axes[0].set_xlabel(r"smallest Hessian eigenvalue at the polished critical point, $\lambda_{\min}$")
    axes[0].set_title("trapped runs: local minima ($\\lambda_{\\min} > 0$) that $\\psi$ rejects")
    axes[0].legend(fontsize=8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel(r"risk at the critical point / initial risk, $R(\theta^*) / R(\theta_0)$ (0 drawn at 1e-18)")
    axes[1].set_title("the certificate agrees with the risk")
    axes[2].set_xticks(np.arange(len(MARKERS)), list(MARKERS))
    axes[2].set_ylabel(f"runs (of {size['seeds'] * len(k0s)} per width)")
    axes[2].set_title("labels from the landscape, not a risk threshold")
    axes[2].legend()
    fig.suptitle(f"Safran & Shamir's setting (k0 = {', '.join(map(str, k0s))}): k = k0 is sometimes trapped at a "
                 "certified-spurious local minimum; k = 2 k0 is always certified global")
    fig.tight_layout()
    trapped = values(1, "lambda_min", "trapped")
    claims = [
        claim("k = 2 k0: every run is certified global", "certified fraction at k = 2 k0",
              np.mean(values(2, "label") == "global"), ">=", 1.0),
        claim("k = k0: some runs are trapped", "trapped runs at k = k0", len(trapped), ">", 0),
        claim("the trapped runs are local minima (smallest Hessian eigenvalue, beyond 10x its error, > 0)",
              "lambda_min - 10 x Hessian error of trapped runs",
              trapped - 10 * values(1, "hessian_error", "trapped"), ">", 0.0),
        claim("the trapped runs are polished to critical points", "|grad R| of trapped runs",
              values(1, "gradient_norm", "trapped"), "<=", 1e-12),
        claim("the certificate rejects the trapped runs", "min psi / scale of trapped runs",
              values(1, "psi_min", "trapped"), "<", -1e-3),
        claim("the certificate agrees with the risk: certified runs are near zero risk (certified to 1e-6, "
              "not at the minimum)", "R / R(0) of certified runs",
              np.concatenate([values(f, "relative_risk", "global") for f in FACTORS]), "<", 1e-4),
    ]
    numbers = {"k0s": k0s, "runs": {f"k = {f} k0, k0 = {k0}": runs[f, k0] for f in FACTORS for k0 in k0s}}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(k0s[0], k0s[0], 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
