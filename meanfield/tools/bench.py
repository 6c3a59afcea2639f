"""``meanfield bench``: one full-batch training step (ReLU, squared loss, both layers, float64) of
the engine against the same step written naively and as an expert would in NumPy and, when
installed, PyTorch and JAX (``meanfield.tools.peers``), and the engine's float32 step, timed in
one process and alternating (min /
median / max of rounds after warm-up, CPU time and wall time). Each thread setting
runs in its own process pinned to that many CPUs (``os.sched_setaffinity``), since JAX's thread
pool cannot be resized once made. A single-thread dgemm is timed in the same rounds as each row's
steps: its rate is that row's floor. Also the machine's dgemm rate once, the population step
per particle pair, W2 solvers, Numba compile times (cold and from cache) and the import time.
Speeds are reported as ratios: absolute times on a shared machine are noise.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import _kernels
from ..engine.problem import FUSED_MAX_D
from .peers import DT, peers

SIZES = [(1000, 1000, 10), (1000, 10000, 100), (10000, 1000, 100), (200, 100000, 2)]
QUICK_SIZES = [(200, 400, 10), (100, 3000, 2)]
DEEP_SIZES = [(256, 1024, 10, 3, "mlp"), (256, 1024, 10, 3, "resnet")]       # (n, m, d, depth, architecture)
QUICK_DEEP_SIZES = [(64, 256, 10, 3, "mlp")]


FLOAT32 = "engine float32"       # the engine's step with flow.dtype = "float32", timed beside the rest
PRODUCTS = "engine's products"    # the BLAS path's matrix products alone, timed beside the rest (one thread)
DGEMM = "dgemm"                   # a 1500 x 1500 dgemm on one thread, timed beside the rest: the row's floor
ONE_THREAD = ("engine", FLOAT32, PRODUCTS, DGEMM)     # what runs its BLAS on one thread (the rest: on the row's)
# Libraries leave work running after a step returns: measured 2026-12-07, the engine's step right
# after JAX's jitted loop took 8.12 ms against 6.73 alone and 6.72 after a 0.3 s wait ((200, 1e5,
# 2), one thread, pinned, CPU time) and 51.3 against 47.7 ms alone ((1000, 1e4, 100), two threads,
# wall time); medians of 5. After PyTorch's or NumPy's step: within 1 %.
SETTLE_SECONDS = 0.3


def flops(n, m, d) -> float:
    """The step's nominal flop count 4 n m d + 7 n m."""
    return 4.0 * n * m * d + 7.0 * n * m


def deep_flops(n, m, d, depth) -> float:
    """The deep step's nominal flop count: its products, forward (2 n (m d + (L - 1) m^2 + m)), the
    inputs' gradients (2 n (L - 1) m^2) and the weights' (2 n (m d + (L - 1) m^2 + m))."""
    return 2.0 * n * (2 * m * d + 3 * (depth - 1) * m * m + 2 * m)


def _problem(n, m, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) / np.sqrt(d), rng.standard_normal(n), rng.standard_normal((m, d + 1))


def engine_stepper(X, y, theta, dtype="float64"):
    """The engine's step (flow.dtype = ``dtype``), through the same code path as ``simulate``."""
    import meanfield as mf
    from meanfield.engine.drifts import strategy
    from meanfield.engine.problem import build
    from meanfield.model.data import Dataset

    n, d = X.shape
    cfg = mf.Config(network={"m": theta.shape[0], "d": d}, data={"n": n}, flow={"dt": DT, "dtype": dtype})
    problem = build(cfg, Dataset(X, y, X[:0], y[:0]), theta)
    stepper, state = strategy(problem, n), problem.theta0.astype(dtype)
    idx, none3, none1 = np.arange(n)[None, :], np.zeros((0, 0, 0)), np.zeros(0)
    samples = problem.steps

    def step():
        stepper.advance(state, *samples, idx, none3, none1, 1)
    step.state = lambda: (state[:, :d], state[:, d])
    return step


