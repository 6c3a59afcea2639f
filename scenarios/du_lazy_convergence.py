"""Wide lazy ReLU networks converge linearly, under the exp(-lambda0 t / n) envelope, while
their neurons and activation patterns move less and less as m grows (like m^-1/2).

Source: Du, Zhai, Poczos & Singh (2019), Gradient descent provably optimizes over-parameterized
neural networks.

Setting of the paper: lazy scaling 1/sqrt(m), a_i = ±1 fixed (only w trains), w ~ N(0, I),
unit-norm inputs. lambda0 is the smallest eigenvalue of H_inf_jk = x_j.x_k (pi - angle_jk)/(2 pi).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield import ntk, plotting
from meanfield.figures import scenario_main

N, D = 20, 10
QUICK = {"widths": [64, 256, 1024], "seeds": 2, "t_end": 200.0}
FULL = {"widths": [64, 256, 1024, 4096, 16384], "seeds": 4, "t_end": 400.0}


def config(m, seed, t_end):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": D, "activation": "relu", "scaling": "lazy", "train": "hidden"},
        init={"w_law": "gaussian", "a_law": "rademacher"},
        data={"kind": "teacher", "n": N, "inputs": "sphere", "teacher_m0": 5, "teacher_signs": "rademacher"},
        flow={"dt": 0.5, "t_end": t_end},
        record={"n_records": 60, "spacing": "linear", "snapshots": False, "diagnostics": ["pattern_flips"]})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    data = mf.make_data(config(1, 0, 1.0), np.random.default_rng(0))    # one data set for all runs
    X, y = data.X, data.y
    H_inf = ntk.h_infinity(X)
    lam0 = ntk.lambda_min(H_inf)
    curves, deviation, displacement, flips, below = {}, [], [], [], True
    for m in widths:
        dev, disp, flip = [], [], []
        for seed in range(size["seeds"]):
            cfg = config(int(m), seed, size["t_end"])
            res = mf.simulate(cfg, data=(X, y))
            risk = res.observables["train_risk"]
            below &= bool(np.all(risk <= risk[0] * np.exp(-lam0 * res.t / N) * (1 + 1e-9)))
            dev.append(np.linalg.norm(ntk.tangent_kernel(res.theta0, X, cfg.network) - H_inf))
            disp.append(res.observables["displacement_max"][-1])
            flip.append(res.observables["pattern_flips"][-1])
            if seed == 0:
                curves[int(m)] = (res.t, risk)
        deviation.append(np.mean(dev))
        displacement.append(np.mean(disp))
        flips.append(np.mean(flip))

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    for m, (t, risk) in curves.items():
        line, = ax.semilogy(t, risk, lw=1.6, label=f"m = {m}")
        ax.semilogy(t, risk[0] * np.exp(-lam0 * t / N), "--", color=line.get_color(), lw=0.9)
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"training risk $R(\theta_t)$")
    ax.set_title(rf"linear convergence; dashed: $R(0)\,e^{{-\lambda_0 t/n}}$, $\lambda_0$ = {lam0:.3f}")
    ax.legend(fontsize=8)
    fit_dev = plotting.scaling(axes[1], widths, {r"$\|H(0) - H^\infty\|_F$": np.array(deviation)},
                               "width $m$", r"$\|H(0) - H^\infty\|_F$", expected={r"$\|H(0) - H^\infty\|_F$": -0.5})
    axes[1].set_title("the initial kernel concentrates on $H^\\infty$")
    fit_move = plotting.scaling(axes[2], widths, {"max displacement": np.array(displacement),
                                                  "pattern-flip fraction": np.array(flips)},
                                "width $m$", f"at t = {size['t_end']:g}",
                                expected={"max displacement": -0.5, "pattern-flip fraction": -0.5})
    axes[2].set_title(r"neurons move $O(m^{-1/2})$: lazy training")
    fig.suptitle(f"Du et al. (2019): over-parameterised ReLU networks train like their kernel (n = {N}, d = {D}, "
                 f"{size['seeds']} seeds)")
    fig.tight_layout()
    fits = {"kernel_deviation": next(iter(fit_dev.values())).to_dict(),
            **{k: f.to_dict() for k, f in fit_move.items()}}
    numbers = {"lambda0": lam0, "widths": widths, "kernel_deviation": deviation,
               "max_displacement": displacement, "pattern_flip_fraction": flips, "fits": fits,
               "all_risks_below_envelope": below}
    return fig, {"seed": list(range(size["seeds"])), "config": config(int(widths[0]), 0, size["t_end"]),
                 "numbers": numbers}


if __name__ == "__main__":
    scenario_main(__file__, run)
