"""Ensembles of finite lazy networks follow the lazy limit's predicted mean and covariance at test
points along training: from m = 1024 their outputs pass a chi-square test against the predicted
Gaussian at every time, which rejects the untrained prior; and each network approaches its own
lazy-limit prediction like m^-1/2, not like m^-1 nor width-free.

Source: Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington (2019), Wide neural
networks of any depth evolve as linear models under gradient descent (the ensemble's mean and
covariance from the NNGP and the NTK); Jacot, Gabriel & Hongler (2018).

Setting: two-layer tanh network, lazy scaling f = m^-1/2 sum_i a_i tanh(w_i . x), both layers
trained, w ~ N(0, I_5), a ~ N(0, 1) (not symmetric: f_0 is random), n = 10 training inputs and 8
test inputs on the unit sphere of R^5, labels y = tanh(2 x_1) - x_2, gradient flow on the squared
loss by RK4 with dt = 1 to T = 12, widths m = 256-16384, 200 seeds each (1,000 runs). Predicted:
``theory.lazy.predict(..., ensemble=True, covariance=True)``, whose tanh kernels come from the
spectral quadrature of ``model.limit_kernels``. Recorded, at t = 0, 3, 6, 9, 12: the whitened
statistic Q = sum over seeds of |L^-1 (f_m(Z, t) - mean(t))|^2 / (seeds x 8), with L L^T the
predicted covariance, which is chi-square with seeds x 8 degrees of freedom (divided by them) if
the outputs are the predicted Gaussian; and each network's largest distance over t from its
own lazy-limit prediction f_0(Z) + T_t (y - f_0(X)) (the infinite-width kernels, its own initial
outputs). What theory predicts: the outputs converge in law to the predicted Gaussian process,
with O(1/m) corrections to the covariance; each network's kernel differs from the limit's by
O(m^-1/2), and so does its prediction. The rivals: the untrained prior's covariance (training
would leave the spread as it was), and for the rate m^-1 (a bias) and m^0 (no convergence).
"""
import numpy as np
from matplotlib import pyplot as plt
from scipy.stats import chi2

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import claim, rate
from meanfield.model.limit_kernels import LimitKernel
from meanfield.model.twolayer import predict
from meanfield.theory import lazy
from meanfield.tools.figures import scenario_main

SETTING = ("tanh, lazy scaling, both layers trained, n = 10 and 8 test points on the sphere in d = 5, RK4 dt = 1 "
           "to T = 12, m = 256-16384, 200 seeds (1,000 runs) (full mode)")
N, D, N_TEST, T, DT = 10, 5, 8, 12.0, 1.0
QUICK = {"widths": [64, 128, 256, 512, 1024], "seeds": 40, "from": 256}
FULL = {"widths": [256, 512, 1024, 4096, 16384], "seeds": 200, "from": 1024}
LEVEL = 0.01                    # the chi-square test's level, split over the times (Bonferroni)
WINDOW = [-0.75, -0.25]         # around m^-1/2, halfway to either rival


def config(m, seed, dt=DT):
    return mf.Config(seed=seed, network={"m": m, "d": D, "activation": "tanh", "scaling": "lazy"},
                     data={"kind": "arrays"}, flow={"dt": dt, "t_end": T, "integrator": "rk4"},
                     record={"n_records": 5, "spacing": "linear", "snapshots": True})


def inputs():
    rng = np.random.default_rng(0)
    X, Z = rng.standard_normal((N, D)), rng.standard_normal((N_TEST, D))
    X, Z = (A / np.linalg.norm(A, axis=1, keepdims=True) for A in (X, Z))
    return X, Z, np.tanh(2 * X[:, 0]) - X[:, 1]


def outputs(m, seed, X, Z, y, dt=DT):
    """The network's test outputs at the record times (T, N_TEST) and its initial training outputs."""
    result = mf.simulate(config(m, seed, dt), data=(X, y))
    net = result.config.network
    return np.array([predict(theta, Z, net) for theta in result.snapshots]), predict(result.snapshots[0], X, net)


def whitened(F, mean, covariance):
    """Q: the seeds' squared whitened residuals per degree of freedom, F (seeds, N_TEST)."""
    L = np.linalg.cholesky(covariance)
    e = np.linalg.solve(L, (F - mean).T)
    return float(np.sum(e * e) / e.size)