def dgemm_stepper(size=1500):
    """One single-thread dgemm of two size x size matrices (``step.flops`` flops): timed in the
    same rounds as a row's steps, its rate is that row's floor, so that the floor moves with the
    machine's speed while the row is measured (the report's one-off rate is taken once, before)."""
    A = np.random.default_rng(0).standard_normal((size, size))
    out = np.empty_like(A)

    def step():
        np.matmul(A, A, out=out)
    step.flops = 2.0 * size ** 3
    return step


def _rate(steppers: dict, timed: dict) -> float:
    """GFLOP/s of the dgemm stepper timed with a row: its flops over its median CPU time."""
    return steppers[DGEMM].flops / (timed.pop(DGEMM)["cpu"][1] * 1e6)


@_kernels._jit()
def _tile_products(W, XTc, Xc, block, Z, tmp, M):
    """The BLAS path's products alone, on its tiles: W_b X_c^T into Z, then Z X_c, per block."""
    m = W.shape[0]
    chunks, chunk = Xc.shape[0], Xc.shape[1]
    for lo in range(0, m, block):
        rows = min(m, lo + block) - lo
        tile = Z[:rows * chunk].reshape((rows, chunk))
        for c in range(chunks):
            np.dot(W[lo:lo + rows], XTc[c], tile)
            np.dot(tile, Xc[c], tmp[:rows])
            M[:rows] += tmp[:rows]


def products_stepper(X, theta):
    """The matrix products of the engine's BLAS step alone (its tiles, ``_kernels.blas_plan``;
    single-threaded BLAS): their time over the floor is as near as the engine's tiles can come to
    it on this machine's BLAS."""
    (n, d), m = X.shape, theta.shape[0]
    block, chunk, _ = _kernels.blas_plan(m, n, d)
    Xc, XTc = _kernels.chunked(X, chunk)
    W, Z, tmp = np.ascontiguousarray(theta[:, :d]), np.empty(block * chunk), np.empty((block, d))
    M = np.zeros((block, d))

    def step():
        _tile_products(W, XTc, Xc, block, Z, tmp, M)
    step.M = M                       # the backward products' sum over the blocks (for a test)
    return step


def deep_engine_stepper(net, params, X, y):
    """meanfield's deep step as ``engine/deep_net`` takes it (``deep_net.advance``: one Euler step
    in place), under ``deep.parallel`` at the current Numba thread count."""
    import meanfield as mf

    from ..engine import deep_net
    from ..model import deep

    flow = mf.Config(flow={"dt": DT}).flow
    theta, buffers = net.flatten(params), deep_net.stage_buffers(net, flow.integrator)

    def step():
        with deep.parallel(_kernels.threads()):
            deep_net.advance(net, flow, theta, [(X, y)], buffers)
    step.state, step.steps = (lambda: net.unflatten(theta)), 1
    return step


def deep_products_stepper(net, params, X, y):
    """The deep step's matrix products alone: recorded from one ``deep.velocity`` call (operands,
    blocks and outputs as the step makes them) and replayed; their time over the floor is as near
    as the deep step can come to it on this machine's BLAS."""
    from unittest import mock

    from ..model import deep

    made, product = [], deep.matmul

    def record(A, B, out=None):
        made.append((A, B, product(A, B, out)))
        return made[-1][2]
    with mock.patch.object(deep, "matmul", record):
        deep.velocity(net, params, X, y)

    def step():
        with deep.parallel(_kernels.threads()):
            for A, B, out in made:
                product(A, B, out)
    step.made = made                 # (A, B, out) of every product (for a test)
    return step


