"""The engine's step time against the width m and the sample count n (fitted exponents shown, not
claimed: one timing per size gives no interval, and cache effects bend the curves). Against the
best naively written peer at each size it is ahead at the median size by over 1.3x and never
behind by more than 1.25x; against the best expert-written peer it is ahead at the median size
and never behind by more than 1.5x.

Source: the cost model of a two-layer network's full-batch gradient step, 4 n m d + 7 n m flops;
peers as ``meanfield.peers`` writes them.

Step CPU time (ReLU, squared loss, both layers, float64) at d = 10, one thread, in one process pinned
to one CPU, the implementations alternating (``meanfield.bench``): against m at n = 1000 and
against n at m = 1000. Naive peers: NumPy with fresh temporaries, PyTorch autograd, JAX with one
jit call per step. Expert peers: NumPy with one reused buffer and ``out=`` products, PyTorch under
``no_grad`` with a hand-written gradient and in place, ``torch.compile`` of the whole step, JAX
with the whole 10-step loop jitted (by ``jax.grad`` or by hand). PyTorch and JAX appear when
installed (extra ``bench``); in quick mode only the NumPy peers run.
"""
import numpy as np
from matplotlib import pyplot as plt

from meanfield.analysis import plotting
from meanfield.analysis.claims import claim
from meanfield.tools import bench
from meanfield.tools.figures import scenario_main

SETTING = "d = 10, m or n = 500-16000 (the other 1000), 1 thread (full mode)"
D, FIXED = 10, 1000
QUICK = {"sizes": [200, 400, 800]}
FULL = {"sizes": [500, 1000, 2000, 4000, 8000, 16000]}
NAIVE = ("numpy", "torch autograd", "JAX")


def sweep(sizes, along, quick):
    """{implementation: ms per step} for each size along "m" or "n" (the other fixed at 1000)."""
    shapes = [(FIXED, s, D) if along == "m" else (s, FIXED, D) for s in sizes]
    rows = bench.pinned_step_rows(shapes, threads=1, quick=quick)
    peers = [p for p in rows[0]["ms"] if all(p in row["ms"] for row in rows)]
    return {p: np.array([row["ms"][p] for row in rows]) for p in peers}


def run(quick, out):
    sizes = np.array((QUICK if quick else FULL)["sizes"])
    times = {along: sweep(sizes.tolist(), along, quick) for along in ("m", "n")}
    colors = {p: plotting.COLORS[p] for p in times["m"]}
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.0))
    fits = {}
    for ax, along in zip(axes[:2], ("m", "n")):
        other = "n" if along == "m" else "m"
        found = plotting.scaling(ax, sizes, times[along],
                                 xlabel=f"{'width $m$ (neurons)' if along == 'm' else 'samples $n$'}",
                                 ylabel="CPU time per step (ms)", colors=colors)
        fits[along] = {p: f.to_dict() for p, f in found.items()}
        plotting.label_ticks(ax, sizes)
        ax.set_title(f"step time against {along} ({other} = {FIXED}, d = {D}, 1 thread)")
    naive = [p for p in times["m"] if p in NAIVE]
    expert = [p for p in times["m"] if p != "engine" and p not in NAIVE]
    lead = {along: {"naive": np.min([t[p] for p in naive], axis=0) / t["engine"],
                    "expert": np.min([t[p] for p in expert], axis=0) / t["engine"]} for along, t in times.items()}
    ax = axes[2]
    for along, marker in (("m", "o-"), ("n", "s--")):
        for kind, color in (("naive", "tab:orange"), ("expert", "tab:green")):
            ax.semilogx(sizes, lead[along][kind], marker, color=color, label=f"best {kind} peer, against {along}")
    ax.axhline(1.0, color="0.4", lw=0.8)
    plotting.label_ticks(ax, sizes)
    ax.set_xlabel("m or n (the other = 1000)")
    ax.set_ylabel("peer time / engine time (×)")
    ax.set_title("the engine's lead: > 1 means the engine is faster")
    ax.legend(fontsize=7)
    naive_lead = np.concatenate([lead[a]["naive"] for a in lead])
    expert_lead = np.concatenate([lead[a]["expert"] for a in lead])
    fig.suptitle(f"Engine step time (fitted: $m^{{{fits['m']['engine']['slope']:.2f}}}$, "
                 f"$n^{{{fits['n']['engine']['slope']:.2f}}}$); its lead over the best naive peer is "
                 f"{naive_lead.min():.2f}-{naive_lead.max():.2f}× (median {np.median(naive_lead):.2f}×), over the best "
                 f"expert peer {expert_lead.min():.2f}-{expert_lead.max():.2f}× (median {np.median(expert_lead):.2f}×)")
    fig.tight_layout()
    for along in ("m", "n"):
        print(f"against {along}: " + ", ".join(f"{p} slope {f['slope']:.2f}" for p, f in fits[along].items()))
    claims = [
        claim("against the best naive peer the engine is ahead by over 1.3x at the median size",
              "median over sizes of best-naive time / engine time", float(np.median(naive_lead)), ">", 1.3),
        claim("and never behind it by more than 1.25x", "smallest best-naive time / engine time",
              naive_lead.min(), ">", 1 / 1.25),
        claim("against the best expert peer the engine is ahead at the median size",
              "median over sizes of best-expert time / engine time", float(np.median(expert_lead)), ">", 1.0),
        claim("and never behind it by more than 1.5x", "smallest best-expert time / engine time",
              expert_lead.min(), ">", 1 / 1.5),
    ]
    numbers = {"sizes": sizes, "d": D, "fixed": FIXED, "threads": 1, "clock": "CPU time", "ms": times,
               "fits": fits, "naive": naive, "expert": expert, "lead": lead}
    return fig, {"setting": SETTING, "seed": 0, "config": {"d": D, "fixed": FIXED, "sizes": sizes, "quick": quick},
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
