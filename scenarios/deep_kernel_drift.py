"""Trained to convergence, wide deep ReLU networks keep their tangent kernel: its relative change
falls with the width at every depth (between m^-1 and Du et al.'s m^-1/2 bound, not width-free as in
the feature-learning regime); per layer it grows with depth for fully connected networks and not for
residual ones (the contrast behind Du et al.'s exponential against polynomial width requirements);
lambda_min(H(t)) stays near the deep H_inf's lambda0 all along, and the risk converges linearly at
the rate of the kernel's smallest eigenvalue.

Source: Du, Lee, Li, Wang & Zhai (2019), Gradient descent finds global minima of deep neural
networks (Theorems 5.1 and 6.1: lambda_min(H(t)) stays above lambda0 / 2 and the risk falls like
exp(-lambda0 t / n) once m is polynomial in n / lambda0 and exponential in L for fully connected,
polynomial in L for residual networks); Dyer & Gur-Ari (2020) and Huang & Yau (2020) for the
kernel's change during training, O(1/m) for smooth activations.

Setting: NTK parameterisation, ReLU, both architectures (resnet: Du et al.'s c_res / (L sqrt(m)),
c_res = 1), depths L = 2-5, widths m = 32-512, 4 seeds, n = 20 inputs on the unit sphere of R^10
with teacher labels, squared loss, full-batch gradient descent with dt = 0.2 until the risk is
1e-6 of its start (``record.stop_below``: the kernel at convergence, what is left to move being of
the order of the last residual, 1e-3 of the first; at most T = 600).
lambda0 = lambda_min(Theta^(L)) of the architecture's recursion (``ntk.py``). Differences from
the paper: every layer is trained (Du et al. fix the output layer) and the rate is measured with
our time convention du/dt = -(1/n) H r, so that the risk falls like exp(-2 lambda t / n) along
the eigenvector of H with eigenvalue lambda. What theory predicts: a kernel change between
m^-1 (smooth activations) and m^-1/2 (the bound; ReLU's pattern flips add terms in between), where
the mean-field regime would leave it width-free; a risk falling at least like exp(-2 lambda_min t /
n) (the slowest mode; faster ones add to the measured rate until they die out), and
lambda_min(H(t)) -> lambda0 as m grows. The growth with depth is the slope of log(change) against L
at the widest width, fitted per seed.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.model import deep, ntk
from meanfield.tools.figures import scenario_main, simulate_all

SETTING = ("ReLU, NTK parameterisation, n = 20 on the sphere in d = 10, L = 2-5, m = 32-512, 4 seeds, to 1e-6 of "
           "R(0) (full mode)")
N, D, DT, C_RES = 20, 10, 0.2, 1.0
CONVERGED = 1e-6                # the runs stop at this fraction of R(0): the kernel at convergence
QUICK = {"widths": [16, 32, 64, 128, 256], "depths": [2], "seeds": 3, "t_end": 1500.0}   # no depth fit: too few
FULL = {"widths": [32, 64, 128, 256, 512], "depths": [2, 3, 4, 5], "seeds": 4, "t_end": 600.0}
ARCHITECTURES = ("mlp", "resnet")
COLORS = {"mlp": "tab:red", "resnet": "tab:blue"}


def config(architecture, depth, m, seed, t_end):
    return mf.Config(seed=seed, network={"m": m, "d": D, "depth": depth, "architecture": architecture, "c_res": C_RES},
                     data={"kind": "teacher", "n": N, "n_test": 0, "inputs": "sphere", "teacher_m0": 5},
                     flow={"dt": DT, "t_end": t_end},
                     record={"n_records": 201, "spacing": "linear", "snapshots": False, "stop_below": CONVERGED,
                             "diagnostics": ["kernel_change", "lambda_min"]})


def lambda0(architecture, depth, X):
    theta = (ntk.deep_relu_kernels(X, depth)[1] if architecture == "mlp" else
             ntk.deep_resnet_relu_kernels(X, depth, deep.resnet_scale(depth, C_RES, 2.0))[1])
    return float(np.linalg.eigvalsh(theta)[0])


def late_rate(t, risk):
    """-d log R / dt fitted where the risk is between 1e-3 and 1e-14 of R(0) (past the fast
    modes, above round-off; the runs stop at CONVERGED)."""
    keep = (risk < 1e-3 * risk[0]) & (risk > 1e-14 * risk[0])
    if keep.sum() < 3:
        keep = np.arange(len(t)) >= len(t) // 2
    return float(-np.polyfit(t[keep], np.log(risk[keep]), 1)[0])


def growth_per_layer(drift_widest: np.ndarray, depths) -> dict:
    """d log(kernel change) / dL at the widest width, fitted per seed (drift_widest (depths, seeds)),
    with a Student-t interval over seeds."""
    from scipy import stats

    slopes = [float(np.polyfit(depths, np.log(drift_widest[:, s]), 1)[0]) for s in range(drift_widest.shape[1])]
    mean, spread = float(np.mean(slopes)), float(np.std(slopes, ddof=1) / np.sqrt(len(slopes)))
    half = float(stats.t.ppf(0.975, len(slopes) - 1) * spread)
    return {"slope": mean, "ci_low": mean - half, "ci_high": mean + half, "slopes": slopes}


def run(quick, out):
    size = QUICK if quick else FULL
    widths, depths = np.array(size["widths"]), size["depths"]
    data = mf.make_data(config("mlp", 2, 1, 0, 1.0), np.random.default_rng(0))      # one data set for all runs
    drift, rates, lam_end, lam_low, bound_ok, lam0, curves, stopped = {}, {}, {}, {}, {}, {}, {}, []
    for arch in ARCHITECTURES:
        for L in depths:
            lam0[arch, L] = lambda0(arch, L, data.X)
            flat = simulate_all([config(arch, L, int(m), seed, size["t_end"]) for m in widths
                                 for seed in range(size["seeds"])], (data.X, data.y))
            runs = [flat[k * size["seeds"]:(k + 1) * size["seeds"]] for k in range(len(widths))]
            stopped += [r.status == "converged" for rs in runs for r in rs]
            drift[arch, L] = np.array([[r.observables["kernel_change"][-1] for r in rs] for rs in runs])
            rates[arch, L] = np.array([late_rate(r.t, r.observables["train_risk"]) for r in runs[-1]])
            lam_end[arch, L] = np.array([[r.observables["lambda_min"][-1] for r in rs] for rs in runs])
            lam_low[arch, L] = np.array([r.observables["lambda_min"].min() / lam0[arch, L] for r in runs[-1]])
            bound_ok[arch, L] = [bool(np.all(r.observables["train_risk"] <= r.observables["train_risk"][0]
                                             * np.exp(-lam0[arch, L] * r.t / N) * (1 + 1e-9))) for r in runs[-1]]
            curves[arch, L] = runs[-1][0]

    fig, axes = plt.subplots(2, 3, figsize=(19, 10))
    axes = axes.ravel()
    shades = dict(zip(depths, plt.cm.viridis(np.linspace(0.1, 0.9, len(depths)))))
    fits = {}
    for ax, arch in zip(axes[:2], ARCHITECTURES):
        series = {f"L = {L}": drift[arch, L] for L in depths}
        found = plotting.seed_scaling(ax, widths, series, "width $m$", r"$\|H(T) - H(0)\|_F / \|H(0)\|_F$",
                                      {f"L = {L}": shades[L] for L in depths})
        fits.update({(arch, L): found[f"L = {L}"] for L in depths})
        top = np.median(drift[arch, depths[-1]][0])
        ax.plot(widths, top * (widths / widths[0]) ** -0.5, "k--", lw=1, label=r"$m^{-1/2}$ (Du et al.'s bound)")
        ax.plot(widths, top * (widths / widths[0]) ** -1.0, "k:", lw=1, label=r"$m^{-1}$ (smooth $\sigma$)")
        ax.set_title(f"{arch}: kernel change at convergence (R = {CONVERGED:g} R(0))")
        ax.legend(fontsize=7, title="depth: fitted slope [95% CI]")
    ax = axes[2]
    deep_enough = len(depths) >= 3                                        # a growth rate needs three depths
    growth = {arch: growth_per_layer(np.array([drift[arch, L][-1] for L in depths]), depths)
              for arch in ARCHITECTURES} if deep_enough else {}
    for arch in growth:
        values = np.array([drift[arch, L][-1] for L in depths])
        ax.plot(np.repeat(depths, values.shape[1]), values.ravel(), ".", color=COLORS[arch], alpha=0.5)
        g = growth[arch]
        ax.plot(depths, np.exp(np.mean(np.log(values)) + g["slope"] * (np.array(depths) - np.mean(depths))), "-",
                color=COLORS[arch], label=f"{arch}: x{np.exp(g['slope']):.2f} per layer "
                                          f"[{np.exp(g['ci_low']):.2f}, {np.exp(g['ci_high']):.2f}]")
    ax.set_yscale("log")
    ax.set_xlabel("depth $L$ (hidden layers)")
    ax.set_xticks(depths)
    ax.set_ylabel(f"kernel change at m = {widths[-1]} (each seed)")
    ax.set_title("growth with depth (fitted per seed, 95% CI)" if deep_enough else
                 "growth with depth: quick mode has one depth (full mode fits it)")
    if deep_enough:
        ax.legend(fontsize=8)
    ax = axes[3]
    for arch, style in zip(ARCHITECTURES, ("-", "--")):
        for L in depths:
            r = curves[arch, L]
            ax.semilogy(r.t, r.observables["train_risk"], style, color=shades[L], lw=1.3, label=f"{arch}, L = {L}")
            ax.semilogy(r.t, r.observables["train_risk"][0] * np.exp(-2 * lam0[arch, L] * r.t / N), style,
                        color=shades[L], lw=0.6, alpha=0.6)
    ax.set_ylim(bottom=CONVERGED / 10)
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"training risk $R(t)$ (thin: $R(0)\,e^{-2\lambda_0 t/n}$)")
    ax.set_title(f"m = {widths[-1]}, seed 0")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[4]
    for arch, style in zip(ARCHITECTURES, ("-", "--")):
        for L in depths:
            r = curves[arch, L]
            ax.plot(r.t, r.observables["lambda_min"] / lam0[arch, L], style, color=shades[L], lw=1.3,
                    label=f"{arch}, L = {L}")
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label=r"$\lambda_0 / 2$ (Du et al.)")
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"$\lambda_{\min}(H(t)) / \lambda_0$")
    ax.set_title(f"the smallest eigenvalue along training, m = {widths[-1]}, seed 0")
    ax.legend(fontsize=6, ncol=2)
    axes[5].axis("off")
    depth_say = ("grows with depth when fully connected but not when residual" if deep_enough else
                 "(its growth with depth: full mode)")
    fig.suptitle("Deep ReLU networks trained to convergence: the tangent kernel's change falls with width (between "
                 r"$m^{-1}$ and $m^{-1/2}$), " + depth_say + "; "
                 "\n" r"$\lambda_{\min}(H(t))$ stays near $\lambda_0$ and the risk converges linearly at its rate")
    fig.tight_layout()

    ratio = {key: rates[key] / (2 * lam_end[key][-1] / N) for key in rates}          # against the run's own H(T)
    gap = {key: np.abs(lam_end[key] / lam0[key] - 1) for key in lam_end}               # (widths, seeds)
    widest_gap = float(np.median(np.concatenate([g[-1] for g in gap.values()])))
    claims = [claim(f"every run reaches the stopping rule (risk {CONVERGED:g} of R(0)) before T", "runs converged",
                    float(np.mean(stopped)), ">=", 1.0, kind="check")]
    claims += [rate(f"{arch}, L = {L}: the kernel change falls with the width, between about m^-1 and m^-1/2, not "
                    "width-free (the mean-field regime's exponent 0)",
                    f"slope vs m ({arch}, L = {L}), 95 % interval over seeds", fits[arch, L], theory=-0.5,
                    window=[-1.25, -0.3], rival=0.0) for arch in ARCHITECTURES for L in depths]
    claims += [
        claim("every run at the widest width stays under Du et al.'s bound R(0) exp(-lambda0 t / n)",
              "fraction of runs under the bound", float(np.mean([ok for oks in bound_ok.values() for ok in oks])),
              ">=", 1.0),
        claim("at the widest width lambda_min(H(t)) stays above lambda0 / 2 at every record (every run)",
              "min_t lambda_min(H(t)) / lambda0", np.concatenate(list(lam_low.values())), ">", 0.5),
        claim("the risk falls at least at the rate 2 lambda_min(H(T)) / n of the kernel's slowest mode "
              "(late rate over it, widest width, every run, 10 % slack)",
              "rate / (2 lambda_min(H(T)) / n)", np.concatenate(list(ratio.values())), ">=", 0.9),
        claim("at the widest width lambda_min(H(T)) is within 30 % of lambda0 (median over runs)",
              "median |lambda_min(H(T)) / lambda0 - 1|", widest_gap, "<", 0.3),
    ]
    claims += [
        claim("the fully connected network's kernel change grows with depth (per-layer growth of its logarithm at "
              "the widest width, 95 % interval over seeds, above 0)", "d log(change) / dL, mlp",
              [growth["mlp"]["ci_low"], growth["mlp"]["ci_high"]], ">", 0.0, slope=growth["mlp"]["slope"]),
        claim("the residual network's grows less per layer than the fully connected network's (whole intervals "
              "apart)", "mlp's lower end minus resnet's upper end",
              growth["mlp"]["ci_low"] - growth["resnet"]["ci_high"], ">", 0.0),
    ] if deep_enough else []
    numbers = {"widths": widths, "depths": depths, "n": N, "d": D, "dt": DT, "t_end": size["t_end"],
               "kernel_change": {f"{a}, L = {L}": v for (a, L), v in drift.items()},
               "fits": {f"{a}, L = {L}": f for (a, L), f in fits.items()}, "growth_per_layer": growth,
               "lambda0": {f"{a}, L = {L}": v for (a, L), v in lam0.items()},
               "late_rate_over_2lambda_min_n": {f"{a}, L = {L}": v for (a, L), v in ratio.items()},
               "lambda_min_end": {f"{a}, L = {L}": v for (a, L), v in lam_end.items()}, "widest_lambda_gap": widest_gap,
               "min_lambda_over_lambda0": {f"{a}, L = {L}": v for (a, L), v in lam_low.items()}}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])),
                 "config": config("resnet", depths[-1], int(widths[-1]), 0, size["t_end"]),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
