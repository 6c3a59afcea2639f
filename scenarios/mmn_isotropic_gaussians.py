"""In high dimension SGD on isotropic Gaussian classes follows a one-dimensional PDE: the
neurons' mean radius agrees with the reduced mean-field dynamics within 3 % and with the exact
m = infinity limit within its sampling error, the test risk within 20 % and 15 %; SGD's part of
the radial W2 to the limit falls like 1/B in W2^2 (a diffusion of variance ~ dt / B), on top of the
m-sample's own error, which the flow carries; and MMN's PDE is the d -> infinity limit of the exact
m = infinity flow, within O(1/d).

Source: Mei, Montanari & Nguyen (2018), A mean field view of the landscape of two-layer neural
networks (isotropic Gaussians example).

Classes y = ±1 with x ~ N(0, (1 + y delta)^2 I_d); f(x) = (1/m) sum_i sigma(w_i . x) with the
output weights fixed at 1 and the bounded piecewise-linear sigma (s1 below t1, s2 above t2);
online SGD (fresh samples each step). As d grows, w . x ~ N(0, |w|^2 (1 + y delta)^2) and the
particles' radii r_i = |w_i| follow dr/dt = -(1/2) sum_y E_rho[(F_y(rho) - y) rho q'(r rho)],
with q(s) = E sigma(s G) in closed form, F_y(rho) = mean_i q(r_i rho) and rho = |x| / sqrt(d) ~
tau_y chi_d / sqrt(d), tau_y = 1 + y delta (rho -> tau_y as d -> infinity; at finite d its
spread leaves an O(1/d) risk floor, kept here); it starts from the K quantiles of the initial
radial law R0 chi_d / sqrt(d), a deterministic quadrature. SGD's radii are compared with the exact
limit's radial law (weighted nodes) by the exact one-dimensional W2 (against MMN's PDE its O(1/d)
bias would add to it). SGD's gradient noise spreads the radii like a diffusion of variance ~ t dt
/ B, while the m = 800 initial radii carry a sampling error that the flow transports and stretches
whatever B: W2^2 = F(t)^2 + c(t) / B. Three batches B, 4 B, 16 B test it: F and c from the outer
two predict the middle one. (So 16 times the batch does not divide W2 by 4, as the diffusion alone
would: it divides it by far less.) Records are log-spaced, to resolve the early transient.

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

SETTING = ("d = 40, online SGD, m = 800, batches 50, 200 and 800, 2 seeds; the exact m = infinity limit at "
           "level 12; MMN's PDE against it for d = 10 .. 320 up to t = 10 (full mode)")
QUICK = {"d": 20, "m": 400, "t_end": 20.0, "batch": 20, "K": 1_000, "level": 8, "sweep": (10, 20, 40, 80, 160),
         "t_sweep": 2.5}
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
        record={"n_records": 21, "spacing": "geometric"})


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


def radial_w2(radii, exact):
    """W2 (exact, 1-D) between SGD's radii and the exact limit's radial law at each record."""
    return np.array([w2(r[:, None], nodes[:, :1], b=exact.weights).value for r, nodes in zip(radii, exact.snapshots)])


def run(quick, out):
    size = QUICK if quick else FULL
    batches = (size["batch"], 4 * size["batch"], 16 * size["batch"])
    small, middle, large = batches
    r0 = radial_start(size["d"], size["K"])
    exact = reduced_limit(config(size, large), level=size["level"])           # the m = infinity limit at this d
    exact_radius = exact.snapshots[:, :, 0] @ exact.weights
    per_seed = []
    for seed in SEEDS:
        runs = {B: mf.simulate(config(size, B, seed)) for B in batches}
        radii_of = {B: [np.linalg.norm(th[:, :-1], axis=1) for th in r.snapshots] for B, r in runs.items()}
        per_seed.append((runs, radii_of, {B: radial_w2(radii, exact) for B, radii in radii_of.items()}))
    runs, radii_of, distance = per_seed[0]
    res = runs[large]
    radii = radii_of[large]
    reduced, reduced_risk = reduced_dynamics(r0, res.t, size["d"])
    sweep = np.array(size["sweep"], dtype=float)
    risk_gap, radius_gap = exact_gaps(size)
    fits = {name: slope_interval([power_law(sweep, gap)]) for name, gap in (("risk", risk_gap), ("radius", radius_gap))}
    predicted = []                                        # W2 at the middle batch from the outer two, per seed
    for _, _, dist in per_seed:
        c = (dist[small] ** 2 - dist[large] ** 2) / (1 / small - 1 / large)
        predicted.append(np.sqrt(np.maximum(dist[large] ** 2 - c / large + c / middle, 0.0)))

    fig, grid = plt.subplots(2, 2, figsize=(14, 9.5))
    axes = grid.ravel()
    ax = axes[0]
    bins = np.linspace(0, max(np.max(radii[-1]), np.max(reduced[-1])) * 1.05, 50)
    for k in (0, len(res.t) // 2, 3 * len(res.t) // 4, len(res.t) - 1):
        line, = ax.plot([], [])
        ax.hist(radii[k], bins=bins, density=True, histtype="step", lw=1.8, color=line.get_color(),
                label=f"SGD (B = {large}), t = {res.t[k]:.3g}")
        density, edges = np.histogram(reduced[k], bins=bins, density=True)
        ax.plot(0.5 * (edges[1:] + edges[:-1]), density, "--", color=line.get_color(), lw=1)
    ax.plot([], [], "k--", lw=1, label="reduced 1-D dynamics")
    ax.set_xlabel(r"neuron radius $|w_i|$")
    ax.set_ylabel("density")
    ax.set_title("radial distribution over time")
    ax.legend(fontsize=7)
    shades = dict(zip(batches, plt.cm.viridis(np.linspace(0.85, 0.15, len(batches)))))     # darker: larger batch
    for B, r in runs.items():
        axes[1].plot(r.t[1:], r.observables["test_risk"][1:], "o-", ms=3, lw=1.5, color=shades[B],
                     label=f"SGD, B = {B}, d = {size['d']}, m = {size['m']} (test)")
    axes[1].plot(res.t[1:], reduced_risk[1:], "k--", lw=1.2, label=f"reduced radial dynamics (MMN), d = {size['d']}")
    axes[1].plot(exact.t[1:], exact.risk[1:], "k:", lw=2,
                 label=f"exact m = ∞ limit, d = {size['d']} ({len(exact.weights)}-node rule)")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("time $t$ (flow units)")
    axes[1].set_ylabel(r"risk $E(f - y)^2 / 2$")
    axes[1].set_title("the risks agree")
    axes[1].legend(fontsize=8)
    for B in batches:
        axes[2].plot(res.t[1:], distance[B][1:], "o-", ms=3, lw=1.5, color=shades[B], label=f"SGD radii, B = {B}")
    axes[2].plot(res.t[1:], predicted[0][1:], "--", color=shades[middle], lw=1.2,
                 label=rf"B = {middle} predicted: $W_2^2 = F^2 + c/B$ from B = {small}, {large}")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("time $t$ (flow units)")
    axes[2].set_ylabel(r"$W_2$ to the exact limit's radial law (1-D)")
    axes[2].set_title("SGD noise (~1/B) on top of the m-sample's error, carried by the flow")
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
    final_radius = np.array([np.mean(radii_seed[large][-1]) for _, radii_seed, _ in per_seed])
    radius_error = np.array([np.std(radii_seed[large][-1]) / np.sqrt(size["m"]) for _, radii_seed, _ in per_seed])
    final_risk = np.array([runs_seed[large].observables["test_risk"][-1] for runs_seed, _, _ in per_seed])
    reduced_radius = float(np.mean(reduced[-1]))
    numbers = {"times": res.t, "batches": batches, "seeds": SEEDS,
               "w2_radial_to_exact_limit": [{str(B): v for B, v in dist.items()} for _, _, dist in per_seed],
               "w2_middle_predicted": predicted, "reduced_risk": reduced_risk,
               "sgd_test_risk": [{str(B): r.observables["test_risk"] for B, r in runs_seed.items()}
                                 for runs_seed, _, _ in per_seed],
               "mean_radius": {"sgd_final": final_radius, "sgd_final_standard_error": radius_error,
                               "reduced": [float(r.mean()) for r in reduced], "exact_limit": exact_radius},
               "exact_limit": {"level": size["level"], "nodes": len(exact.weights), "risk": exact.risk,
                               "error": exact.error, "coarse_risk": exact.coarse_risk},
               "sweep": {"d": sweep, "t": size["t_sweep"], "level": SWEEP_LEVEL, "risk_gap": risk_gap,
                         "radius_gap": radius_gap, "fits": fits}}
    claims = [
        claim("the mean radius of SGD's neurons agrees with the reduced dynamics within 3 % at T (every seed)",
              "mean radius SGD / reduced at T", final_radius / reduced_radius, "in", [0.97, 1.03]),
        claim("the test risk agrees with the reduced dynamics' within 20 % at T (largest batch, every seed)",
              "test risk SGD / reduced at T", final_risk / reduced_risk[-1], "in", [0.8, 1.2]),
        claim("the mean radius of SGD's neurons agrees with the exact m = infinity limit within 3 standard errors "
              "of a mean of m radii at T (largest batch, every seed)",
              "|mean radius SGD - exact limit's| / (std / sqrt(m)) at T",
              np.abs(final_radius - exact_radius[-1]) / radius_error, "<", 3.0),
        claim("the test risk agrees with the exact m = infinity limit's within 15 % at T (largest batch, every seed)",
              "test risk SGD / exact limit at T", final_risk / exact.risk[-1], "in", [0.85, 1.15]),
        claim(f"a larger batch follows the limit more closely: radial W2 at T with B = {large} below B = {small}'s "
              "(every seed)", "W2 at T, large batch / small batch", [d[large][-1] / d[small][-1] for _, _,
                                                                     d in per_seed],
              "<", 1.0),
        claim(f"SGD's part of W2^2 falls like 1/B: W2 at B = {middle} is predicted from B = {small} and {large} by "
              "W2^2 = F^2 + c / B within 15 % at every record from the middle of the run (every seed)",
              "predicted / measured W2 at the middle batch, second half of the records",
              np.concatenate([(p / d[middle])[len(p) // 2:] for p, (_, _, d) in zip(predicted, per_seed)]), "in",
              [0.85, 1.15]),
        claim("the exact m = infinity limit is resolved: its coarser rule differs by under 1 % of the risk",
              "max_t |risk(level) - risk(2/3 level)| / risk at T", exact.error / exact.risk[-1], "<", 0.01,
              kind="check"),
        rate("MMN's 1-D dynamics approaches the exact m = infinity limit as 1/d, not as 1/sqrt(d): the largest risk "
             "gap", "slope of max_t |risk gap| against d (95 % interval)", fits["risk"], theory=-1.0,
             window=[-1.1, -0.9], rival=-0.5),
        rate("... and the mean-radius gap", "slope of the mean-radius gap against d (95 % interval)", fits["radius"],
             theory=-1.0, window=[-1.1, -0.9], rival=-0.5),
    ]
    return fig, {"setting": SETTING, "seed": list(SEEDS), "config": res.config, "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
