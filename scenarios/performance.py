"""The engine's step time grows linearly in the width m and in the sample count n and it is
faster than every peer at every size measured; the peers, whose n x m temporaries leave the
cache, grow faster than linearly.

Source: the cost model of a two-layer network's full-batch gradient step, 4 n m d + 7 n m flops
(issue #9); peers as ``meanfield bench`` runs them.

Step CPU time (ReLU, squared loss, both layers, float64) at d = 10, one thread, in one process pinned
to one CPU, the implementations alternating (``meanfield.bench``): against m at n = 1000 and
against n at m = 1000. PyTorch and JAX appear when installed (extra ``bench``). The fitted
log-log slopes are near 1; above 1 where the n x m temporaries of the peers (and of the engine,
until it recomputes its blocks) stop fitting in cache. The peers are written as ``meanfield bench``
writes them today (one step per call); expert-written peers are the subject of issue #16.
"""
import numpy as np
from matplotlib import pyplot as plt

from meanfield import bench, plotting
from meanfield.claims import claim, rate
from meanfield.figures import scenario_main

SETTING = "d = 10, m or n = 500-16000 (the other 1000), 1 thread (full mode)"
D, FIXED = 10, 1000
QUICK = {"sizes": [200, 400, 800]}
FULL = {"sizes": [500, 1000, 2000, 4000, 8000, 16000]}


def sweep(sizes, along, quick):
    """{implementation: ms per step} for each size along "m" or "n" (the other fixed at 1000)."""
    shapes = [(FIXED, s, D) if along == "m" else (s, FIXED, D) for s in sizes]
    rows = bench.pinned_step_rows(shapes, threads=1, quick=quick)
    peers = [p for p in rows[0]["ms"] if all(p in row["ms"] for row in rows)]
    return {p: np.array([row["ms"][p] for row in rows]) for p in peers}


def run(quick, out):
    sizes = np.array((QUICK if quick else FULL)["sizes"])
    times = {along: sweep(sizes.tolist(), along, quick) for along in ("m", "n")}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    fits = {}
    for ax, along in zip(axes[:2], ("m", "n")):
        other = "n" if along == "m" else "m"
        found = plotting.scaling(ax, sizes, times[along], xlabel=f"{'width $m$ (neurons)' if along == 'm' else 'samples $n$'}",
                                 ylabel="time per step (ms)", expected={p: 1.0 for p in times[along]})
        fits[along] = {p: f.to_dict() for p, f in found.items()}
        ax.set_title(f"step time against {along} ({other} = {FIXED}, d = {D}, 1 thread)")
    ax = axes[2]
    lead = {}
    for along, marker in (("m", "o-"), ("n", "s--")):
        engine = times[along]["engine"]
        for peer, ms in times[along].items():
            if peer != "engine":
                lead.setdefault(peer, {})[along] = ms / engine
                ax.loglog(sizes, ms / engine, marker, label=f"{peer}, against {along}")
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.set_xlabel("m or n (the other = 1000)")
    ax.set_ylabel("peer time / engine time (×)")
    ax.set_title("the engine's lead: > 1 means the engine is faster")
    ax.legend(fontsize=7)
    plotting.quiet_minor_ticks(ax)
    median_lead = {peer: float(np.median(np.concatenate(list(v.values())))) for peer, v in lead.items()}
    ahead = [float(x) for v in lead.values() for ratios in v.values() for x in ratios]
    fig.suptitle(f"Engine step time grows linearly ($m^{{{fits['m']['engine']['slope']:.2f}}}$, "
                 f"$n^{{{fits['n']['engine']['slope']:.2f}}}$) and it is faster than every peer at every size: "
                 f"smallest lead {min(ahead):.2f}×, median " + ", ".join(f"{v:.1f}× over {p}" for p, v in median_lead.items()))
    fig.tight_layout()
    for along in ("m", "n"):
        print(f"against {along}: " + ", ".join(f"{p} slope {f['slope']:.2f}" for p, f in fits[along].items()))
    print("median lead: " + ", ".join(f"{p} {v:.2f}x" for p, v in median_lead.items()))
    claims = [claim("the engine is faster than every peer at every size", "smallest peer time / engine time",
                    min(ahead), ">", 1.0)]
    for along in ("m", "n"):
        claims.append(claim(f"the engine's step time grows about linearly in {along} (slope 0.75 to 1.25)", f"engine slope in {along}",
                            fits[along]["engine"]["slope"], "in", [0.75, 1.25]))
        if not quick:      # at the quick sizes every implementation's temporaries still fit in cache
            for peer, fit in fits[along].items():
                if peer != "engine":
                    claims.append(claim(f"{peer} grows faster than linearly in {along}", f"{peer} slope in {along}",
                                        fit["slope"], ">", 1.1))
    numbers = {"sizes": sizes, "d": D, "fixed": FIXED, "threads": 1,
               "ms": times, "fits": fits, "lead": lead, "median_lead": median_lead, "min_lead": min(ahead)}
    return fig, {"setting": SETTING, "seed": 0, "config": {"d": D, "fixed": FIXED, "sizes": sizes, "quick": quick},
                 "numbers": numbers, "claims": claims}


if __name__ == "__main__":
    scenario_main(__file__, run)
