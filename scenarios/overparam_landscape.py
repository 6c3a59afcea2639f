"""Over-parameterisation removes bad local minima: in Safran & Shamir's setting a student with
exactly the teacher's k0 neurons is trapped at a spurious minimum from some random initialisations
once k0 is large enough, while a student with 2 k0 neurons reaches the global minimum from every
one of them.

Source: Safran & Shamir (2018), Spurious local minima are common in two-layer ReLU neural
networks; J. Lee's lecture, after Livni, Shalev-Shwartz & Shamir (2014); the certificate: Chizat &
Bach (2018), Mei, Montanari & Nguyen (2018).

Setting of the paper: x ~ N(0, I_d) with d = k0, teacher sum_j relu(v_j . x) with k0 orthonormal
v_j, student sum_i relu(w_i . x) with its output weights fixed at +1 and only the hidden layer
trained, w_i ~ N(0, I / d), exact population risk, plain gradient flow (here: the lazy
parameterisation with a_i = sqrt(k) fixed, which is exactly that model and that flow; Euler steps
dt = 0.05 up to T). A run is labelled by the landscape where it stopped (``landscape.verdict``):
Newton steps polish it to the nearby critical point, and the mean-field certificate (psi >= 0 on
the unit sphere) calls it "global"; otherwise its Hessian calls it "trapped" (a local minimum),
"saddle" or "degenerate", or "unresolved" if Newton found no critical point. The certificate: psi's
risk part is 1-homogeneous in w, so the run is global iff min over |w| = 1 of psi >= 0 (tested at
-1e-6 of psi's scale). Right: each run's
smallest Hessian eigenvalue at its polished critical point against the certificate's minimum: the
trapped runs are local minima that the certificate rejects.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim
from meanfield.theory import landscape
from meanfield.tools.figures import scenario_main, simulate_all

SETTING = "d = k0 = 4-12, population risk, k = k0 and 2 k0, 12 seeds (full mode)"
QUICK = {"k0s": [10], "seeds": 2, "t_end": 400.0}
FULL = {"k0s": [4, 6, 8, 10, 12], "seeds": 12, "t_end": 500.0}
LABELS = ("trapped", "saddle", "degenerate", "unresolved")       # the non-global verdicts, stacked
MARKERS = {"global": "o", "trapped": "X", "saddle": "v", "degenerate": "s", "unresolved": "d"}
FACTORS = (1, 2)
ROUND_OFF = 1e-15        # |R(T) / R(0)| below this is zero to round-off (the closed form can be -1e-16)
COLORS = {1: "tab:red", 2: "tab:blue"}


def config(k0, k, seed, t_end):
    return mf.Config(
        seed=seed,
        network={"m": k, "d": k0, "activation": "relu", "scaling": "lazy", "train": "hidden"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(k0), "a_law": "constant", "a_scale": float(np.sqrt(k))},
        data={"kind": "population", "teacher_m0": k0, "teacher_orthonormal": True},
        flow={"dt": 0.05, "t_end": t_end},
        record={"n_records": 41, "spacing": "linear", "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    k0s = np.array(size["k0s"])
    final = {f: np.zeros((len(k0s), size["seeds"])) for f in FACTORS}
    label = {f: np.empty((len(k0s), size["seeds"]), dtype=object) for f in FACTORS}
    psi = {f: np.zeros((len(k0s), size["seeds"])) for f in FACTORS}
    lam_min, hessian_error, gradient = ({f: np.zeros((len(k0s), size["seeds"])) for f in FACTORS}
                                        for _ in range(3))
    results = iter(simulate_all([config(int(k0), f * int(k0), seed, size["t_end"]) for f in FACTORS for k0 in k0s
                                 for seed in range(size["seeds"])]))
    for f in FACTORS:
        for a, k0 in enumerate(k0s):
            for seed in range(size["seeds"]):
                res = next(results)
                risk = res.observables["train_risk"]
                final[f][a, seed] = risk[-1] / risk[0]
                label[f][a, seed], point, cert = landscape.verdict(res)
                psi[f][a, seed], lam_min[f][a, seed] = cert.min_psi / cert.scale, point.spectrum[0]
                hessian_error[f][a, seed], gradient[f][a, seed] = point.hessian_error, point.gradient_norm
    fraction = {f: {c: np.mean(label[f] == c, axis=1) for c in ("global",) + LABELS} for f in FACTORS}

    fig, axes = plt.subplots(1, 3, figsize=(19, 5.6))
    width = 0.38
    for j, f in enumerate(FACTORS):
        name = "k = k0" if f == 1 else f"k = {f} k0"
        x = np.arange(len(k0s)) + (j - 0.5) * width
        bottom = np.zeros(len(k0s))
        for shade, which in zip((1.0, 0.55, 0.3, 0.15), LABELS):
            axes[0].bar(x, fraction[f][which], width, bottom=bottom, color=COLORS[f], alpha=shade,
                        label=f"{name}: {which}" if fraction[f][which].any() else None)
            bottom += fraction[f][which]
        jitter = np.linspace(-0.12, 0.12, size["seeds"])
        for which, marker in MARKERS.items():
            rows, seeds = np.nonzero(label[f] == which)
            if len(rows):
                axes[1].semilogy(x[rows] + jitter[seeds], np.maximum(final[f][rows, seeds], ROUND_OFF), marker,
                                 color=COLORS[f], ms=5, alpha=0.8, label=f"{name}: {which}")
                axes[2].plot(lam_min[f][rows, seeds], psi[f][rows, seeds], marker, color=COLORS[f], ls="", ms=6,
                             alpha=0.8)
    for ax in axes[:2]:
        ax.set_xticks(np.arange(len(k0s)), [f"k0 = {k}" for k in k0s])
        ax.set_xlabel("teacher width $k_0$ (= input dimension d)")
    axes[0].set_ylabel(f"fraction of {size['seeds']} random initialisations")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title("runs not certified global, by their critical point (the rest are certified)")
    axes[0].legend(fontsize=8)
    axes[1].axhline(ROUND_OFF, color="0.5", lw=0.8, label=f"zero to round-off (|R| < {ROUND_OFF:g}), drawn here")
    axes[1].set_ylabel(r"$R(\theta_T) / R(\theta_0)$, each run")
    axes[1].set_title("trapped runs keep 0.2-2 % of the initial risk")
    axes[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)   # below: hides no run
    axes[2].set_xscale("symlog", linthresh=1e-6)
    axes[2].set_yscale("symlog", linthresh=1e-8)
    axes[2].axhline(-1e-6, color="k", ls=":", lw=1, label="certified global above this line")
    axes[2].axvline(0, color="0.5", lw=0.8)
    axes[2].set_xlabel(r"smallest Hessian eigenvalue at the polished critical point, $\lambda_{\min}$")
    axes[2].set_ylabel(r"$\min_{|w|=1} \psi(w)$ / scale of $\psi$")
    axes[2].set_title(r"trapped runs: local minima ($\lambda_{\min} > 0$) that $\psi$ rejects")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Safran & Shamir's setting (outputs fixed at +1, hidden layer trained, orthonormal teacher, "
                 f"T = {size['t_end']:g}):\nk = k0 is sometimes trapped at a local minimum the certificate rejects, "
                 "k = 2 k0 is always certified global")
    fig.tight_layout()
    trapped = label[1] == "trapped"
    claims = [
        claim("k = 2 k0: every run is certified global, at every k0", "certified fraction at k = 2 k0",
              fraction[2]["global"], ">=", 1.0),
        claim(f"k = k0: some runs are trapped at a spurious local minimum at k0 = {k0s[-1]}",
              f"trapped fraction at k = k0 = {k0s[-1]}", fraction[1]["trapped"][-1], ">", 0.0),
        claim("the trapped runs are local minima the certificate rejects", "min psi / scale of trapped runs (k = k0)",
              psi[1][trapped], "<", -1e-3),
        claim("... their smallest Hessian eigenvalue is positive beyond 10 times its error",
              "lambda_min - 10 x Hessian error of trapped runs (k = k0)",
              lam_min[1][trapped] - 10 * hessian_error[1][trapped], ">", 0.0),
        claim("the trapped runs are polished to critical points", "|grad R| of trapped runs (k = k0)",
              gradient[1][trapped], "<=", 1e-12, kind="check"),
        claim("trapped runs keep 0.2-2 % of the initial risk", "R(T) / R(0) of trapped runs (k = k0)",
              final[1][trapped], "in", [2e-3, 2e-2]),
        claim("certified runs are near zero risk (below 1e-4 of the initial: certified to 1e-6 of psi's scale, "
              "not at the minimum)", "R(T) / R(0) of certified runs",
              np.concatenate([final[f][label[f] == "global"] for f in FACTORS]), "<", 1e-4),
    ]
    if len(k0s) >= 3:            # quick mode has one k0
        claims.append(claim("the trapped fraction grows with k0 (spurious minima become common as k0 grows)",
                            "trapped fraction at k = k0, each k0 minus the previous one",
                            np.diff(fraction[1]["trapped"]), ">=", 0.0))
    numbers = {"k0s": k0s, "fractions": {f"k = {f} k0": fraction[f] for f in FACTORS},
               "labels": {f"k = {f} k0": label[f].tolist() for f in FACTORS},
               "final_relative_risk": {f"k = {f} k0": final[f] for f in FACTORS},
               "psi_min_over_scale": {f"k = {f} k0": psi[f] for f in FACTORS},
               "hessian_lambda_min": {f"k = {f} k0": lam_min[f] for f in FACTORS},
               "hessian_error": {f"k = {f} k0": hessian_error[f] for f in FACTORS},
               "gradient_norm": {f"k = {f} k0": gradient[f] for f in FACTORS}}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": config(int(k0s[0]), int(k0s[0]), 0, size["t_end"]),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
