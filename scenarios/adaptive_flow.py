"""Is this the gradient flow, or an artefact of the step size? Accuracy against work on a
mean-field teacher-student run: fixed-step Euler, Heun and RK4 reach their orders 1, 2 and 4,
and the error-controlled Dormand–Prince 5(4) integrator reaches any accuracy with the fewest
drift evaluations, its error proportional to its tolerance.

Source: Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I (II.4, embedded
pairs and step-size control); Dormand & Prince (1980).

Setting: mean-field two-layer tanh network (both layers trained), teacher of 3 tanh neurons,
n samples in d = 5, full batch, squared loss, up to T. Error: max |theta_T - theta_T^ref| over the
particles, the reference being the adaptive run at rtol = 1e-12 (checked against RK4 at a step
where RK4's own error is below 1e-11). Work: drift evaluations (stages x steps; the adaptive
integrator's count includes its rejected steps). ReLU's drift jumps at the activation kinks and
every method drops to order 1 there (docs/conventions.md); this figure shows the smooth case.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim, rate
from meanfield.analysis.fits import seed_slopes
from meanfield.model import integrators
from meanfield.tools.figures import scenario_main

SETTING = "tanh, m = 100, n = 200, d = 5, T = 10, 3 seeds (full mode)"
QUICK = {"m": 40, "n": 80, "t_end": 5.0, "seeds": 3}
FULL = {"m": 100, "n": 200, "t_end": 10.0, "seeds": 3}
DTS = {"euler": [0.1, 0.05, 0.025, 0.0125, 0.00625], "heun": [0.2, 0.1, 0.05, 0.025, 0.0125],
       "rk4": [0.125, 0.0625, 0.03125, 0.015625, 0.0078125]}
RTOLS = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]
COLORS = {"euler": "tab:red", "heun": "tab:orange", "rk4": "tab:green", "adaptive": "tab:blue"}
TARGET = 1e-6           # the accuracy at which the work is compared


def config(size, seed, **flow):
    return mf.Config(seed=seed, network={"m": size["m"], "d": 5, "activation": "tanh"},
                     data={"n": size["n"], "teacher_activation": "tanh", "teacher_m0": 3},
                     flow={"dt": 0.1, "t_end": size["t_end"], **flow}, record={"n_records": 2})


def measure(size, seed):
    reference = mf.simulate(config(size, seed, integrator="adaptive", rtol=1e-12, atol=1e-15)).theta
    check = mf.simulate(config(size, seed, integrator="rk4", dt=0.005)).theta
    rows = {}
    for method, dts in DTS.items():
        stages = integrators.INTEGRATORS[method].stages
        rows[method] = [(stages * round(size["t_end"] / dt),
                         float(np.max(np.abs(mf.simulate(config(size, seed, integrator=method, dt=dt)).theta
                                             - reference)))) for dt in dts]
    runs = [mf.simulate(config(size, seed, integrator="adaptive", rtol=r, atol=1e-3 * r)) for r in RTOLS]
    rows["adaptive"] = [(r.stats["drift_evaluations"], float(np.max(np.abs(r.theta - reference)))) for r in runs]
    return rows, float(np.max(np.abs(check - reference)))


def work_at(rows, target):
    """Drift evaluations to reach error `target`: a power law work ~ error^p fitted to the curve
    (Euler and Heun are extrapolated: they stay above 1e-6 within the steps shown)."""
    work, error = np.array(rows, dtype=float).T
    p = np.polyfit(np.log(error), np.log(work), 1)
    return float(np.exp(np.polyval(p, np.log(target))))


def run(quick, out):
    size = QUICK if quick else FULL
    seeds = list(range(size["seeds"]))
    measured = [measure(size, seed) for seed in seeds]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    fits = {}
    for method, color in COLORS.items():
        for k, (rows, _) in enumerate(measured):
            work, error = np.array(rows[method]).T
            axes[0].loglog(work, error, "o-", color=color, alpha=0.8, ms=4, label=method if k == 0 else None)
        if method != "adaptive":
            fits[method] = seed_slopes([size["t_end"] / dt for dt in DTS[method]],
                                       np.column_stack([np.array(rows[method])[:, 1] for rows, _ in measured]))
    for k, (rows, _) in enumerate(measured):
        axes[1].loglog(RTOLS, np.array(rows["adaptive"])[:, 1], "o-", color=COLORS["adaptive"], ms=4,
                       label="adaptive (each seed)" if k == 0 else None)
    axes[1].loglog(RTOLS, RTOLS, "k--", lw=1, label="error = rtol")
    fits["adaptive"] = seed_slopes(RTOLS, np.column_stack([np.array(rows["adaptive"])[:, 1] for rows, _ in measured]))
    axes[0].axhline(TARGET, color="0.5", ls=":", lw=1)
    axes[0].set_xlabel("drift evaluations to t = T")
    axes[0].set_ylabel(r"error at T, $\max |\theta_T - \theta_T^{\rm ref}|$")
    axes[0].set_title("accuracy against work (slopes: -1, -2, -4)")
    axes[0].legend()
    axes[1].set_xlabel("flow.rtol (atol = 1e-3 rtol)")
    axes[1].set_ylabel(r"error at T, $\max |\theta_T - \theta_T^{\rm ref}|$")
    axes[1].set_title(f"adaptive: error proportional to the tolerance (slope {fits['adaptive']['slope']:.2f})")
    axes[1].legend()
    saved = {method: np.median([work_at(rows[method], TARGET) / work_at(rows["adaptive"], TARGET)
                                for rows, _ in measured]) for method in DTS}
    fig.suptitle(f"Mean-field tanh network, m = {size['m']}, n = {size['n']}: at error {TARGET:g} the adaptive "
                 f"integrator needs {saved['rk4']:.1f}x fewer drift evaluations than RK4\n"
                 f"(and {saved['heun']:.0f}x, {saved['euler']:.0f}x fewer than Heun, Euler: their power laws "
                 "extrapolated)")
    fig.tight_layout()
    windows = {"euler": ([-1.45, -0.55], -2.0), "heun": ([-2.45, -1.55], [-1.0, -3.0]),
               "rk4": ([-4.45, -3.55], [-3.0, -5.0])}
    claims = [rate(f"{method}: error ~ dt^{order} (against dt^{order - 1 if order > 1 else 2}: the interval over seeds "
                   f"of the fitted slope lies within 0.45 of -{order})", f"{method} slope of error against steps",
                   fits[method], -order, *windows[method])
              for method, order in (("euler", 1), ("heun", 2), ("rk4", 4))]
    claims += [
        rate("adaptive: error proportional to the tolerance (not to tol^(4/5), what control of the embedded "
             "4th-order error alone would give)", "adaptive slope of error against rtol", fits["adaptive"], 1.0,
             [0.9, 1.35], 0.8),
        claim(f"at error {TARGET:g} the adaptive integrator needs fewer drift evaluations than RK4",
              "RK4 / adaptive evaluations at the target error", saved["rk4"], ">", 1.0),
        claim("the reference is accurate: RK4 at dt = 0.005 agrees with it", "max |RK4 - reference|",
              [err for _, err in measured], "<", 1e-10, kind="check"),
    ]
    numbers = {"dts": DTS, "rtols": RTOLS, "measured": [rows for rows, _ in measured],
               "reference_check": [err for _, err in measured], "fits": fits,
               "evaluations_ratio_at_target": saved}
    return fig, {"setting": SETTING, "seed": seeds, "config": config(size, 0, integrator="adaptive"),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