def deep_rows(sizes, threads: int, quick: bool) -> list:
    """Time one deep step (ReLU, squared loss, NTK parameterisation) of the engine against
    ``peers.deep_peers`` at each (n, m, d, depth, architecture), in this process."""
    from ..model import deep
    from .peers import deep_peers

    rows = []
    for n, m, d, depth, arch in sizes:
        net = deep.DeepNet(d, m, depth, "relu", arch, "ntk", 2.0, deep.resnet_scale(depth, 1.0, 2.0))
        rng = np.random.default_rng(0)
        params, X, y = net.init(rng), rng.standard_normal((n, d)) / np.sqrt(d), rng.standard_normal(n)
        steppers = {"engine": deep_engine_stepper(net, params, X, y),
                    PRODUCTS: deep_products_stepper(net, params, X, y), DGEMM: dgemm_stepper(400 if quick else 1500),
                    **({} if quick else deep_peers(net, params, X, y))}
        _threads(threads)
        timed = time_steps(steppers, threads, seconds=1.0 if quick else 8.0, rounds=3 if quick else 5)
        products, rate = timed.pop(PRODUCTS), _rate(steppers, timed)
        ms = {name: t["ms"] for name, t in timed.items()}
        ratio = {peer: ms["engine"] / t for peer, t in ms.items() if peer != "engine"}
        rows.append({"n": n, "m": m, "d": d, "depth": depth, "architecture": arch, "threads": threads, "ms": ms,
                     "clocks": timed, "ratio": ratio, "products": products, "dgemm_gflops": rate})
    return rows


def _threads(count):
    """Set every pool we drive to ``count`` threads: Numba, and PyTorch if loaded. BLAS is held
    at one thread inside the engine (determinism); NumPy's BLAS follows ``count``."""
    _kernels.set_threads(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


def _settle(seconds: float) -> None:
    """Busy-wait ``seconds``: in one comparison at (1000, 1000, 10), every library's steps after
    a 0.3 s sleep ran 1.1-1.4x slower than with no pause (the idle core slows down)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def time_steps(steppers: dict, threads: int, seconds: float, rounds: int) -> dict:
    """Per-step milliseconds of each stepper, alternating between them round by round: {"cpu":
    [min, median, max], "wall": [min, median, max], "ms": the median quoted}. The engine runs as
    ``simulate`` does (BLAS at one thread, Numba at ``threads``; float64 and float32); the peers'
    BLAS at ``threads``.
    With one thread the quoted clock is CPU time, which other jobs on a shared machine do not
    inflate; with more, wall time (CPU time would count spinning workers). Each block starts
    after SETTLE_SECONDS of busy-waiting and one untimed step, so that no library is timed beside
    the previous one's leftover work, nor pays for waking its own threads."""
    def blas_threads(name):
        return _kernels.blas_threads(1 if name in ONE_THREAD else threads)

    for name, step in steppers.items():                  # warm-up: compilation, caches, page faults
        with blas_threads(name):
            step()
            step()
    samples = {name: {"cpu": [], "wall": []} for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            _settle(SETTLE_SECONDS)                      # the previous library's leftover work ends
            with blas_threads(name):
                step()                                   # untimed: this library's threads wake up
                calls, wall, cpu = 0, time.perf_counter(), time.process_time()
                while True:
                    step()
                    calls += 1
                    elapsed = time.perf_counter() - wall
                    if elapsed >= seconds / rounds / len(steppers) or calls >= 50:
                        break
                per_step = 1e3 / (calls * getattr(step, "steps", 1))
                samples[name]["wall"].append(elapsed * per_step)
                samples[name]["cpu"].append((time.process_time() - cpu) * per_step)
    out = {}
    for name, clocks in samples.items():
        stats = {clock: [min(v), statistics.median(v), max(v)] for clock, v in clocks.items()}
        out[name] = {**stats, "ms": stats["cpu" if threads == 1 else "wall"][1]}
    return out


def dgemm_rate(size=1500) -> float:
    """Single-thread dgemm GFLOP/s, best of three."""
    A = np.random.default_rng(0).standard_normal((size, size))
    with _kernels.blas_threads(1):
        A @ A
        best = min(_timed(lambda: A @ A) for _ in range(3))
    return 2 * size ** 3 / best / 1e9


def _timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def population_ns_per_pair(m, d=10) -> float:
    """One exact population step (m students, 5 teachers), ns per particle pair (1 thread)."""
    import meanfield as mf
    from meanfield.model import population

    rng = np.random.default_rng(0)
    theta, teacher = rng.standard_normal((m, d + 1)), rng.standard_normal((5, d + 1))
    net, flow = mf.NetworkConfig(m=m, d=d), mf.FlowConfig()
    _kernels.set_threads(1)
    with _kernels.blas_threads(1):
        population.population_velocity(theta, teacher, net, flow, compiled=True)
        best = min(_timed(lambda: population.population_velocity(theta, teacher, net, flow, compiled=True))
                   for _ in range(3))
    return best / m ** 2 * 1e9


def w2_seconds(N, quick) -> dict:
    """Seconds for W2 between two N-point clouds in d = 10 (exact, sliced) and in 1-D."""
    from meanfield.analysis.distances import w2

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 10)), rng.standard_normal((N, 10)) + 0.1
    w2(x[:5], y[:5], method="exact")                     # warm-up: imports POT
    out = {"sliced": _timed(lambda: w2(x, y, method="sliced")),
           "1d": _timed(lambda: w2(x[:, 0], y[:, 0], method="1d"))}
    if not quick or N <= 1000:
        out["exact"] = _timed(lambda: w2(x, y, method="exact"))
    return out


