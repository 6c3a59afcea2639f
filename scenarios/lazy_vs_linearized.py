"""In the lazy regime a wide network trains like its tangent model, which trains like kernel
regression with the limit kernel H_inf: both gaps in the training-risk curves shrink as the width
grows: the tangent model's predictions approach those of H_inf kernel regression like m^-1/2,
and the network's approach its tangent model's like m^-1/2 too; neither gap is width-free (the
mean-field regime's exponent 0) nor falls like m^-1 (a bias).

Source: Jacot, Gabriel & Hongler (2018); Lee et al. (2019), Wide neural networks of any depth
evolve as linear models under gradient descent; Berner, Grohs, Kutyniok & Petersen, The modern
mathematics of deep learning (lecture notes, the linearised model).

Du et al.'s setting: lazy scaling 1/sqrt(m), a_i = ±1 fixed (only w trains), symmetric
initialisation (pairs (w, a), (w, -a), so u_0 = 0), n = 20 unit-norm inputs in d = 10 with
teacher labels, Euler steps dt = 0.5. The tangent model f_lin(theta) = f(theta_0) + grad f(theta_0)
(theta - theta_0) is trained by the same engine from the same theta_0 (``network.linearized``);
the limit prediction is kernel gradient descent u_k = y + (I - dt H_inf / n)^k (y_0 - y) with
u_0 = 0. Gaps are in function space: max over the run of ||u_a(t) - u_b(t)|| / ||y|| on the
training inputs. What theory predicts: m^-1/2 for both gaps (H(0) is an average of m independent
terms; ReLU's activation patterns flip for a fraction m^-1/2 of the neurons, Lee et al.'s bound).
The rivals each window excludes: 0 (no convergence) and -1 (a deterministic O(1/m) correction).
"""
import numpy as np
from matplotlib import pyplot as plt

import meanfield as mf
from meanfield.analysis import plotting
from meanfield.analysis.claims import rate
from meanfield.model import ntk
from meanfield.model.twolayer import predict
from meanfield.tools.figures import scenario_main

SETTING = "d = 10, n = 20, m = 64-16384, 6 seeds (full mode)"
N, D, DT, T = 20, 10, 0.5, 200.0
QUICK = {"widths": [64, 128, 256, 512, 1024], "seeds": 8}
FULL = {"widths": [64, 256, 1024, 4096, 16384], "seeds": 6}
WINDOW = [-0.75, -0.25]          # around m^-1/2, halfway to either rival


def config(m, seed, linearized):
    return mf.Config(
        seed=seed,
        network={"m": m, "d": D, "activation": "relu", "scaling": "lazy", "train": "hidden",
                 "linearized": linearized},
        init={"w_law": "gaussian", "a_law": "rademacher", "symmetric": True},
        data={"kind": "teacher", "n": N, "inputs": "sphere", "teacher_m0": 5, "teacher_signs": "rademacher"},
        flow={"dt": DT, "t_end": T},
        record={"n_records": 41, "spacing": "linear", "snapshots": True})


def run(quick, out):
    size = QUICK if quick else FULL
    widths = np.array(size["widths"])
    data = mf.make_data(config(2, 0, False), np.random.default_rng(0))
    X, y = data.X, data.y
    H_inf = ntk.h_infinity(X)
    shape = (len(widths), size["seeds"])
    net_lin, lin_kernel = np.zeros(shape), np.zeros(shape)
    curves = {}
    for a, m in enumerate(widths):
        for seed in range(size["seeds"]):
            net = mf.simulate(config(int(m), seed, False), data=(X, y))
            lin = mf.simulate(config(int(m), seed, True), data=(X, y))
            u_kernel = ntk.kernel_gradient_descent(H_inf, y, np.zeros(N), np.round(net.t / DT), DT)
            kernel = 0.5 * np.mean((u_kernel - y) ** 2, axis=1)
            u_net = np.array([predict(theta, X, net.config.network) for theta in net.snapshots])
            u_lin = np.array([predict(theta, X, lin.config.network, theta0=lin.theta0) for theta in lin.snapshots])
            r_net, r_lin = net.observables["train_risk"], lin.observables["train_risk"]
            net_lin[a, seed] = np.max(np.linalg.norm(u_net - u_lin, axis=1)) / np.linalg.norm(y)
            lin_kernel[a, seed] = np.max(np.linalg.norm(u_lin - u_kernel, axis=1)) / np.linalg.norm(y)
            if seed == 0:
                curves[int(m)] = (net.t, r_net, r_lin, kernel)

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for ax, m in zip(axes[:2], (int(widths[0]), int(widths[-1]))):
        t, r_net, r_lin, kernel = curves[m]
        ax.semilogy(t, r_net, color="tab:orange", lw=2, label="network")
        ax.semilogy(t, r_lin, "--", color="tab:red", lw=1.6, label="tangent model")
        ax.semilogy(t, kernel, ":", color="k", lw=1.4, label=r"kernel GD with $H^\infty$")
        ax.set_xlabel("time $t$ (flow units)")
        ax.set_ylabel(r"training risk (seed 0)")
        ax.set_title(f"m = {m}")
        ax.legend(fontsize=8)
    fits = plotting.seed_scaling(axes[2], widths, {"network vs tangent model": net_lin,
                                                   r"tangent model vs $H^\infty$ kernel": lin_kernel},
                                 "width $m$", r"$\max_t \|u_a(t) - u_b(t)\| / \|y\|$",
                                 colors={"network vs tangent model": "tab:orange",
                                         r"tangent model vs $H^\infty$ kernel": "tab:red"})
    axes[2].plot(widths, np.median(lin_kernel[0]) * (widths / widths[0]) ** -0.5, "k--", lw=1, label=r"$m^{-1/2}$")
    axes[2].legend(fontsize=7)
    axes[2].set_title(f"gaps against width (median, IQR over {size['seeds']} seeds; 95% CI)")
    fig.suptitle(f"Lazy regime: network, tangent model and limit kernel (ReLU, n = {N}, d = {D}, hidden layer "
                 f"trained, a = ±1, symmetric init)")
    fig.tight_layout()
    keys = list(fits)
    claims = [
        rate("the tangent model's predictions approach H_inf kernel regression's like m^-1/2, not like m^-1 and "
             "not width-free", "slope of max_t ||u_lin - u_kernel|| vs m (95 % interval over seeds)", fits[keys[1]],
             theory=-0.5, window=WINDOW, rival=[-1.0, 0.0]),
        rate("the network's predictions approach its tangent model's like m^-1/2, not like m^-1 and not width-free",
             "slope of max_t ||u_net - u_lin|| vs m (95 % interval over seeds)", fits[keys[0]], theory=-0.5,
             window=WINDOW, rival=[-1.0, 0.0]),
    ]
    numbers = {"widths": widths, "gap_network_tangent": net_lin, "gap_tangent_kernel": lin_kernel,
               "fits": dict(zip(["network_tangent", "tangent_kernel"], fits.values()))}
    return fig, {"setting": SETTING, "seed": list(range(size["seeds"])), "config": config(int(widths[0]), 0, False),
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