def run(quick, out):
    size = QUICK if quick else FULL
    widths, seeds = np.array(size["widths"]), size["seeds"]
    X, Z, y = inputs()
    cfg = config(int(widths[0]), 0)
    times = np.linspace(0.0, T, 5)
    fine = np.linspace(0.0, T, 81)
    predicted = lazy.predict(cfg, y, times, X, Z, ensemble=True, covariance=True)
    curve = lazy.predict(cfg, y, fine, X, Z, ensemble=True)
    K = LimitKernel(cfg)
    (P, H), (P_zx, H_zx) = K.pair(X), K.pair(Z, X)
    matrices = lazy.Matrices(H, H_zx, P, P_zx, prior_diag=K.diagonal(Z)[0])

    F = np.empty((len(widths), seeds, len(times), N_TEST))
    deviation = np.empty((len(widths), seeds))
    for a, m in enumerate(widths):
        for s in range(seeds):
            F[a, s], f0 = outputs(int(m), s, X, Z, y)
            own = lazy.predict(matrices, y, times, u0=f0, u0_test=F[a, s, 0])
            deviation[a, s] = np.max(np.linalg.norm(F[a, s] - own.test, axis=1))
    Q = np.array([[whitened(F[a, :, i], predicted.test[i], predicted.covariance[i]) for i in range(len(times))]
                  for a in range(len(widths))])
    rival = np.array([whitened(F[a, :, -1], predicted.test[-1], predicted.covariance[0]) for a in range(len(widths))])
    dof = seeds * N_TEST
    band = chi2.ppf([LEVEL / (2 * len(times)), 1 - LEVEL / (2 * len(times))], dof) / dof
    # the integrator's part: the widest network of seed 0 again with dt / 4
    fine_steps = outputs(int(widths[-1]), 0, X, Z, y, DT / 4)[0]
    integrator_error = float(np.max(np.linalg.norm(fine_steps - F[-1, 0], axis=1)))

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    ax = axes[0]
    cmap = plt.get_cmap("viridis")
    sd = np.sqrt(curve.variance[:, 0])
    ax.plot(fine, curve.test[:, 0], "k-", lw=1.5, label="predicted mean")
    ax.fill_between(fine, curve.test[:, 0] - 2 * sd, curve.test[:, 0] + 2 * sd, color="0.85", label=r"$\pm 2$ sd")
    for a, shift in ((0, -0.25), (len(widths) - 1, 0.25)):
        values = F[a, :, :, 0]
        ax.errorbar(times + shift, values.mean(axis=0), 2 * values.std(axis=0, ddof=1), fmt="o", ms=5, capsize=3,
                    color=cmap(0.1 + 0.75 * a / (len(widths) - 1)),
                    label=f"m = {widths[a]}: mean $\\pm 2$ sd over {seeds} runs")
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(r"$f(z_1, t)$ at the first test point")
    ax.set_title("one test point: ensemble against prediction")
    ax.legend(fontsize=7)

    ax = axes[1]
    ax.axhspan(*band, color="0.88", label=f"chi-square acceptance ({100 * (1 - LEVEL):.0f} %, Bonferroni)")
    for i, t in enumerate(times):
        ax.semilogx(widths, Q[:, i], "o-", color=plt.get_cmap("plasma")(i / len(times)), label=f"t = {t:g}")
    ax.semilogx(widths, rival, "s--", color="0.4", label=f"rival at t = {T:g}: the untrained prior's covariance")
    ax.set_xlabel("width $m$")
    ax.set_ylabel(r"$Q$: whitened residuals per degree of freedom")
    ax.set_title(f"chi-square test against the predicted Gaussian ({dof} dof)")
    plotting.label_ticks(ax, widths)
    ax.legend(fontsize=7)

    ax = axes[2]
    fits = plotting.seed_scaling(ax, widths, {"own prediction": deviation}, "width $m$",
                                 r"$\max_t \|f_m(Z, t) - f_{\mathrm{lazy}}(Z, t; f_0)\|$", colors={"own prediction":
                                                                                                     "tab:orange"})
    ax.plot(widths, np.median(deviation[0]) * (widths / widths[0]) ** -0.5, "k--", lw=1, label=r"$m^{-1/2}$")
    ax.legend(fontsize=7)
    ax.set_title(f"each network against its own prediction ({seeds} seeds)")
    fig.suptitle("Lazy limit as predictions: finite tanh networks against the predicted ensemble mean and "
                 "covariance (NNGP + NTK) at test points")
    fig.tight_layout()

    start = int(np.searchsorted(widths, size["from"]))
    later = Q[start:, 1:]
    claims = [
        claim(f"from m = {size['from']}, at every time t > 0 the ensemble's test outputs pass the chi-square test "
              "against the predicted Gaussian (mean and covariance)", "Q per width and time (t > 0)",
              later.ravel().tolist(), "in", band.tolist()),
        claim("... which rejects the rival, the untrained prior's covariance, at t = T at every width",
              "Q against the prior's covariance at t = T", rival.tolist(), "<", float(band[0])),
        claim(f"at t = 0 the outputs pass the test from m = {size['from']}", "Q at t = 0", Q[start:, 0].tolist(), "in",
              band.tolist(), kind="construction",
              because="f_0's covariance is the NNGP's at every width (a sum of m independent terms of covariance "
                      "E[a^2] kappa / m); only its Gaussianity is asymptotic"),
        rate("each network approaches its own lazy-limit prediction like m^-1/2 (the kernel's fluctuation), not "
             "like m^-1 (a bias) nor width-free", "slope of max_t ||f_m - f_lazy|| vs m (95 % interval over seeds)",
             fits["own prediction"], theory=-0.5, window=WINDOW, rival=[-1.0, 0.0]),
        claim("the integrator's error (RK4 at dt = 1 against dt = 1/4, widest width) is under a tenth of the widest "
              "width's median deviation", "integrator error / median deviation at the widest width",
              integrator_error / float(np.median(deviation[-1])), "<", 0.1, kind="check"),
        claim("the tanh kernels' quadrature is resolved (estimated relative error)", "kernel error",
              predicted.kernel_error, "<", 1e-10, kind="check"),
    ]
    numbers = {"widths": widths, "times": times, "Q": Q, "rival_Q": rival, "band": band, "deviation": deviation,
               "fit": fits["own prediction"], "predicted_mean": predicted.test,
               "predicted_variance": predicted.variance, "integrator_error": integrator_error}
    return fig, {"setting": SETTING, "seed": list(range(seeds)), "config": cfg, "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
