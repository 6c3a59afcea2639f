"""The initialisation scale decides the regime: from a small init the mean-field flow learns the
teacher's features and generalises; from a large one it trains like a kernel method and its
test risk is worse, both for gradient descent on a finite sample and for online SGD.

Source: Chizat's lecture notes (numerical experiment I); Chizat, Oyallon & Bach (2019).

Teacher of 3 ReLU neurons in d = 10, student of m neurons under mean-field scaling, symmetric
initialisation (f_0 = 0) scaled by tau. The tangent kernel grows like tau^2, so time runs on
the scale 1/max(1, tau^2): dt and the horizon are divided by it (same number of steps).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.claims import claim
from meanfield.figures import scenario_main

D = 10
QUICK = {"taus": [0.03, 0.3, 3.0, 10.0], "m": 100, "n": 60, "seeds": 1, "steps": 2000}
FULL = {"taus": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0], "m": 400, "n": 60, "seeds": 3, "steps": 6000}


def config(size, tau, online, seed):
    rescale = max(1.0, tau * tau)
    dt = 0.1 / rescale
    return mf.Config(
        seed=seed,
        network={"m": size["m"], "d": D, "activation": "relu", "scaling": "mean_field"},
        init={"w_law": "gaussian", "w_scale": 1 / np.sqrt(D), "a_law": "gaussian", "tau": tau, "symmetric": True},
        data={"kind": "teacher", "n": size["n"], "n_test": 2000, "teacher_m0": 3},
        flow={"dt": dt, "t_end": dt * size["steps"], "online": online, "batch_size": 10 if online else 0},
        record={"n_records": 30, "snapshots": False})


def run(quick, out):
    size = QUICK if quick else FULL
    taus = np.array(size["taus"])
    methods = {"GD on n = %d samples" % size["n"]: False, "online SGD (fresh samples)": True}
    test, train, moved = {}, {}, {}
    for name, online in methods.items():
        runs = [[mf.simulate(config(size, tau, online, seed)) for seed in range(size["seeds"])] for tau in taus]
        test[name] = np.array([np.mean([r.observables["test_risk"][-1] for r in rs]) for rs in runs])
        train[name] = np.array([np.mean([r.observables["train_risk"][-1] for r in rs]) for rs in runs])
        moved[name] = np.array([np.mean([r.observables["displacement_mean"][-1] / np.sqrt(np.mean(r.theta0 ** 2) * (D + 1))
                                         for r in rs]) for rs in runs])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for name in methods:
        line, = axes[0].loglog(taus, test[name], "o-", lw=2, label=f"{name}: test risk")
        if not methods[name]:
            axes[0].loglog(taus, np.maximum(train[name], 1e-16), "s:", color=line.get_color(), label=f"{name}: train risk")
        axes[1].loglog(taus, moved[name], "o-", lw=2, label=name)
    axes[0].set_xlabel(r"initialisation scale $\tau$")
    axes[0].set_ylabel("risk after training")
    axes[0].set_title("large init: fits the sample, generalises worse")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel(r"initialisation scale $\tau$")
    axes[1].set_ylabel(r"relative displacement $\overline{|\theta_i(T) - \theta_i(0)|}\, /\, |\theta(0)|_{rms}$")
    axes[1].set_title("large init: neurons barely move (lazy)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Initialisation scale and the two regimes (mean-field scaling, m = {size['m']}, d = {D}, "
                 f"teacher of 3 ReLU neurons)")
    fig.tight_layout()
    numbers = {"taus": taus, "test_risk": test, "train_risk": train, "relative_displacement": moved}
    claims = []
    for name in methods:
        claims.append(claim(f"{name}: the largest init's test risk is over 5 times the smallest init's",
                            f"test risk at tau = {taus[-1]:g} / at tau = {taus[0]:g} ({name})", test[name][-1] / test[name][0],
                            ">", 5.0))
        claims.append(claim(f"{name}: from the largest init the neurons move under 1 % as far (relative to their size)",
                            f"relative displacement at tau = {taus[-1]:g} / at tau = {taus[0]:g} ({name})",
                            moved[name][-1] / moved[name][0], "<", 0.01))
    return fig, {"seed": list(range(size["seeds"])), "config": config(size, float(taus[0]), False, 0),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
