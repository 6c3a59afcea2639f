"""With no data, weight decay and temperature, the particles are an Ornstein–Uhlenbeck process:
their variance follows the Euler–Maruyama recursion within sampling error at every record, their
law is as close to the exact Gaussian in W2 as an independent sample is, and the stationary
variance is T / (lam (1 - lam dt / 2)) within 4 standard errors, not the continuous T / lam.

Source: the exactly solvable case of mean-field Langevin dynamics (Mei, Montanari & Nguyen 2018;
Chizat 2022); the discretised stationary law is the classical Euler–Maruyama result.

Left: per-coordinate variance of the particles against the exact Euler–Maruyama recursion
v_{k+1} = (1 - lam dt)^2 v_k + 2 T dt and the continuous-time law. Middle: exact W2 (POT)
between the particles and an independent sample of the exact law, against the W2 between two
independent samples of that law (the sampling floor). Right: stationary variance against dt.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim
from meanfield.analysis.distances import w2
from meanfield.tools.figures import scenario_main

SETTING = "no data, d = 1, m = 2000 (2 x 10^5 for the stationary law), 1 seed (full mode)"
LAM, T = 1.0, 0.5
QUICK = {"m": 1000, "dts": [0.4, 0.2, 0.1, 0.05], "stationary_m": 20000}
FULL = {"m": 2000, "dts": [0.8, 0.4, 0.2, 0.1, 0.05, 0.025], "stationary_m": 200000}


def config(m, dt, t_end, n_records=11):
    return mf.Config(seed=0, network={"m": m, "d": 1}, init={"w_scale": 2.0, "a_scale": 2.0},
                     data={"kind": "none"}, flow={"dt": dt, "t_end": t_end, "lam": LAM, "temperature": T},
                     record={"n_records": n_records, "spacing": "linear"})


def exact_variance(v0, dt, steps):
    """Euler–Maruyama: v_k = q^(2k) v0 + v_inf (1 - q^(2k)), q = 1 - lam dt."""
    q2 = (1 - LAM * dt) ** (2 * np.asarray(steps))
    v_inf = T / (LAM * (1 - LAM * dt / 2))
    return q2 * v0 + v_inf * (1 - q2)


def run(quick, out):
    size = QUICK if quick else FULL
    dt = 0.2
    res = mf.simulate(config(size["m"], dt, 6.0))
    steps = np.round(res.t / dt)
    v0 = 4.0                                                     # w_scale = a_scale = 2
    predicted = exact_variance(v0, dt, steps)
    measured = np.array([np.var(s, axis=0).mean() for s in res.snapshots])
    continuous = T / LAM + (v0 - T / LAM) * np.exp(-2 * LAM * res.t)
    rng = np.random.default_rng(1)
    distance, floor = [], []
    for k, snap in enumerate(res.snapshots):
        exact_sample = rng.standard_normal(snap.shape) * np.sqrt(predicted[k])
        other = rng.standard_normal(snap.shape) * np.sqrt(predicted[k])
        distance.append(w2(snap, exact_sample, method="exact").value)
        floor.append(w2(other, exact_sample, method="exact").value)
    dts = np.array(size["dts"])
    stationary = [np.var(mf.simulate(config(size["stationary_m"], float(h), 12.0 / LAM, 2)).theta) for h in dts]

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    axes[0].plot(res.t, measured, "o", ms=6, label=f"particles (m = {size['m']}, dt = {dt})")
    axes[0].plot(res.t, predicted, "-", lw=1.8, label="exact Euler–Maruyama law")
    axes[0].plot(res.t, continuous, "--", lw=1.2, label="continuous-time OU law")
    axes[0].set_xlabel("time $t$ (flow units)")
    axes[0].set_ylabel(r"variance of each coordinate of $\theta_i$")
    axes[0].set_title(f"T = {T:g}, λ = {LAM:g}: the law is the exact Gaussian")
    axes[0].legend(fontsize=8)
    axes[1].plot(res.t, distance, "o-", lw=1.8, label="particles vs a sample of the exact law")
    axes[1].plot(res.t, floor, "s--", lw=1.2, color="0.5", label="two samples of the exact law")
    axes[1].set_xlabel("time $t$ (flow units)")
    axes[1].set_ylabel(r"$W_2$ (exact, POT)")
    axes[1].set_title("W2 to the exact law stays at the sampling floor")
    axes[1].legend(fontsize=8)
    grid = np.linspace(0, dts.max() * 1.05, 100)
    axes[2].plot(dts, stationary, "o", ms=7, label=f"measured (m = {size['stationary_m']})")
    axes[2].plot(grid, T / (LAM * (1 - LAM * grid / 2)), "-", lw=1.8, label=r"$T / (\lambda (1 - \lambda\, dt / 2))$")
    axes[2].axhline(T / LAM, ls="--", color="k", lw=1, label=r"$T / \lambda$ (continuous time)")
    axes[2].set_xlabel("time step dt")
    axes[2].set_ylabel("stationary variance")
    axes[2].set_title("Euler–Maruyama's stationary variance, exactly")
    axes[2].legend(fontsize=8)
    fig.suptitle("The exactly solvable case: Ornstein–Uhlenbeck particles (no data, weight decay, temperature)")
    fig.tight_layout()
    numbers = {"times": res.t, "measured_variance": measured, "exact_em_variance": predicted,
               "w2_to_exact_law": distance, "w2_sampling_floor": floor, "dts": dts,
               "stationary_variance": stationary, "stationary_em_formula": T / (LAM * (1 - LAM * dts / 2)),
               "w2_method": "exact"}
    samples = res.theta.size           # variances averaged over the m (d + 1) coordinates
    stationary_samples = 2 * size["stationary_m"]
    claims = [
        claim("the measured variance matches the Euler–Maruyama recursion within 4 standard errors at every record",
              "|measured / exact - 1| / (4 sqrt(2 / m))", np.abs(np.asarray(measured) / np.asarray(predicted) - 1)
              / (4 * np.sqrt(2 / samples)), "<", 1.0),
        claim("W2 to the exact law is within 1.25 times the two-sample floor at every record (the floor is one "
              "draw itself: the ratio spreads by about 15 % between records)", "W2 / floor",
              np.asarray(distance) / np.asarray(floor), "<", 1.25),
        claim("the stationary variance is T / (lam (1 - lam dt / 2)) within 4 standard errors at every dt",
              "|stationary variance / formula - 1| / (4 sqrt(2 / m))", np.abs(np.asarray(stationary)
              / (T / (LAM * (1 - LAM * dts / 2))) - 1) / (4 * np.sqrt(2 / stationary_samples)), "<", 1.0),
        claim("... and not the continuous T / lam: at dt >= 0.2 it is more than 4 standard errors away",
              "|stationary variance / (T / lam) - 1| / (4 sqrt(2 / m)), dt >= 0.2",
              np.abs(np.asarray(stationary)[dts >= 0.2] / (T / LAM) - 1) / (4 * np.sqrt(2 / stationary_samples)),
              ">", 1.0),
    ]
    return fig, {"setting": SETTING, "seed": 0, "config": res.config, "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