def compile_and_import_seconds() -> dict:
    """Cold compile (empty NUMBA_CACHE_DIR), load from that cache, and `import meanfield`, each in a
    fresh interpreter."""
    code = ("import time; t = time.perf_counter(); import meanfield as mf; i = time.perf_counter() - t; "
            "cfg = mf.Config(network={'m': 300, 'd': 5}, data={'n': 200}, flow={'dt': 0.1, 't_end': 0.2}); "
            "r = mf.simulate(cfg); print(i, r.stats['compile_seconds'])")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "cached"):
            text = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            import_seconds, compile_seconds = map(float, text.stdout.split())
            out[f"compile_{label}"] = compile_seconds
            out[f"import_{label}"] = import_seconds
    return out


THREAD_CASES = {"small, busy": {"n": 30, "m": 50, "d": 5, "t_end": 100.0},          # 10^4 steps
                "medium, busy": {"n": 1000, "m": 1000, "d": 10, "t_end": 1.0},    # 100 steps
                "large, quiet": {"n": 1000, "m": 2000, "d": 100, "t_end": 0.3}}   # 30 steps


def _run_seconds(case: dict, threads: int) -> tuple:
    """(wall, cpu) seconds of the stepping of one run in a fresh process (start-up excluded)."""
    code = ("import json, sys, time, meanfield as mf; c = json.loads(sys.argv[1]); "
            "cfg = mf.Config(network={'m': c['m'], 'd': c['d']}, data={'kind': 'teacher', 'n': c['n'], 'n_test': 0}, "
            "flow={'dt': 0.01, 't_end': c['t_end'], 'threads': c['threads']}, record={'n_records': 2}); "
            "mf.simulate(cfg.updated({'flow.t_end': 0.01})); w, p = time.perf_counter(), time.process_time(); "
            "mf.simulate(cfg); print(time.perf_counter() - w, time.process_time() - p)")
    text = subprocess.run([sys.executable, "-c", code, json.dumps({**case, "threads": threads})],
                          capture_output=True, text=True, check=True).stdout
    wall, cpu = map(float, text.split())
    return wall, cpu


def thread_policy(quick: bool) -> dict:
    """The default thread policy (``flow.threads = 0``) against one thread: a small and a medium
    run with one busy-loop process per CPU beside them (a shared machine), and a large one
    (d = 100) on the machine as it is. Alternating rounds; min / median / max of wall and CPU seconds and the
    ratio default / one thread of the medians."""
    rounds = 1 if quick else 5
    out = {}
    for name, case in THREAD_CASES.items():
        busy = []
        if name.endswith("busy"):
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
        try:
            times = {0: [], 1: []}
            for _ in range(rounds):
                for threads in (0, 1):
                    times[threads].append(_run_seconds(case, threads))
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
        row = {"case": case, "busy_processes": len(busy)}
        for threads, label in ((0, "default"), (1, "one_thread")):
            wall, cpu = (sorted(v) for v in zip(*times[threads]))
            row[label] = {"wall": [wall[0], statistics.median(wall), wall[-1]],
                          "cpu": [cpu[0], statistics.median(cpu), cpu[-1]]}
        row["ratio_wall"] = row["default"]["wall"][1] / row["one_thread"]["wall"][1]
        out[name] = row
    return out


