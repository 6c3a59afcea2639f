"""In high dimension SGD on isotropic Gaussian classes follows a one-dimensional PDE: the
neurons' mean radius agrees with the reduced mean-field dynamics within 5 % and the test risk
within 30 %, the radial distributions get closer as the batch grows, and that PDE is the
d -> infinity limit of the exact m = infinity flow, within O(1/d).

Source: Mei, Montanari & Nguyen (2018), A mean field view of the landscape of two-layer neural
networks (isotropic Gaussians example).

Classes y = ±1 with x ~ N(0, (1 + y delta)^2 I_d); f(x) = (1/m) sum_i sigma(w_i . x) with the
output weights fixed at 1 and the bounded piecewise-linear sigma (s1 below t1, s2 above t2);
online SGD (fresh samples each step). As d grows, w . x ~ N(0, |w|^2 (1 + y delta)^2) and the
particles' radii r_i = |w_i| follow dr/dt = -(1/2) sum_y E_rho[(F_y(rho) - y) rho q'(r rho)],
with q(s) = E sigma(s G) in closed form, F_y(rho) = mean_i q(r_i rho) and rho = |x| / sqrt(d) ~
tau_y chi_d / sqrt(d), tau_y = 1 + y delta (rho -> tau_y as d -> infinity; at finite d its
spread leaves an O(1/d) risk floor, kept here); it starts from the K quantiles of the initial
radial law R0 chi_d / sqrt(d), a deterministic quadrature. The two radial distributions are compared with
the exact one-dimensional W2: SGD's gradient noise spreads the radii like a diffusion of variance
~ t dt / B, so the distance shrinks as the batch B grows, down to the floor that finite m and
finite d leave.

The exact m = infinity limit at this d (``meanfield.reduced``, the case k = 0: no teacher
direction) needs neither approximation: it integrates over the cosine between two neurons (Jacobi
law in d dimensions) and over the Gaussian inputs exactly (bivariate normal orthant probabilities
for the piecewise-linear sigma), from a Gauss rule of the initial radial law. Against it, MMN's
PDE is off by O(1/d): the last panel fits the exponent of its risk and mean-radius gaps over d.
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis.claims import claim, rate
from meanfield.analysis.distances import w2
from meanfield.analysis.fits import power_law, slope_interval
from meanfield.model.population import mean_terms
from meanfield.theory.reduced import reduced_limit
from meanfield.tools.figures import scenario_main

SETTING = ("d = 40, online SGD, m = 800, batches 50 and 800, 2 seeds; the exact m = infinity limit at "
           "level 12; MMN's PDE against it for d = 10 .. 320 up to t = 10 (full mode)")
QUICK = {"d": 20, "m": 400, "t_end": 20.0, "batch": 20, "K": 1_000, "level": 8, "sweep": (10, 20, 40, 80),
         "t_sweep": 5.0}
FULL = {"d": 40, "m": 800, "t_end": 40.0, "batch": 50, "K": 2_000, "level": 12, "sweep": (10, 20, 40, 80, 160, 320),
        "t_sweep": 10.0}
SWEEP_LEVEL = 8            # the Gauss rule's nodes in r for the sweep over d (level 8 against 16: 6e-7 relative)
SEEDS = (0, 1)
DELTA, R0, DT = 0.5, 0.8, 0.02
KNOTS, VALUES = (0.5, 1.5), (-2.5, 7.5)
PARAMS = mf.NetworkConfig(pwl_knots=KNOTS, pwl_values=VALUES).activation_params


def config(size, batch, seed=0):
    d = size["d"]
    return mf.Config(
        seed=seed,
        network={"m": size["m"], "d": d, "activation": "piecewise_linear", "scaling": "mean_field",
                 "train": "hidden", "pwl_knots": KNOTS, "pwl_values": VALUES},
        init={"w_law": "gaussian", "w_scale": R0 / np.sqrt(d), "a_law": "constant", "a_scale": 1.0},
        data={"kind": "isotropic_gaussians", "delta": DELTA, "n": 10, "n_test": 4000},
        flow={"dt": DT, "t_end": size["t_end"], "online": True, "batch_size": batch},
        record={"n_records": 9, "spacing": "linear"})


def q(s):
    """E sigma(s G), G ~ N(0, 1), and its derivative in s (s > 0), for the piecewise-linear sigma:
    ``population.mean_terms`` gives the mean and 2 d/d(s^2) of it."""
    mean, slope = mean_terms("piecewise_linear", s * s, PARAMS)
    return mean, s * slope


def reduced_dynamics(r, times, d, levels=32):
    """Euler steps (dt = DT) of the radial particles r (K,); their values at ``times`` and the risk.

    rho = |x| / sqrt(d) is averaged over ``levels`` quantiles of tau_y chi_d / sqrt(d) per class.
    """
    from scipy.stats import chi

    rho_unit = chi.ppf((np.arange(levels) + 0.5) / levels, d) / np.sqrt(d)          # (L,)
    classes = {1.0: (1 + DELTA) * rho_unit, -1.0: (1 - DELTA) * rho_unit}
    out, risks, r, t = [], [], r.copy(), 0.0

    def risk(r):
        return 0.25 * sum(np.mean((y - q(np.outer(rho, r))[0].mean(axis=1)) ** 2) for y, rho in classes.items())

    for target in times:
        while t < target - 1e-9:
            velocity = np.zeros_like(r)
            for y, rho in classes.items():
                value, slope = q(np.outer(rho, r))                                  # (L, K)
                residual = value.mean(axis=1) - y                                   # F_y(rho) - y
                velocity -= 0.5 * np.mean(residual[:, None] * rho[:, None] * slope, axis=0)
            r += DT * velocity
            t += DT
        out.append(r.copy())
        risks.append(risk(r))
    return out, np.array(risks)


def radial_start(d, K):
    """The K quantiles of the initial radial law |w| = R0 chi_d / sqrt(d)."""
    from scipy.stats import chi2

    return R0 * np.sqrt(chi2.ppf((np.arange(K) + 0.5) / K, d) / d)


def exact_gaps(size):
    """MMN's PDE against the exact m = infinity limit for each d of the sweep, up to t_sweep: the
    largest risk gap over the record times and the relative mean-radius gap at t_sweep."""
    risk_gap, radius_gap = [], []
    for d in size["sweep"]:
        exact = reduced_limit(config({**size, "d": d, "t_end": size["t_sweep"]}, size["batch"]), level=SWEEP_LEVEL,
                              estimate=False)
        radii, risks = reduced_dynamics(radial_start(d, size["K"]), exact.t, d)
        risk_gap.append(np.max(np.abs(risks - exact.risk)))
        radius_gap.append(abs(np.mean(radii[-1]) / (exact.snapshots[-1, :, 0] @ exact.weights) - 1))
    return np.array(risk_gap), np.array(radius_gap)


def run(quick, out):
    size = QUICK if quick else FULL
    batches = (size["batch"], 16 * size["batch"])
    r0 = radial_start(size["d"], size["K"])
    per_seed = []
    for seed in SEEDS:
        runs = {B: mf.simulate(config(size, B, seed)) for B in batches}
        radii_of = {B: [np.linalg.norm(th[:, :-1], axis=1) for th in r.snapshots] for B, r in runs.items()}
        per_seed.append((runs, radii_of))
    runs, radii_of = per_seed[0]
    res = runs[batches[-1]]
    radii = radii_of[batches[-1]]
    reduced, reduced_risk = reduced_dynamics(r0, res.t, size["d"])
    exact = reduced_limit(config(size, batches[-1]), level=size["level"])      # the m = infinity limit at this d
    exact_radius = exact.snapshots[:, :, 0] @ exact.weights
    sweep = np.array(size["sweep"], dtype=float)
    risk_gap, radius_gap = exact_gaps(size)
    fits = {name: slope_interval([power_law(sweep, gap)]) for name, gap in (("risk", risk_gap), ("radius", radius_gap))}
    distances = [{B: np.array([w2(a, b).value for a, b in zip(radii_seed[B], reduced)]) for B in batches}
                 for _, radii_seed in per_seed]
    distance = distances[0]
    floor = w2(radii[0], r0).value

    fig, grid = plt.subplots(2, 2, figsize=(14, 9.5))
    axes = grid.ravel()
    ax = axes[0]
    bins = np.linspace(0, max(np.max(radii[-1]), np.max(reduced[-1])) * 1.05, 50)
    for k in (0, len(res.t) // 4, len(res.t) // 2, len(res.t) - 1):
        line, = ax.plot([], [])
        ax.hist(radii[k], bins=bins, density=True, histtype="step", lw=1.8, color=line.get_color(),
                label=f"SGD (B = {batches[-1]}), t = {res.t[k]:.3g}")
        density, edges = np.histogram(reduced[k], bins=bins, density=True)
        ax.plot(0.5 * (edges[1:] + edges[:-1]), density, "--", color=line.get_color(), lw=1)
    ax.plot([], [], "k--", lw=1, label="reduced 1-D dynamics")
    ax.set_xlabel(r"neuron radius $|w_i|$")
    ax.set_ylabel("density")
    ax.set_title("radial distribution over time")
    ax.legend(fontsize=7)
    for B, r in runs.items():
        axes[1].plot(r.t, r.observables["test_risk"], "o-", lw=1.8,
                     label=f"SGD, B = {B}, d = {size['d']}, m = {size['m']} (test)")
    axes[1].plot(res.t, reduced_risk, "k--", lw=1.2, label=f"reduced radial dynamics (MMN), d = {size['d']}")
    axes[1].plot(exact.t, exact.risk, "k:", lw=2,
                 label=f"exact m = ∞ limit, d = {size['d']} ({len(exact.weights)}-node rule)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("time $t$ (flow units)")
    axes[1].set_ylabel(r"risk $E(f - y)^2 / 2$")
    axes[1].set_title("the risks agree")
    axes[1].legend(fontsize=8)
    for B in batches:
        axes[2].plot(res.t, distance[B], "o-", lw=1.8, label=f"SGD radii (B = {B}) vs reduced dynamics")
    axes[2].axhline(floor, color="0.5", ls=":", label=f"at t = 0 (sampling of m = {size['m']})")
    axes[2].set_xlabel("time $t$ (flow units)")
    axes[2].set_ylabel(r"$W_2$ between radial distributions (exact, 1-D)")
    axes[2].set_title("SGD noise spreads the radii; larger batches follow the PDE")
    axes[2].legend(fontsize=8)
    ax = axes[3]
    for (name, gap, marker), color in zip((("risk", risk_gap, "o"), ("radius", radius_gap, "s")), ("C3", "C4")):
        label = {"risk": r"largest risk gap, $t \leq$" + f" {size['t_sweep']:g}",
                 "radius": r"mean-radius gap (relative), $t$ = " + f"{size['t_sweep']:g}"}[name]
        ax.loglog(sweep, gap, marker, color=color, ms=7, label=f"{label}: slope {fits[name]['slope']:.3f}")
        ax.loglog(sweep, power_law(sweep, gap)(sweep), "-", color=color, lw=1)
    ax.set_xlabel("input dimension $d$")
    ax.set_ylabel("|MMN's 1-D dynamics − exact m = ∞ limit|")
    ax.set_title(r"MMN's PDE is the exact limit's $d \to \infty$ limit: gaps ~ $d^{-1}$")
    ax.legend(fontsize=8)
    fig.suptitle(f"Mei, Montanari & Nguyen: isotropic Gaussians (Δ = {DELTA}), piecewise-linear σ\n"
                 f"online SGD, their reduced radial dynamics and the exact m = ∞ limit (seed 0 drawn; claims over "
                 f"{len(SEEDS)} seeds)")
    fig.tight_layout()
    final_radius = np.array([[np.mean(radii_seed[batches[-1]][-1])] for _, radii_seed in per_seed]).ravel()
    final_risk = np.array([runs_seed[batches[-1]].observables["test_risk"][-1] for runs_seed, _ in per_seed])
    reduced_radius = float(np.mean(reduced[-1]))
    numbers = {"times": res.t, "batches": batches, "seeds": SEEDS,
               "w2_radial": [{str(B): v for B, v in dist.items()} for dist in distances],
               "w2_at_start": floor, "reduced_risk": reduced_risk,
               "sgd_test_risk": [{str(B): r.observables["test_risk"] for B, r in runs_seed.items()}
                                 for runs_seed, _ in per_seed],
               "mean_radius": {"sgd_final": final_radius, "reduced": [float(r.mean()) for r in reduced],
                               "exact_limit": exact_radius},
               "exact_limit": {"level": size["level"], "nodes": len(exact.weights), "risk": exact.risk,
                               "error": exact.error, "coarse_risk": exact.coarse_risk},
               "sweep": {"d": sweep, "t": size["t_sweep"], "level": SWEEP_LEVEL, "risk_gap": risk_gap,
                         "radius_gap": radius_gap, "fits": fits}}
    claims = [
        claim("the mean radius of SGD's neurons agrees with the reduced dynamics within 5 % at T (every seed)",
              "mean radius SGD / reduced at T", final_radius / reduced_radius, "in", [0.95, 1.05]),
        claim("the test risk agrees with the reduced dynamics' within 30 % at T (largest batch, every seed)",
              "test risk SGD / reduced at T", final_risk / reduced_risk[-1], "in", [0.7, 1.3]),
        claim(f"with batch {batches[-1]} the radial W2 at T is under 0.8 of batch {batches[0]}'s (every seed)",
              "W2 at T, large batch / small batch", [d[batches[-1]][-1] / d[batches[0]][-1] for d in distances],
              "<", 0.8),
        claim("with the largest batch the radial W2 stays under 10 % of the mean radius at all times (every seed)",
              "max_t W2 / mean radius (largest batch)", [d[batches[-1]].max() / reduced_radius for d in distances],
              "<", 0.1),
        claim("the exact m = infinity limit is resolved: its coarser rule differs by under 1 % of the risk",
              "max_t |risk(level) - risk(2/3 level)| / risk at T", exact.error / exact.risk[-1], "<", 0.01),
        claim("the mean radius of SGD's neurons agrees with the exact m = infinity limit within 1 % at T (every seed)",
              "mean radius SGD / exact limit at T", final_radius / exact_radius[-1], "in", [0.99, 1.01]),
        claim("the test risk agrees with the exact m = infinity limit's within 20 % at T (largest batch, every seed)",
              "test risk SGD / exact limit at T", final_risk / exact.risk[-1], "in", [0.8, 1.2]),
        rate("MMN's 1-D dynamics approaches the exact m = infinity limit as 1/d: the largest risk gap (fitted "
             "exponent within 0.1 of -1)", "slope of max_t |risk gap| against d", fits["risk"], [-1.1, -0.9]),
        rate("... and the mean-radius gap (fitted exponent within 0.1 of -1)", "slope of the mean-radius gap against d",
             fits["radius"], [-1.1, -0.9]),
    ]
    return fig, {"setting": SETTING, "seed": list(SEEDS), "config": res.config, "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