def step_rows(sizes, threads: int, quick: bool) -> list:
    """Time the step at each (n, m, d) with ``threads`` threads, in this process."""
    rows = []
    for n, m, d in sizes:
        X, y, theta = _problem(n, m, d)
        steppers = {"engine": engine_stepper(X, y, theta), FLOAT32: engine_stepper(X, y, theta, "float32"),
                    DGEMM: dgemm_stepper(400 if quick else 1500), **peers(X, y, theta, quick)}
        if threads == 1 and d > FUSED_MAX_D:
            steppers[PRODUCTS] = products_stepper(X, theta)
        _threads(threads)
        timed = time_steps(steppers, threads, seconds=1.0 if quick else 8.0, rounds=3 if quick else 5)
        single, products, rate = timed.pop(FLOAT32), timed.pop(PRODUCTS, None), _rate(steppers, timed)
        ms = {name: t["ms"] for name, t in timed.items()}
        ratio = {peer: ms["engine"] / t for peer, t in ms.items() if peer != "engine"}
        best = min(ratio, key=lambda peer: ms[peer])
        rows.append({"n": n, "m": m, "d": d, "threads": threads, "ms": ms, "clocks": timed, "ratio": ratio,
                     "best_peer": best, "ratio_to_best_peer": ratio[best],
                     "engine_gflops": flops(n, m, d) / ms["engine"] / 1e6,
                     "float32": {**single, "speedup_over_float64": ms["engine"] / single["ms"]},
                     "products": products, "dgemm_gflops": rate})
    return rows


def pinned_step_rows(sizes, threads: int, quick: bool, rows: str = "step_rows") -> list:
    """``step_rows`` (or ``deep_rows``) in a fresh process restricted to ``threads`` CPUs (and JAX
    told so), so that every library in it, JAX included, runs on that many cores."""
    cpus = sorted(os.sched_getaffinity(0))[:threads] if hasattr(os, "sched_getaffinity") else None
    code = ("import json, os, sys; args = json.loads(sys.argv[1]); "
            "cpus = args.pop('cpus'); cpus and os.sched_setaffinity(0, cpus); "
            f"from meanfield.tools.bench import {rows} as rows; "
            "open(args.pop('out'), 'w').write(json.dumps(rows(**args)))")
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                            " intra_op_parallelism_threads=1").strip()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rows.json"
        args = {"sizes": sizes, "threads": threads, "quick": quick, "cpus": cpus, "out": str(out)}
        subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=env, check=True)
        return json.loads(out.read_text())


def run(quick: bool = False, out=None, echo=print) -> dict:
    """Measure everything; write the JSON report to ``out`` if given; return it."""
    sizes = QUICK_SIZES if quick else SIZES
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    report = {"machine": {"cpus": cpus, "python": platform.python_version(), "processor": platform.processor()},
              "quick": quick, "dgemm_gflops_1_thread": dgemm_rate(800 if quick else 2000), "steps": []}
    for threads in sorted({1, cpus}):
        for row in pinned_step_rows(sizes, threads, quick):
            report["steps"].append(row)
            echo(f"(n, m, d) = ({row['n']}, {row['m']}, {row['d']}), {threads} thread(s): "
                 + ", ".join(f"{k} {v:.2f} ms" for k, v in row["ms"].items())
                 + f"; engine {row['engine_gflops']:.1f} GFLOP/s")
    report["steps"].sort(key=lambda row: (sizes.index((row["n"], row["m"], row["d"])), row["threads"]))
    for row in report["steps"]:
        row.update(floor_and_speedup(report, row))
    report["deep_steps"] = pinned_step_rows(QUICK_DEEP_SIZES if quick else DEEP_SIZES, 1, quick, "deep_rows")
    for row in report["deep_steps"]:
        floor = floor_ms(row, deep_flops(row["n"], row["m"], row["d"], row["depth"]), 1)
        row["engine_over_floor"] = row["ms"]["engine"] / floor
        row["products_over_floor"] = row["products"]["ms"] / floor
        echo(f"deep step (n, m, d, L) = ({row['n']}, {row['m']}, {row['d']}, {row['depth']}), {row['architecture']}, "
             "1 thread: " + ", ".join(f"{k} {v:.2f} ms" for k, v in row["ms"].items())
             + f"; engine / floor {row['engine_over_floor']:.2f}, its products alone / floor "
             f"{row['products_over_floor']:.2f}")
    report["population_ns_per_pair"] = {str(m): population_ns_per_pair(m)
                                        for m in ((300, 1000) if quick else (1000, 5000))}
    report["w2_seconds"] = {str(N): w2_seconds(N, quick) for N in ((500,) if quick else (1000, 5000))}
    report.update(compile_and_import_seconds())
    report["thread_policy"] = thread_policy(quick)
    for name, row in report["thread_policy"].items():
        echo(f"thread policy, {name} ({row['busy_processes']} busy processes beside it): default / one "
             f"thread = {row['ratio_wall']:.2f} in wall time (medians)")
    if out:
        from ..store.files import atomic_write, json_default

        with atomic_write(Path(out)) as handle:
            handle.write(json.dumps(report, indent=2, default=json_default).encode())
    return report


def floor_and_speedup(report: dict, row: dict) -> dict:
    """A step row's "engine_over_floor": the engine's quoted time over the floor, the nominal flops
    (``flops``) at ``threads`` times the single-thread dgemm rate timed with the row; for a row of several threads
    "speedup_over_one_thread": the one-thread row's median wall time over this row's (else None);
    "products_over_floor": the BLAS path's products alone over the floor (else None)."""
    one = [r for r in report["steps"] if (r["n"], r["m"], r["d"], r["threads"]) == (row["n"], row["m"], row["d"], 1)]
    speedup = None
    if row["threads"] > 1 and one:
        speedup = one[0]["clocks"]["engine"]["wall"][1] / row["clocks"]["engine"]["wall"][1]
    floor = floor_ms(row, flops(row["n"], row["m"], row["d"]), row["threads"])
    products = row.get("products")
    return {"engine_over_floor": row["ms"]["engine"] / floor, "speedup_over_one_thread": speedup,
            "products_over_floor": None if products is None else products["ms"] / floor}


def floor_ms(row: dict, flop_count: float, threads: int) -> float:
    """Milliseconds of ``flop_count`` flops at ``threads`` times the row's single-thread dgemm rate."""
    return flop_count / (threads * row["dgemm_gflops"] * 1e6)


def markdown_table(report: dict) -> str:
    """The step timings as a Markdown table (for the README): the engine's time (CPU time at one
    thread, wall time above; median with min-max), its ratio to the best peer and to each peer, to
    the floor and, at several threads, its speed-up over one (``floor_and_speedup``); the float32
    step's time and its speed-up over float64 (medians)."""
    peers = sorted({p for row in report["steps"] for p in row["ratio"]})
    lines = ["| (n, m, d) | threads | engine ms, median [min-max] | best peer | engine / best | "
             + " | ".join(f"engine / {p}" for p in peers) + " | GFLOP/s | engine / floor | products alone / floor | "
             "speed-up over 1 thread | float32 ms, median [min-max] | float32 speed-up |",
             "|---|---|---|---|---|" + "---|" * len(peers) + "---|---|---|---|---|---|"]
    for row in report["steps"]:
        clock = row["clocks"]["engine"]["cpu" if row["threads"] == 1 else "wall"]
        ratios = " | ".join(f"{row['ratio'][p]:.2f}" if p in row["ratio"] else "-" for p in peers)
        derived = floor_and_speedup(report, row)
        speedup = derived["speedup_over_one_thread"]
        single = row.get("float32")
        float32 = "- | -" if single is None else (
            "{1:.2f} [{0:.2f}-{2:.2f}] | ".format(*single["cpu" if row["threads"] == 1 else "wall"])
            + f"{single['speedup_over_float64']:.2f}")
        lines.append(f"| ({row['n']}, {row['m']}, {row['d']}) | {row['threads']} | "
                     f"{clock[1]:.2f} [{clock[0]:.2f}-{clock[2]:.2f}] | "
                     f"{row['best_peer']} | {row['ratio_to_best_peer']:.2f} | {ratios} | {row['engine_gflops']:.1f} | "
                     f"{derived['engine_over_floor']:.2f} | {_cell(derived['products_over_floor'])} | "
                     f"{_cell(speedup)} | {float32} |")
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.2f}"
