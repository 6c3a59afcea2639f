"""All Numba code: predictor, particle velocities and "advance k steps" (the fused path), the BLAS
path's drift, and the population sums. Nothing else imports numba.

Kernels are pure functions on C-contiguous float64 arrays and scalars. Activations and losses are
integer codes fixed forever (``activations.py``), so that every kernel can be cached; an unknown
code raises, nothing falls through. Each parallel loop iteration owns its output slot (a sample's residual, a block of
neurons' velocities) and sums in an order fixed by the shapes, so results do not depend on the
thread count, nor on whether a kernel was compiled or loaded from the cache. Noise is drawn by the
caller and passed in. ``model/twolayer.py`` is the readable NumPy twin of the network kernels here,
``population.pair_sums`` of the population one.

Shapes: theta (m, d + 1) = [w | a]; X (n, d); y, f0 (n,); idx (k or 1, B) sample rows used at each
step (a single row is reused at every step: full batch); noise (k, m, d + 1) standard normals or
(0, 0, 0); noise_scale (k,) = sqrt(2 temperature_s dt); mask (d + 1,) 1 = trained coordinate.
"""
from __future__ import annotations

import math
import warnings

import numba
import numpy as np
from numba import prange

# The codes of ``activations.py``'s registries, as literals: the cache tracks only this file, so the
# codes a compiled kernel switches on must be written here (a test checks they equal the registry's).
RELU, LEAKY_RELU, TANH, SIGMOID, ERF, SOFTPLUS, QUADRATIC, LINEAR, PIECEWISE_LINEAR = 0, 1, 2, 3, 4, 5, 6, 7, 8
SQUARED, LOGISTIC = 0, 1
ACTIVATION_CODES = {"relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH, "sigmoid": SIGMOID, "erf": ERF,
                    "softplus": SOFTPLUS, "quadratic": QUADRATIC, "linear": LINEAR,
                    "piecewise_linear": PIECEWISE_LINEAR}
LOSS_CODES = {"squared": SQUARED, "logistic": LOGISTIC}

# Never fastmath=True: it lets isnan return False. This subset keeps NaN and inf semantics. No
# "reassoc" either: with it a reduction's order depends on how LLVM vectorises it in context, and
# a kernel compiled in this process gave other bits than the same kernel loaded from the cache.
# Long sums go through _sum8 / _dot8 instead: fixed partial sums that vectorise without it.
FASTMATH = {"nsz", "arcp", "contract"}
# error_model="numpy": a float division by zero gives inf or NaN, as in the NumPy twins, instead of a
# branch to raise ZeroDivisionError, a branch that kept LLVM from vectorising any loop that divides.
NO_WEIGHTS = np.empty(0)      # omega for unweighted particles: every kernel keeps its uniform arithmetic
# The network's constants travel to the kernels as one tuple, built once by ``problem.Problem.model``:
MODEL = ("out_scale", "vel_scale", "act", "params", "omega", "loss", "lam", "mask")


def _jit(**options):
    """numba.njit with cache=True, falling back (with a warning) to no cache when no cache
    directory is writable (read-only install without NUMBA_CACHE_DIR)."""
    def decorate(func):
        try:
            return numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy", **options)(func)
        except RuntimeError as exc:
            warnings.warn(f"meanfield: Numba cannot cache {func.__name__} ({exc}); compiling "
                          "without a cache. Set NUMBA_CACHE_DIR to a writable folder to cache.",
                          RuntimeWarning, stacklevel=2)
            return numba.njit(cache=False, fastmath=FASTMATH, error_model="numpy", **options)(func)
    return decorate


def set_threads(threads: int) -> int:
    """Use ``threads`` Numba threads (0: all allowed); returns the count in use."""
    limit = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(limit if threads == 0 else min(threads, limit))
    return numba.get_num_threads()


def blas_threads(count: int, scipy_blas: bool = True):
    """A context holding every loaded BLAS at ``count`` threads. The BLAS path's and the
    population step's np.dot calls SciPy's BLAS, loaded lazily; threadpoolctl only limits
    libraries already loaded, so it is loaded first when ``scipy_blas`` (the fused path never
    calls it: it then costs no ``scipy.linalg`` import)."""
    if scipy_blas:
        import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=count, user_api="blas")


def threads() -> int:
    """The Numba thread count in use."""
    return numba.get_num_threads()


def max_threads() -> int:
    return numba.config.NUMBA_NUM_THREADS


# --- scalar building blocks ------------------------------------------------------------------

@_jit()
def _zero(a):
    """0 in a's floating type (a literal 0.0 would widen float32 arithmetic to float64)."""
    return np.zeros(1, a.dtype)[0]


@_jit()
def _sum8(x, n):
    """sum(x[:n]) as eight interleaved partial sums added in a fixed order: vectorisable, and the
    same bits however the caller is compiled."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    i = 0
    while i + 8 <= n:
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
        s4 += x[i + 4]
        s5 += x[i + 5]
        s6 += x[i + 6]
        s7 += x[i + 7]
        i += 8
    while i < n:
        s0 += x[i]
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@_jit()
def _dot8(x, y, n):
    """sum(x[:n] * y[:n]) in the fixed order of _sum8."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    i = 0
    while i + 8 <= n:
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
        s4 += x[i + 4] * y[i + 4]
        s5 += x[i + 5] * y[i + 5]
        s6 += x[i + 6] * y[i + 6]
        s7 += x[i + 7] * y[i + 7]
        i += 8
    while i < n:
        s0 += x[i] * y[i]
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


# tanh without libm's call: z -> x = -2 |z| (clamped at -40, where tanh is 1 to the last bit),
# x = k ln 2 + r (|r| <= ln 2 / 2, ln 2 split in two so that k ln 2 is exact), expm1(r) by Taylor
# to r^14 (truncation below 1e-17), expm1(x) = 2^k expm1(r) + (2^k - 1) with 2^k a product of
# exact powers of two, tanh |z| = -expm1(x) / (2 + expm1(x)). Within 3 ulps of NumPy's tanh at
# every argument (a test); in a loop it vectorises: 2.5 ns a value against libm's 27 (reference machine).
LN2_HI, LN2_LO, INV_LN2 = 6.93147180369123816490e-01, 1.90821492927058770002e-10, 1.44269504088896338700e+00
INV_FACTORIALS = tuple(1.0 / math.factorial(j) for j in range(2, 15))      # 1/2!, ..., 1/14!
C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14 = INV_FACTORIALS


@_jit()
def _tanh(z):
    x = -2.0 * abs(z)
    x = -40.0 if x < -40.0 else x                          # NaN stays NaN
    k = math.floor(x * INV_LN2 + 0.5)                      # in [-58, 0]
    r = (x - k * LN2_HI) - k * LN2_LO
    q = C14 * r + C13
    q = q * r + C12
    q = q * r + C11
    q = q * r + C10
    q = q * r + C9
    q = q * r + C8
    q = q * r + C7
    q = q * r + C6
    q = q * r + C5
    q = q * r + C4
    q = q * r + C3
    q = q * r + C2
    j = int(-k)
    p = 0.5 if j & 1 else 1.0                              # 2^k, exactly
    p *= 0.25 if j & 2 else 1.0
    p *= 0.0625 if j & 4 else 1.0
    p *= 0.00390625 if j & 8 else 1.0
    p *= 1.52587890625e-05 if j & 16 else 1.0
    p *= 2.3283064365386963e-10 if j & 32 else 1.0
    e = p * (r + r * r * q) + (p - 1.0)                    # expm1(x)
    t = abs(e) / (2.0 + e)                                 # e <= 0; tanh(0) = +0
    return math.copysign(t, z)


@_jit()
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@_jit()
def _act(z, code, params):
    """sigma(z); params = [leaky_slope, t1, t2, s1, s2] (network.activation_params)."""
    if code == RELU:
        return z if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return z if z > 0.0 else params[0] * z
    if code == PIECEWISE_LINEAR:
        u = min(max((z - params[1]) / (params[2] - params[1]), 0.0), 1.0)
        return params[3] + (params[4] - params[3]) * u
    if code == TANH:
        return _tanh(z)
    if code == SIGMOID:
        return _sigmoid(z)
    if code == ERF:
        return math.erf(z)
    if code == SOFTPLUS:
        return max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    if code == QUADRATIC:
        return z * z
    if code == LINEAR:
        return z
    return math.nan


@_jit()
def _dact(z, code, params):
    if code == RELU:
        return 1.0 if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if z > 0.0 else params[0]
    if code == PIECEWISE_LINEAR:
        return (params[4] - params[3]) / (params[2] - params[1]) if params[1] < z <= params[2] else 0.0
    if code == TANH:
        t = _tanh(z)
        return 1.0 - t * t
    if code == SIGMOID:
        s = _sigmoid(z)
        return s * (1.0 - s)
    if code == ERF:
        return 1.1283791670955126 * math.exp(-z * z)
    if code == SOFTPLUS:
        return _sigmoid(z)
    if code == QUADRATIC:
        return 2.0 * z
    if code == LINEAR:
        return 1.0
    return math.nan


@_jit()
def _act_dact(z, code, params):
    """(sigma(z), sigma'(z)) with one transcendental call where the derivative is a function of
    sigma (tanh, sigmoid): the same bits as _act and _dact, at a third less cost in the backward pass."""
    if code == TANH:
        t = _tanh(z)
        return t, 1.0 - t * t
    if code == SIGMOID:
        t = _sigmoid(z)
        return t, t * (1.0 - t)
    return _act(z, code, params), _dact(z, code, params)


@_jit()
def _sigma_row(z, width, act, params):
    """z[:width] = sigma(z[:width]), the activation's branch taken once outside the loop (a call
    per element that switches on the code costs about 20 ns; these loops are the step's cost)."""
    if act == TANH:
        for i in range(width):
            z[i] = _tanh(z[i])
    elif act == SIGMOID:
        for i in range(width):
            z[i] = _sigmoid(z[i])
    elif act == QUADRATIC:
        for i in range(width):
            z[i] = z[i] * z[i]
    elif act == LEAKY_RELU:
        c = params[0]
        for i in range(width):
            z[i] = z[i] if z[i] > 0.0 else c * z[i]
    elif act != LINEAR:
        for i in range(width):
            z[i] = _act(z[i], act, params)


@_jit()
def _sigma_slope_row(z, s, width, act, params):
    """s[:width] = sigma(z), z[:width] = sigma'(z) (the same bits as _act_dact), the branch
    taken once outside the loop."""
    if act == TANH:
        for i in range(width):
            t = _tanh(z[i])
            s[i] = t
            z[i] = 1.0 - t * t
    elif act == SIGMOID:
        for i in range(width):
            t = _sigmoid(z[i])
            s[i] = t
            z[i] = t * (1.0 - t)
    elif act == QUADRATIC:
        for i in range(width):
            s[i] = z[i] * z[i]
            z[i] = 2.0 * z[i]
    elif act == LINEAR:
        for i in range(width):
            s[i] = z[i]
            z[i] = 1.0
    elif act == LEAKY_RELU:
        c = params[0]
        for i in range(width):
            zi = z[i]
            s[i] = zi if zi > 0.0 else c * zi
            z[i] = 1.0 if zi > 0.0 else c
    else:
        for i in range(width):
            s[i], z[i] = _act_dact(z[i], act, params)


@_jit()
def _dloss(f, y, code):
    if code == SQUARED:
        return f - y
    if code == LOGISTIC:
        return -y * _sigmoid(-y * f)
    return math.nan


@_jit()
def check_codes(act, loss):
    """Raise on a code no registry entry has: the kernels never compute an unknown function."""
    if act < RELU or act > PIECEWISE_LINEAR:
        raise ValueError("unknown activation code")
    if loss < SQUARED or loss > LOGISTIC:
        raise ValueError("unknown loss code")


@_jit()
def _forward(theta, feat, x, act, params, omega, tangent):
    """sum_i a_i sigma(w_i . x) for one input x (d,) (feat is theta), or for the tangent model
    (feat = theta0): sum_i [a_i sigma(w0_i . x) + a0_i sigma'(w0_i . x) (w_i - w0_i) . x];
    each term times omega_i for weighted particles (omega (m,); empty: unweighted)."""
    m = theta.shape[0]
    d = x.shape[0]
    weighted = omega.shape[0] > 0
    s = 0.0
    for i in range(m):
        z0 = 0.0
        for k in range(d):
            z0 += feat[i, k] * x[k]
        s += (theta[i, d] * omega[i] if weighted else theta[i, d]) * _act(z0, act, params)
        if tangent:
            z = 0.0
            for k in range(d):
                z += theta[i, k] * x[k]
            s += (feat[i, d] * omega[i] if weighted else feat[i, d]) * _dact(z0, act, params) * (z - z0)
    return s


@_jit()
def _neuron_velocity(theta_i, feat_i, X, rows, r, vel_scale, act, params, lam, mask, out):
    """Drift of one particle: mask * (-vel_scale mean_b r_b grad phi(feat_i, x_b) - lam theta_i),
    feat_i = theta_i for the network, theta0_i for the tangent model."""
    d = theta_i.shape[0] - 1
    batch = rows.shape[0]
    a = feat_i[d]
    for k in range(d + 1):
        out[k] = 0.0
    for b in range(batch):
        j = rows[b]
        z = 0.0
        for k in range(d):
            z += feat_i[k] * X[j, k]
        sz, dz = _act_dact(z, act, params)
        out[d] += r[b] * sz
        c = r[b] * a * dz
        for k in range(d):
            out[k] += c * X[j, k]
    scale = -vel_scale / batch if batch > 0 else 0.0
    for k in range(d + 1):
        out[k] = mask[k] * (scale * out[k] - lam * theta_i[k])


# --- loops: a serial reference and a parallel twin -------------------------------------------

@_jit()
def _residuals_serial(theta, feat, X, y, f0, rows, out_scale, act, params, omega, loss, tangent, r):
    for b in range(rows.shape[0]):
        j = rows[b]
        r[b] = _dloss(out_scale * _forward(theta, feat, X[j], act, params, omega, tangent) - f0[j], y[j], loss)


@_jit(parallel=True)
def _residuals_parallel(theta, feat, X, y, f0, rows, out_scale, act, params, omega, loss, tangent, r):
    for b in prange(rows.shape[0]):
        j = rows[b]
        r[b] = _dloss(out_scale * _forward(theta, feat, X[j], act, params, omega, tangent) - f0[j], y[j], loss)


@_jit()
def _velocities_serial(theta, feat, X, rows, r, vel_scale, act, params, lam, mask, vel):
    for i in range(theta.shape[0]):
        _neuron_velocity(theta[i], feat[i], X, rows, r, vel_scale, act, params, lam, mask, vel[i])


@_jit(parallel=True)
def _velocities_parallel(theta, feat, X, rows, r, vel_scale, act, params, lam, mask, vel):
    for i in prange(theta.shape[0]):
        _neuron_velocity(theta[i], feat[i], X, rows, r, vel_scale, act, params, lam, mask, vel[i])


SAMPLE_BLOCK = 16      # samples per parallel block of the forward pass
NEURON_BLOCK = 256     # neurons per block (their coordinates and work rows stay in L1 cache)


@_jit()
def _project(x, theta_t, lo, width, z):
    """z[i] = sum_k x_k theta_t[k, lo + i] for i < width: four coordinates per pass over z."""
    d = x.shape[0]
    z[:width] = 0.0
    k = 0
    while k + 4 <= d:
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        w0, w1 = theta_t[k, lo:lo + width], theta_t[k + 1, lo:lo + width]
        w2, w3 = theta_t[k + 2, lo:lo + width], theta_t[k + 3, lo:lo + width]
        for i in range(width):
            z[i] += x0 * w0[i] + x1 * w1[i] + x2 * w2[i] + x3 * w3[i]
        k += 4
    while k + 2 <= d:
        x0, x1 = x[k], x[k + 1]
        w0, w1 = theta_t[k, lo:lo + width], theta_t[k + 1, lo:lo + width]
        for i in range(width):
            z[i] += x0 * w0[i] + x1 * w1[i]
        k += 2
    if k < d:
        x0 = x[k]
        w0 = theta_t[k, lo:lo + width]
        for i in range(width):
            z[i] += x0 * w0[i]


@_jit()
def _outer_add(c, x, grad, width):
    """grad[k, i] += c[i] x_k for k < len(x), i < width."""
    for k in range(x.shape[0]):
        xk = x[k]
        gk = grad[k]
        for i in range(width):
            gk[i] += c[i] * xk


@_jit(parallel=True)
def _network_drift(theta, X, y, f0, rows, out_scale, vel_scale, act, params, omega, loss, lam, mask,
                   theta_t, r, vel):
    """The network's drift without forming the (B, m) matrix: the fast twin of the loops above.

    theta_t (d + 1, m) receives theta transposed (coordinate-major, so the loops over neurons
    vectorise). Forward: blocks of SAMPLE_BLOCK samples in parallel, each summing a_i sigma(w_i . x_j)
    over blocks of NEURON_BLOCK neurons. Backward: blocks of NEURON_BLOCK neurons in parallel, each
    recomputing w_i . x_j and summing over the samples in order. No sum depends on the thread
    count. The activation's branch is taken outside the loops (ReLU has its own). Weighted
    particles (omega (m,), else empty) enter the forward pass only: the velocity is the same.
    """
    m, p = theta.shape
    d = p - 1
    batch = rows.shape[0]
    for i in prange(m):
        for k in range(p):
            theta_t[k, i] = theta[i, k]
    a = theta_t[d]
    fa = a * omega if omega.shape[0] > 0 else a            # the forward pass's output weights
    for blk in prange((batch + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        first = blk * SAMPLE_BLOCK
        count = min(batch, first + SAMPLE_BLOCK) - first
        z = np.empty(NEURON_BLOCK)
        f = np.zeros(count)
        for lo in range(0, m, NEURON_BLOCK):
            width = min(m, lo + NEURON_BLOCK) - lo
            a_blk = fa[lo:lo + width]
            for b in range(count):
                _project(X[rows[first + b]], theta_t, lo, width, z)
                if act == RELU:
                    for i in range(width):
                        z[i] = max(z[i], 0.0)
                else:
                    _sigma_row(z, width, act, params)
                f[b] += _dot8(a_blk, z, width)
        for b in range(count):
            j = rows[first + b]
            r[first + b] = _dloss(out_scale * f[b] - f0[j], y[j], loss)
    scale = -vel_scale / batch if batch > 0 else 0.0
    for blk in prange((m + NEURON_BLOCK - 1) // NEURON_BLOCK):
        lo = blk * NEURON_BLOCK
        width = min(m, lo + NEURON_BLOCK) - lo
        z = np.empty(width)
        sz = np.empty(width)
        grad = np.zeros((p, width))            # rows k < d: sum_b r_b sigma'(z) x_bk; row d: sum_b r_b sigma(z)
        ga = grad[d]
        for b in range(batch):
            x = X[rows[b]]
            rb = r[b]
            _project(x, theta_t, lo, width, z)
            if act == RELU:
                for i in range(width):
                    zi = z[i]
                    ga[i] += rb * max(zi, 0.0)
                    z[i] = rb if zi > 0.0 else 0.0
            else:
                _sigma_slope_row(z, sz, width, act, params)
                for i in range(width):
                    ga[i] += rb * sz[i]
                    z[i] = rb * z[i]
            _outer_add(z, x, grad, width)
        for i in range(width):
            ii = lo + i
            for k in range(d):
                vel[ii, k] = mask[k] * (scale * a[ii] * grad[k, i] - lam * theta[ii, k])
            vel[ii, d] = mask[d] * (scale * ga[i] - lam * theta[ii, d])


SMALL_D = 3             # ReLU networks with d <= SMALL_D take _relu_drift_small_d
SMALL_SAMPLE_BLOCK = 256 # samples per parallel block of its forward pass


def work_size(m: int, batch: int, d: int, act: int) -> int:
    """Length of the fused drift's work array: theta transposed (d + 1, m), and for
    ``_relu_drift_small_d`` also the batch transposed (d, batch)."""
    if act == RELU and d <= SMALL_D:
        return (d + 1) * m + d * batch
    return (d + 1) * m


@_jit(parallel=True)
def _relu_drift_small_d(theta, X, y, f0, rows, out_scale, vel_scale, params, omega, loss, lam, mask, work,
                        r, vel, dims):
    """The drift of a ReLU network with d <= SMALL_D: the same velocity as ``_network_drift``.
    ``dims`` = (0, ..., d - 1) (``small_d_drift`` passes it): its length, a compile-time constant,
    gives each d its own compiled loops with no padded coordinate (1.3-1.4x faster than the same
    loops reading d at run time; 2026-12-07, one thread, (n, m) = (200, 1e5), d = 1-3).

    Every loop is vectorised over the index it does not sum over, so no sum is split into lanes:
    forward, blocks of samples in parallel, each sample's f_j = sum_i a_i relu(w_i . x_j) summed
    over the neurons in order, two neurons per pass (the block size changes no bits); backward,
    blocks of neurons in parallel, each neuron's M_i = sum_j r_j [w_i . x_j > 0] x_j summed over
    the samples in order, two samples per pass, then grad_W_i = a_i M_i and grad_a_i = w_i . M_i
    (relu(z) = [z > 0] z). No sum depends on the thread count. work: ``work_size`` floats
    (theta^T (d + 1, m) with row d the output weights a omega, then X_batch^T (d, B)).
    """
    m, p = theta.shape
    d = len(dims)                    # == p - 1
    batch = rows.shape[0]
    theta_t = work[:p * m].reshape((p, m))
    x_t = work[p * m:p * m + d * batch].reshape((d, batch))
    for i in range(m):
        for k in range(d):
            theta_t[k, i] = theta[i, k]
        theta_t[d, i] = theta[i, d] * omega[i] if omega.shape[0] > 0 else theta[i, d]
    for b in range(batch):
        for k in range(d):
            x_t[k, b] = X[rows[b], k]
    zero = _zero(work)               # accumulators and constants in the steps' type (float32 stays float32)
    fa = theta_t[d]
    w0, w1, w2 = theta_t[0], theta_t[min(1, d - 1)], theta_t[min(2, d - 1)]       # rows past d unused
    x0, x1, x2 = x_t[0], x_t[min(1, d - 1)], x_t[min(2, d - 1)]
    sb = min(SMALL_SAMPLE_BLOCK, max(16, (batch + 7) // 8))      # >= 8 blocks when the batch allows
    for blk in prange((batch + sb - 1) // sb):
        lo = blk * sb
        hi = min(batch, lo + sb)
        f = np.zeros(hi - lo, work.dtype)
        u0, u1, u2 = x0[lo:hi], x1[lo:hi], x2[lo:hi]
        for i in range(0, m, 2):
            pair = i + 1 < m
            c, e = fa[i], fa[i + 1] if pair else zero        # a lone last neuron pairs with a = 0: adds +0
            wa0, wa1, wa2 = w0[i], w1[i], w2[i]
            wb0, wb1, wb2 = (w0[i + 1], w1[i + 1], w2[i + 1]) if pair else (zero, zero, zero)
            if d == 1:
                for j in range(hi - lo):
                    s = f[j] + c * max(wa0 * u0[j], zero)
                    f[j] = s + e * max(wb0 * u0[j], zero)
            elif d == 2:
                for j in range(hi - lo):
                    s = f[j] + c * max(wa0 * u0[j] + wa1 * u1[j], zero)
                    f[j] = s + e * max(wb0 * u0[j] + wb1 * u1[j], zero)
            else:
                for j in range(hi - lo):
                    s = f[j] + c * max((wa0 * u0[j] + wa1 * u1[j]) + wa2 * u2[j], zero)
                    f[j] = s + e * max((wb0 * u0[j] + wb1 * u1[j]) + wb2 * u2[j], zero)
        for j in range(hi - lo):
            row = rows[lo + j]
            r[lo + j] = _dloss(out_scale * f[j] - f0[row], y[row], loss)
    scale = -vel_scale / batch if batch > 0 else 0.0
    for blk in prange((m + NEURON_BLOCK - 1) // NEURON_BLOCK):
        lo = blk * NEURON_BLOCK
        hi = min(m, lo + NEURON_BLOCK)
        g0, g1, g2 = np.zeros(hi - lo, work.dtype), np.zeros(hi - lo, work.dtype), np.zeros(hi - lo, work.dtype)
        v0, v1, v2 = w0[lo:hi], w1[lo:hi], w2[lo:hi]
        for b in range(0, batch, 2):
            pair = b + 1 < batch                              # a lone last sample pairs with r = 0
            pa0, pa1, pa2, ra = x0[b], x1[b], x2[b], r[b]
            pb0, pb1, pb2, rb = (x0[b + 1], x1[b + 1], x2[b + 1], r[b + 1]) if pair else (zero, zero, zero, zero)
            qa0, qa1, qa2, qb0, qb1, qb2 = ra * pa0, ra * pa1, ra * pa2, rb * pb0, rb * pb1, rb * pb2   # r_j x_j
            if d == 1:                       # g += r_j x_j where w . x_j > 0: a masked add per coordinate
                for i in range(hi - lo):
                    g0[i] = (g0[i] + (qa0 if pa0 * v0[i] > zero else zero)) + (qb0 if pb0 * v0[i] > zero else zero)
            elif d == 2:
                for i in range(hi - lo):
                    za, zb = pa0 * v0[i] + pa1 * v1[i] > zero, pb0 * v0[i] + pb1 * v1[i] > zero
                    g0[i] = (g0[i] + (qa0 if za else zero)) + (qb0 if zb else zero)
                    g1[i] = (g1[i] + (qa1 if za else zero)) + (qb1 if zb else zero)
            else:
                for i in range(hi - lo):
                    za = (pa0 * v0[i] + pa1 * v1[i]) + pa2 * v2[i] > zero
                    zb = (pb0 * v0[i] + pb1 * v1[i]) + pb2 * v2[i] > zero
                    g0[i] = (g0[i] + (qa0 if za else zero)) + (qb0 if zb else zero)
                    g1[i] = (g1[i] + (qa1 if za else zero)) + (qb1 if zb else zero)
                    g2[i] = (g2[i] + (qa2 if za else zero)) + (qb2 if zb else zero)
        for i in range(hi - lo):
            ii = lo + i
            a, ga = theta[ii, d], zero
            for k in range(d):
                mk = g0[i] if k == 0 else (g1[i] if k == 1 else g2[i])
                ga += theta[ii, k] * mk
                vel[ii, k] = mask[k] * (scale * a * mk - lam * theta[ii, k])
            vel[ii, d] = mask[d] * (scale * ga - lam * theta[ii, d])


@_jit()
def small_d_drift(theta, X, y, f0, rows, out_scale, vel_scale, params, omega, loss, lam, mask, work, r, vel):
    """``_relu_drift_small_d`` compiled for theta's d (1, 2 or 3)."""
    d = theta.shape[1] - 1
    if d == 1:
        _relu_drift_small_d(theta, X, y, f0, rows, out_scale, vel_scale, params, omega, loss, lam, mask, work,
                            r, vel, (0,))
    elif d == 2:
        _relu_drift_small_d(theta, X, y, f0, rows, out_scale, vel_scale, params, omega, loss, lam, mask, work,
                            r, vel, (0, 1))
    else:
        _relu_drift_small_d(theta, X, y, f0, rows, out_scale, vel_scale, params, omega, loss, lam, mask, work,
                            r, vel, (0, 1, 2))


@_jit()
def drift(theta, feat, X, y, f0, rows, model, tangent, parallel, r, vel, work):
    """The drift of every particle on the samples ``rows`` into vel (m, d + 1) (the network's, or
    its tangent model's at feat = theta0); ``model`` the network's constants (``MODEL``); r (B,) and
    work (``work_size``) are work buffers."""
    out_scale, vel_scale, act, params, omega, loss, lam, mask = model
    check_codes(act, loss)
    if parallel and not tangent and act == RELU and theta.shape[1] - 1 <= SMALL_D:
        small_d_drift(theta, X, y, f0, rows, out_scale, vel_scale, params, omega, loss, lam, mask, work, r, vel)
    elif parallel and not tangent:
        _network_drift(theta, X, y, f0, rows, out_scale, vel_scale, act, params, omega, loss, lam, mask,
                       work[:theta.size].reshape((theta.shape[1], theta.shape[0])), r, vel)
    elif parallel:
        _residuals_parallel(theta, feat, X, y, f0, rows, out_scale, act, params, omega, loss, tangent, r)
        _velocities_parallel(theta, feat, X, rows, r, vel_scale, act, params, lam, mask, vel)
    else:
        _residuals_serial(theta, feat, X, y, f0, rows, out_scale, act, params, omega, loss, tangent, r)
        _velocities_serial(theta, feat, X, rows, r, vel_scale, act, params, lam, mask, vel)


@_jit(parallel=True)
def _predict_parallel(theta, feat, X, out_scale, act, params, omega, tangent, out):
    for j in prange(X.shape[0]):
        out[j] = out_scale * _forward(theta, feat, X[j], act, params, omega, tangent)


@_jit()
def _predict_serial(theta, feat, X, out_scale, act, params, omega, tangent, out):
    for j in range(X.shape[0]):
        out[j] = out_scale * _forward(theta, feat, X[j], act, params, omega, tangent)


def predict(theta, X, out_scale, act, params, theta0=None, parallel=True, omega=None):
    """out_scale sum_i a_i sigma(w_i . x_j) for every row of X, shape (n,) (each term times
    omega_i for weighted particles); with ``theta0``, the tangent model linearised at theta0."""
    check_codes(act, SQUARED)
    out = np.empty(X.shape[0])
    feat = theta if theta0 is None else theta0
    omega = NO_WEIGHTS if omega is None else omega
    (_predict_parallel if parallel else _predict_serial)(theta, feat, X, out_scale, act, params, omega,
                                                         theta0 is not None, out)
    return out


def velocity(theta, X, y, f0, rows, out_scale, vel_scale, act, params, loss, lam, mask,
             theta0=None, parallel=True, omega=None):
    """Drift of every particle on the samples ``rows``, shape (m, d + 1); with ``theta0``, the
    drift of the tangent model linearised at theta0; ``omega``: the particles' weights."""
    r = np.empty(rows.shape[0])
    vel = np.empty_like(theta)
    feat = theta if theta0 is None else theta0
    model = (out_scale, vel_scale, act, params, NO_WEIGHTS if omega is None else omega, loss, lam, mask)
    drift(theta, feat, X, y, f0, rows, model, theta0 is not None, parallel, r, vel,
          np.empty(work_size(theta.shape[0], rows.shape[0], theta.shape[1] - 1, act)))
    return vel


# --- the integrators' arithmetic (``integrators.py``: Butcher tableaus a, b) -----------------

@_jit()
def _kick(noise, scale, s, mask, i, k):
    """The Langevin kick of step s on coordinate (i, k): scale_s mask_k xi_sik (0 without noise)."""
    return scale[s] * mask[k] * noise[s, i, k] if noise.shape[0] > 0 else 0.0


@_jit()
def stage_point(theta, K, a, stage, dt, noise, scale, s, mask, out):
    """out = theta + dt sum_{j < stage} a[stage, j] K[j] + kick (the kick only for a noisy step).
    K (stages, m, d + 1) the stage drifts; returns out."""
    m, p = theta.shape
    for i in range(m):
        for k in range(p):
            S = a[stage, 0] * K[0, i, k]
            for j in range(1, stage):
                S += a[stage, j] * K[j, i, k]
            out[i, k] = theta[i, k] + dt * S + _kick(noise, scale, s, mask, i, k)
    return out


@_jit()
def update(theta, K, b, dt, noise, scale, s, mask):
    """theta += dt sum_j b[j] K[j] + kick, in place: the step's result."""
    m, p = theta.shape
    for i in range(m):
        for k in range(p):
            S = b[0] * K[0, i, k]
            for j in range(1, b.shape[0]):
                S += b[j] * K[j, i, k]
            theta[i, k] += dt * S + _kick(noise, scale, s, mask, i, k)


@_jit()
def advance(theta, theta0, X, y, f0, idx, noise, noise_scale, n_steps, model, method, energy, tangent, parallel,
            buffers):
    """Advance theta in place by n_steps of the Runge–Kutta method ``method`` = (a, b, dt)
    (``integrators.py``; with noise: Euler–Maruyama or stochastic Heun) of the network whose
    constants are ``model`` (``MODEL``), or of its tangent model linearised at theta0 when
    ``tangent``, plus the energy terms ``energy`` (``energy_drift``).

    Step s uses the samples idx[s % len(idx)] and the noise noise_scale[s] * noise[s] (if any).
    buffers = (r (B,), K (stages, m, d + 1), point (m, d + 1) (unused by one-stage methods), work
    (``work_size``)): nothing of size B x m is allocated here. This loop over stages is the one of
    ``drifts.integrate``, compiled here so that small steps pay no Python.
    """
    a, b, dt = method
    r, K, point, work = buffers
    mask = model[7]
    check_codes(model[2], model[5])
    for s in range(n_steps):
        rows = idx[s % idx.shape[0]]
        for stage in range(b.shape[0]):
            at = theta if stage == 0 else stage_point(theta, K, a, stage, dt, noise, noise_scale, s, mask, point)
            feat = theta0 if tangent else at
            drift(at, feat, X, y, f0, rows, model, tangent, parallel, r, K[stage], work)
            energy_drift(at, model[7], model[4], energy, parallel, K[stage])
        update(theta, K, b, dt, noise, noise_scale, s, mask)


# --- the energy terms (``energy.py``): potentials V and pair interactions W --------------------

# The codes of ``energy.py``'s registries, as literals (the cache tracks only this file).
NO_POTENTIAL, QUADRATIC_POTENTIAL, QUARTIC_POTENTIAL, DOUBLE_WELL_POTENTIAL = 0, 1, 2, 3
NO_INTERACTION, INNER_INTERACTION, QUADRATIC_INTERACTION, GAUSSIAN_INTERACTION = 0, 1, 2, 3
POTENTIAL_CODES = {"none": NO_POTENTIAL, "quadratic": QUADRATIC_POTENTIAL, "quartic": QUARTIC_POTENTIAL,
                   "double_well": DOUBLE_WELL_POTENTIAL}
INTERACTION_CODES = {"none": NO_INTERACTION, "inner": INNER_INTERACTION, "quadratic": QUADRATIC_INTERACTION,
                     "gaussian": GAUSSIAN_INTERACTION}
PAIR_BLOCK = 64        # particles per parallel block of the pair sums


@_jit()
def _potential_drift(theta, mask, code, coef, matrix, out):
    """out_i += -mask * grad V(theta_i): quadratic V = theta.A theta / 2 (A = matrix, symmetric);
    quartic V = c |theta|^4 / 4 (coef = [c]); double well V = h sum_k ((theta_k / c)^2 - 1)^2
    (coef = [h, c])."""
    m, p = theta.shape
    for i in range(m):
        if code == QUADRATIC_POTENTIAL:
            for k in range(p):
                g = 0.0
                for l in range(p):
                    g += matrix[k, l] * theta[i, l]
                out[i, k] -= mask[k] * g
        elif code == QUARTIC_POTENTIAL:
            q = 0.0
            for k in range(p):
                q += theta[i, k] * theta[i, k]
            for k in range(p):
                out[i, k] -= mask[k] * coef[0] * q * theta[i, k]
        elif code == DOUBLE_WELL_POTENTIAL:
            for k in range(p):
                u = theta[i, k] / coef[1]
                out[i, k] -= mask[k] * 4.0 * coef[0] * u * (u * u - 1.0) / coef[1]


@_jit()
def _gaussian_rows(theta, lo, hi, coef, mask, omega, out):
    """out_i += mask (J / (m h^2)) sum_j (theta_i - theta_j) exp(-|theta_i - theta_j|^2 / (2 h^2))
    for lo <= i < hi, j in order (coef = [J, h]); 1/m is omega_j for weighted particles."""
    m, p = theta.shape
    weighted = omega.shape[0] > 0
    scale = coef[0] / ((1.0 if weighted else m) * coef[1] * coef[1])
    inv = 0.5 / (coef[1] * coef[1])
    acc = np.empty(p)
    for i in range(lo, hi):
        acc[:] = 0.0
        for j in range(m):
            q = 0.0
            for k in range(p):
                diff = theta[i, k] - theta[j, k]
                q += diff * diff
            e = math.exp(-q * inv) * omega[j] if weighted else math.exp(-q * inv)
            for k in range(p):
                acc[k] += (theta[i, k] - theta[j, k]) * e
        for k in range(p):
            out[i, k] += mask[k] * scale * acc[k]


@_jit(parallel=True)
def _gaussian_parallel(theta, coef, mask, omega, out):
    m = theta.shape[0]
    for blk in prange((m + PAIR_BLOCK - 1) // PAIR_BLOCK):
        _gaussian_rows(theta, blk * PAIR_BLOCK, min(m, (blk + 1) * PAIR_BLOCK), coef, mask, omega, out)


@_jit()
def _interaction_drift(theta, mask, omega, code, coef, parallel, out):
    """out_i += -mask (1/m) sum_j grad_1 W(theta_i, theta_j): inner W = -J theta.theta' (drift
    J mean theta), quadratic W = J |theta - theta'|^2 / 2 (drift -J (theta_i - mean theta)), both
    through the mean; Gaussian W = J exp(-|theta - theta'|^2 / (2 h^2)) by blocked pair sums.
    Weighted particles: means and sums over j weigh particle j by omega_j instead of 1/m."""
    m, p = theta.shape
    if code == GAUSSIAN_INTERACTION:
        if parallel:
            _gaussian_parallel(theta, coef, mask, omega, out)
        else:
            _gaussian_rows(theta, 0, m, coef, mask, omega, out)
        return
    weighted = omega.shape[0] > 0
    mean = np.zeros(p)
    for j in range(m):
        for k in range(p):
            mean[k] += theta[j, k] * omega[j] if weighted else theta[j, k]
    if not weighted:
        for k in range(p):
            mean[k] /= m
    for i in range(m):
        for k in range(p):
            if code == INNER_INTERACTION:
                out[i, k] += mask[k] * coef[0] * mean[k]
            elif code == QUADRATIC_INTERACTION:
                out[i, k] -= mask[k] * coef[0] * (theta[i, k] - mean[k])


@_jit()
def energy_drift(theta, mask, omega, energy, parallel, out):
    """out += the drift of the energy terms ``energy`` = (potential code, its coefficients, its
    matrix, interaction code, its coefficients [J, h]) (``energy.kernel_form``); codes 0: none;
    omega (m,) the particles' weights (empty: unweighted)."""
    pot, coef, matrix, inter, icoef = energy
    if pot < NO_POTENTIAL or pot > DOUBLE_WELL_POTENTIAL or inter < NO_INTERACTION or inter > GAUSSIAN_INTERACTION:
        raise ValueError("unknown energy term code")
    if pot != NO_POTENTIAL:
        _potential_drift(theta, mask, pot, coef, matrix, out)
    if inter != NO_INTERACTION:
        _interaction_drift(theta, mask, omega, inter, icoef, parallel, out)


# --- population risk: sums over neuron pairs of the terms (kappa, A, B) of population.pair_terms

# atan(z) = z + z^3 P(z^2) on |z| <= tan(pi/8): P fitted (weighted least squares at 40 digits on
# Chebyshev nodes) to 2e-16 relative error in atan; tests check _atan2_upper against math.atan2.
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9, _P10 = (
    -0.33333333333333187, 0.19999999999951815, -0.14285714280044026, 0.11111110776759447,
    -0.09090897585414695, 0.07692057439988456, -0.06663075229586649, 0.05847696323165607,
    -0.05038499894536994, 0.03804554892856584, -0.017887779925664465)
TAN_PI_8 = 0.41421356237309503


@_jit()
def _atan2_upper(y, x):
    """math.atan2(y, x) for y >= 0, in [0, pi], by a polynomial: unlike math.atan2 it vectorises."""
    ax = abs(x)
    hi = max(y, ax)
    lo = min(y, ax)
    big = lo > TAN_PI_8 * hi                 # atan(lo / hi) = pi / 4 + atan((lo - hi) / (lo + hi))
    num = lo - hi if big else lo
    den = lo + hi if big else hi
    z = num / den if den > 0.0 else 0.0
    s = z * z
    p = ((((((((((_P10 * s + _P9) * s + _P8) * s + _P7) * s + _P6) * s + _P5) * s + _P4) * s + _P3) * s
          + _P2) * s + _P1) * s + _P0)
    t = z + z * s * p
    if big:
        t += 0.25 * math.pi
    if y > ax:
        t = 0.5 * math.pi - t
    return math.pi - t if x < 0.0 else t


@_jit()
def _relu_pair(q1, q2, rho):
    cross = math.sqrt(max(q1 * q2 - rho * rho, 0.0))
    t = _atan2_upper(cross, rho)
    A = cross / (2.0 * math.pi * q1) if q1 > 0.0 else 0.0
    return (cross + (math.pi - t) * rho) / (2.0 * math.pi), A, (math.pi - t) / (2.0 * math.pi)


@_jit()
def _pair(q1, q2, rho, code, params):
    if code == RELU:
        return _relu_pair(q1, q2, rho)
    if code == LEAKY_RELU:
        k, A, B = _relu_pair(q1, q2, rho)
        s = params[0]
        s2 = (1.0 - s) * (1.0 - s)
        return s * rho + s2 * k, s2 * A, s + s2 * B
    if code == ERF:
        g1 = 1.0 + 2.0 * q1
        g2 = 1.0 + 2.0 * q2
        root = math.sqrt(g1 * g2)
        u = min(max(2.0 * rho / root, -1.0), 1.0)
        inv = 2.0 / (math.pi * math.sqrt(max(1.0 - u * u, 1e-300)))
        return 2.0 / math.pi * math.asin(u), inv * (-2.0 * u / g1), inv * 2.0 / root
    if code == QUADRATIC:
        return q1 * q2 + 2.0 * rho * rho, 2.0 * q2, 4.0 * rho
    if code == LINEAR:
        return rho, 0.0, 1.0
    return math.nan, math.nan, math.nan


PAIR_BYTES = 2 ** 20    # a block's two (rows, k) work arrays fit in this (L2 cache); rows <= 16


@_jit(parallel=True)
def population_sums(W, V, Vt, c, code, params, lanes, Kc, Ac, BcV):
    """Kc_i = sum_j kappa_ij c_j, Ac_i = sum_j A_ij c_j, BcV_i = sum_j B_ij c_j v_j for the pair
    terms of (w_i, v_j) (closed forms only), without forming any (m, k) matrix.

    W (m, d) students; V (k, d) and Vt = V^T (d, k), contiguous; c (k,); Kc, Ac (m,), BcV (m, d)
    outputs. Blocks of students (as many as fit PAIR_BYTES; a function of k only): their inner
    products w_i . v_j and their sums of B_ij c_j v_j are BLAS products, the pair terms one
    vectorised loop per student. ``lanes`` (the thread count) take the blocks in turn, each with
    work arrays allocated once per call; a block is computed the same whichever lane takes it.
    """
    check_codes(code, SQUARED)
    m, d = W.shape
    k = V.shape[0]
    q2 = np.zeros(k)
    for t in range(d):
        for j in range(k):
            q2[j] += Vt[t, j] * Vt[t, j]
    per_block = max(1, min(16, PAIR_BYTES // (16 * max(k, 1))))
    blocks = (m + per_block - 1) // per_block
    for lane in prange(lanes):
        R_work = np.empty((per_block, k))        # w_i . v_j
        Bc_work = np.empty((per_block, k))       # B_ij c_j
        out_work = np.empty((per_block, d))
        kap = np.empty(k)                        # kappa_ij c_j and A_ij c_j, summed by _sum8
        crs = np.empty(k)
        for blk in range(lane, blocks, lanes):
            lo = blk * per_block
            rows = min(m, lo + per_block) - lo
            R, Bc, out = R_work[:rows], Bc_work[:rows], out_work[:rows]
            np.dot(W[lo:lo + rows], Vt, R)
            for ii in range(rows):
                i = lo + ii
                q1 = 0.0
                for t in range(d):
                    q1 += W[i, t] * W[i, t]
                rho = R[ii]
                bc = Bc[ii]
                if code == RELU:            # _relu_pair inlined, its constant factors taken out of the sums
                    for j in range(k):
                        r = rho[j]
                        cross = math.sqrt(max(q1 * q2[j] - r * r, 0.0))
                        angle = math.pi - _atan2_upper(cross, r)
                        kap[j] = (cross + angle * r) * c[j]
                        crs[j] = cross * c[j]
                        bc[j] = angle * c[j] / (2.0 * math.pi)
                    Kc[i] = _sum8(kap, k) / (2.0 * math.pi)
                    Ac[i] = _sum8(crs, k) / (2.0 * math.pi * q1) if q1 > 0.0 else 0.0
                else:
                    for j in range(k):
                        kappa, A, B = _pair(q1, q2[j], rho[j], code, params)
                        kap[j] = kappa * c[j]
                        crs[j] = A * c[j]
                        bc[j] = B * c[j]
                    Kc[i] = _sum8(kap, k)
                    Ac[i] = _sum8(crs, k)
            np.dot(Bc, V, out)
            BcV[lo:lo + rows] = out


@_jit()
def _squared_norms(Z, width):
    """sum_t Z[j, t]^2 over the first ``width`` columns, for every row j (N,)."""
    q = np.empty(Z.shape[0])
    for j in range(Z.shape[0]):
        s = 0.0
        for t in range(width):
            s += Z[j, t] * Z[j, t]
        q[j] = s
    return q

@_jit(parallel=True)
def reduced_sums(Z, omega, c, nu, code, params, Kbar, Abar, BS, Br):
    """The reduced limit's pair sums (``reduced.sums``, its NumPy twin): for each reduced particle
    i of Z (N, k + 2) = [w_S | r | a], with u_j = omega_j a_j and the cosine rule (c, nu) (L,),
    Kbar_i = sum_j u_j sum_l nu_l kappa_ijl, Abar_i likewise with A, BS_i = sum_j u_j (sum_l nu_l
    B_ijl) w_S,j (k,), Br_i = sum_j u_j r_j sum_l nu_l B_ijl c_l, where the pair terms are taken at
    rho_ijl = w_S,i . w_S,j + r_i r_j c_l. One particle per iteration, its sums in a fixed order:
    the same bits on any thread count."""
    check_codes(code, SQUARED)
    N = Z.shape[0]
    k = Z.shape[1] - 2
    L = c.shape[0]
    q = _squared_norms(Z, k + 1)
    for i in prange(N):
        kap = 0.0
        aa = 0.0
        br = 0.0
        bs = np.zeros(k)
        for j in range(N):
            u = omega[j] * Z[j, k + 1]
            if u == 0.0:
                continue
            base = 0.0
            for t in range(k):
                base += Z[i, t] * Z[j, t]
            rr = Z[i, k] * Z[j, k]
            ek = 0.0
            ea = 0.0
            eb = 0.0
            ebc = 0.0
            for l in range(L):
                kappa, A, B = _pair(q[i], q[j], base + rr * c[l], code, params)
                ek += nu[l] * kappa
                ea += nu[l] * A
                eb += nu[l] * B
                ebc += nu[l] * B * c[l]
            kap += u * ek
            aa += u * ea
            br += u * Z[j, k] * ebc
            for t in range(k):
                bs[t] += u * eb * Z[j, t]
        Kbar[i] = kap
        Abar[i] = aa
        Br[i] = br
        for t in range(k):
            BS[i, t] = bs[t]



@_jit()
def _pair_second(q1, q2, rho, code, params, parallel_sin2):
    """(F11, F12, F13, F33): the second partials of kappa = F(q1, q2, rho) (``activations``'
    ``kernel_second``, its NumPy twins); relu and leaky_relu: nan where sin^2 < parallel_sin2."""
    if code == RELU or code == LEAKY_RELU:
        slope = params[0] if code == LEAKY_RELU else 0.0
        sin2 = 1.0 - rho * rho / (q1 * q2) if q1 > 0.0 and q2 > 0.0 else 0.0
        if not sin2 >= parallel_sin2:
            return math.nan, math.nan, math.nan, math.nan
        scale = (1.0 - slope) * (1.0 - slope) / (2.0 * math.pi * math.sqrt(max(q1 * q2 - rho * rho, 0.0)))
        return scale * (2.0 * rho * rho - q1 * q2) / (4.0 * q1 * q1), scale / 4.0, -scale * rho / (2.0 * q1), scale
    if code == ERF:
        g1 = 1.0 + 2.0 * q1
        g2 = 1.0 + 2.0 * q2
        u3 = 2.0 / math.sqrt(g1 * g2)
        u = u3 * rho
        h1 = 2.0 / (math.pi * math.sqrt(1.0 - u * u))
        h2 = h1 * u / (1.0 - u * u)
        u1 = -u / g1
        return (h2 * u1 * u1 + h1 * 3.0 * u / (g1 * g1), h2 * u1 * (-u / g2) + h1 * u / (g1 * g2),
                h2 * u1 * u3 - h1 * u3 / g1, h2 * u3 * u3)
    if code == QUADRATIC:
        return 0.0, 1.0, 0.0, 4.0
    if code == LINEAR:
        return 0.0, 0.0, 0.0, 0.0
    return math.nan, math.nan, math.nan, math.nan


@_jit(parallel=True)
def reduced_reverse_sums(Z, omega, V, c, nu, code, params, parallel_sin2, drop, Kbar, Abar, BS, Br, dK, dA, dBS, dBr,
                         dropped):
    """The student pair sums of ``reduced_sums`` (Kbar, Abar (N,), BS (N, k), Br (N,)) and their
    derivatives along the directions V (P, N, k + 2) (dK, dA (P, N), dBS (P, N, k), dBr (P, N)):
    the compiled twin of ``reduced_reverse._student_sums``. Nearly parallel (pair, cosine) terms
    are counted per row in dropped (N,), their second partials set to 0 when ``drop``, else nan.
    One row i per iteration, its sums in a fixed order: the same bits on any thread count."""
    check_codes(code, SQUARED)
    N = Z.shape[0]
    k = Z.shape[1] - 2
    L = c.shape[0]
    P = V.shape[0]
    q = _squared_norms(Z, k + 1)
    dq = np.empty((P, N))
    for p in range(P):
        for j in range(N):
            s = 0.0
            for t in range(k + 1):
                s += Z[j, t] * V[p, j, t]
            dq[p, j] = 2.0 * s
    for i in prange(N):
        kap = 0.0
        aa = 0.0
        br = 0.0
        bs = np.zeros(k)
        dk = np.zeros(P)
        da = np.zeros(P)
        dbr = np.zeros(P)
        dbs = np.zeros((P, k))
        ek_d = np.zeros(P)
        ea_d = np.zeros(P)
        eb_d = np.zeros(P)
        ebc_d = np.zeros(P)
        base_d = np.zeros(P)
        rr_d = np.zeros(P)
        count = 0
        for j in range(N):
            u = omega[j] * Z[j, k + 1]
            base = 0.0
            for t in range(k):
                base += Z[i, t] * Z[j, t]
            rr = Z[i, k] * Z[j, k]
            for p in range(P):
                s = 0.0
                for t in range(k):
                    s += V[p, i, t] * Z[j, t] + Z[i, t] * V[p, j, t]
                base_d[p] = s
                rr_d[p] = V[p, i, k] * Z[j, k] + Z[i, k] * V[p, j, k]
                ek_d[p] = 0.0
                ea_d[p] = 0.0
                eb_d[p] = 0.0
                ebc_d[p] = 0.0
            ek = 0.0
            ea = 0.0
            eb = 0.0
            ebc = 0.0
            for l in range(L):
                rho = base + rr * c[l]
                kappa, A, B = _pair(q[i], q[j], rho, code, params)
                A2 = _pair(q[j], q[i], rho, code, params)[1]
                F11, F12, F13, F33 = _pair_second(q[i], q[j], rho, code, params, parallel_sin2)
                F23 = _pair_second(q[j], q[i], rho, code, params, parallel_sin2)[2]
                if math.isnan(F33) or math.isnan(F23):
                    count += 1
                    if drop:
                        F11 = 0.0
                        F12 = 0.0
                        F13 = 0.0
                        F23 = 0.0
                        F33 = 0.0
                w = nu[l]
                ek += w * kappa
                ea += w * A
                eb += w * B
                ebc += w * B * c[l]
                for p in range(P):
                    dr = base_d[p] + rr_d[p] * c[l]
                    dqi = dq[p, i]
                    dqj = dq[p, j]
                    ek_d[p] += w * (0.5 * A * dqi + 0.5 * A2 * dqj + B * dr)
                    ea_d[p] += w * 2.0 * (F11 * dqi + F12 * dqj + F13 * dr)
                    db = F13 * dqi + F23 * dqj + F33 * dr
                    eb_d[p] += w * db
                    ebc_d[p] += w * db * c[l]
            kap += u * ek
            aa += u * ea
            br += u * Z[j, k] * ebc
            for t in range(k):
                bs[t] += u * eb * Z[j, t]
            for p in range(P):
                du = omega[j] * V[p, j, k + 1]
                dk[p] += du * ek + u * ek_d[p]
                da[p] += du * ea + u * ea_d[p]
                dbr[p] += du * Z[j, k] * ebc + u * V[p, j, k] * ebc + u * Z[j, k] * ebc_d[p]
                for t in range(k):
                    dbs[p, t] += du * eb * Z[j, t] + u * eb_d[p] * Z[j, t] + u * eb * V[p, j, t]
        Kbar[i] = kap
        Abar[i] = aa
        Br[i] = br
        dropped[i] = count
        for t in range(k):
            BS[i, t] = bs[t]
        for p in range(P):
            dK[p, i] = dk[p]
            dA[p, i] = da[p]
            dBr[p, i] = dbr[p]
            for t in range(k):
                dBS[p, i, t] = dbs[p, t]

# --- the BLAS path: tiles Z = W_b X_c^T and grad_W_b += C X_c by BLAS (np.dot) in parallel blocks

# Recompute the tiles rather than store them where that was faster. Measured 2026-12-02 on the
# 2-core reference machine, one thread, CPU ms per full-batch Euler step, median of 7 alternating
# rounds, recomputed / stored: (n, m, d) = (1000, 10000, 4 / 6 / 8 / 10): 0.79 / 0.87 / 0.91 / 1.02;
# (10000, 1000, 4 / 6 / 8 / 10): 1.10 / 1.05 / 1.14 / 1.14; (3000, 3000, 6 / 10): 0.96 / 1.01;
# (1000, 3000, 6): 0.89; (1000, 1000, 4 / 6 / 8 / 10): 1.02 / 1.03 / 1.05 / 1.07; d = 16, 32, 100:
# 1.15 - 1.38. Recomputing pays at small d, when neurons outnumber samples and Z leaves the cache.
RECOMPUTE_MAX_D = 8               # the BLAS path recomputes its tiles up to this d (not ReLU: its signs)...
RECOMPUTE_MIN_ENTRIES = 2 ** 21   # ...once m x B reaches this (Z no longer fits in cache), and m >= B
CHUNK = 1024                      # samples per tile
# Tiles for d > 32, measured the same way (GFLOP/s at 4nmd + 7nm flops, dgemm alone: 53),
# (block, chunk) = (128, 1024) against (512, 512): (n, m, d) = (10000, 1000, 64) 36.7 / 41.2;
# (10000, 1000, 100) 39.5 / 44.4; (1000, 10000, 100) 44.8 / 44.5; (2000, 2000, 200) 42.4 / 45.6;
# (3000, 3000, 50) 37.0 / 37.0. Larger products run nearer dgemm's rate.
LARGE_D_TILE = (512, 512)         # (block, chunk) for d > 32; (512, 1024) measured the same within 1 %
# These are the largest sizes: the tiles are made even (``_even``), so that the last sample tile
# does not pad its products with zeros. (1000, 10000, 100) and (10000, 1000, 100), one thread,
# medians of 15 alternating rounds, engine / floor: 1.238 -> 1.209 and 1.229 -> 1.169.


def blas_plan(m: int, batch: int, d: int, stored_limit: int | None = None, itemsize: int = 8,
              relu: bool = False) -> tuple:
    """(block, chunk, recompute) for the BLAS path, from measurements: tiles of block neurons x
    chunk samples keep the pass in cache; small blocks suit small d, larger ones make better
    products at large d; recomputing a tile costs 2 block chunk d flops and saves the traffic of
    an m x B matrix. Tiles are also recomputed when the m x B matrix would take more than
    ``stored_limit`` bytes (``itemsize`` per entry: a run that would not fit otherwise). ReLU
    (``relu``) keeps a byte per entry instead, the signs, which pay at every d: recomputed only
    where the float matrix itself would not fit (so its memory plan never exceeds the float one's).
    Never depends on the thread count, and kept or recomputed tiles give the same bits."""
    block, chunk = (64, CHUNK) if d <= 32 else LARGE_D_TILE
    block, chunk = _even(m, block), _even(batch, chunk)
    too_big = stored_limit is not None and itemsize * m * batch > stored_limit
    fast = not relu and d <= RECOMPUTE_MAX_D and m * batch >= RECOMPUTE_MIN_ENTRIES and m >= batch
    return block, chunk, bool(too_big or fast)


def _even(count: int, most: int) -> int:
    """The tile size for ``count`` rows in tiles of at most ``most``: the fewest tiles, of equal
    size rounded up to a multiple of 8 (the last one's padding under 8 rows, not up to ``most``)."""
    count = max(count, 1)
    tiles = -(-count // most)
    size = -(-count // tiles)
    return min(most, count, -(-size // 8) * 8)


def chunked(X, chunk):
    """X (B, d) as zero-padded tiles: (Xc (chunks, chunk, d), XTc (chunks, d, chunk)), contiguous, X's type."""
    B, d = X.shape
    chunks = max(1, -(-B // chunk))
    Xc = np.zeros((chunks * chunk, d), X.dtype)
    Xc[:B] = X
    Xc = Xc.reshape(chunks, chunk, d)
    return Xc, np.ascontiguousarray(Xc.transpose(0, 2, 1))


@_jit()
def _tile(Z, lane, c, rows, chunk):
    """The (rows, chunk) tile stored in Z[lane, c] (flat, so that it is contiguous)."""
    return Z[lane, c, :rows * chunk].reshape((rows, chunk))


@_jit()
def _tile_forward(theta, W, XT, lo, hi, count, act, params, omega, tile, part, signs):
    """tile = W[lo:hi] X_c^T (BLAS); part_j += sum_{lo <= i < hi} a_i sigma(z_ij) for j < count
    (a_i omega_i for weighted particles); for ReLU with ``signs`` (rows chunk, uint8; else empty),
    signs_ij = [z_ij > 0]."""
    d = W.shape[1]
    np.dot(W[lo:hi], XT, tile)
    zero = _zero(tile)
    chunk = tile.shape[1]
    for i in range(hi - lo):
        ai = theta[lo + i, d] * omega[lo + i] if omega.shape[0] > 0 else theta[lo + i, d]
        z = tile[i]
        if act == RELU and signs.shape[0] > 0:
            row = signs[i * chunk:(i + 1) * chunk]
            for j in range(count):
                zj = z[j]
                part[j] += ai * max(zj, zero)
                row[j] = zj > zero
        elif act == RELU:
            for j in range(count):
                part[j] += ai * max(z[j], zero)
        elif act == TANH:                       # the tile stays z: the backward pass reads it
            for j in range(count):
                part[j] += ai * _tanh(z[j])
        else:
            for j in range(count):
                part[j] += ai * _act(z[j], act, params)


@_jit()
def _tile_backward(theta, Xc, r, lo, count, act, params, tile, ga, gw, tmp, s):
    """C_ij = r_j a_i sigma'(z_ij) in place of the tile (0 past ``count``); ga_i += sum_j r_j
    sigma(z_ij) (s: a work row of length chunk); gw += C X_c (BLAS, through tmp)."""
    d = Xc.shape[1]
    rows, chunk = tile.shape
    for i in range(rows):
        ai = theta[lo + i, d]
        z = tile[i]
        _sigma_slope_row(z, s, count, act, params)
        for j in range(count):
            z[j] = r[j] * ai * z[j]
        z[count:] = 0.0
        ga[i] += _dot8(r, s, count)
    np.dot(tile, Xc, tmp)
    gw += tmp


@_jit()
def _relu_tile_backward(Xc, r, count, tile, signs, M, tmp):
    """ReLU's backward tile: C_ij = r_j [z_ij > 0] in place of the tile (the signs from ``signs``
    (rows chunk, uint8), or, if it is empty, from the tile's z) and 0 past ``count``; M += C X_c
    (BLAS, through tmp), so that grad_W_i = a_i M_i and grad_a_i = w_i . M_i (relu(z) = [z > 0] z)."""
    rows, chunk = tile.shape
    zero = _zero(tile)
    for i in range(rows):
        c = tile[i]
        if signs.shape[0] > 0:
            row = signs[i * chunk:(i + 1) * chunk]
            for j in range(count):
                c[j] = r[j] if row[j] else zero
        else:
            for j in range(count):
                c[j] = r[j] if c[j] > zero else zero
        c[count:] = zero
    np.dot(tile, Xc, tmp)
    M += tmp


@_jit(parallel=True)
def blas_drift(theta, Xc, XTc, y, f0, model, block, W, Z, signs, fpart, r, vel):
    """The drift of every particle on the samples y (B,) with inputs in tiles (``chunked``), by
    matrix products on tiles of ``block`` neurons x chunk samples; the same velocity as the loops above.

    Phase 1, per tile: Z_bc = W_b X_c^T and its part of f_j = sum_i a_i sigma(z_ij). Residuals
    r_j = loss'(out_scale f_j - f0_j, y_j), the parts summed in block order. Phase 2, per block,
    over its tiles in order: C = r a sigma'(Z_bc) in place, grad_W_b += C X_c, grad_a_b.
    Z (lanes, tiles, block chunk): every tile kept between the phases (lanes = blocks, tiles =
    chunks), or one tile per thread (recomputed in phase 2: nothing of size m x B). ReLU keeps
    only the signs of z, one byte each, in ``signs`` (blocks, chunks, block chunk), or none
    ((1, 1, 0): recomputed), with one tile of Z per thread; its phase 2 sums M_b = sum_c
    (r [Z_bc > 0]) X_c and takes grad_W_i = a_i M_i, grad_a_i = w_i . M_i. Each block is computed
    the same way whichever lane takes it and BLAS runs single-threaded inside, so no result
    depends on the thread count. Work arrays: W (m, d); fpart (blocks, chunks chunk); r (B,);
    writes vel (m, d + 1). ``model``: the network's constants (``MODEL``).
    """
    out_scale, vel_scale, act, params, omega, loss, lam, mask = model
    check_codes(act, loss)
    m, p = theta.shape
    d = p - 1
    batch = y.shape[0]
    chunks, chunk = Xc.shape[0], Xc.shape[1]
    blocks = (m + block - 1) // block
    lanes = Z.shape[0]
    relu = act == RELU
    keep = signs.shape[2] > 0 if relu else lanes >= blocks and Z.shape[1] >= chunks
    stored = keep and not relu                  # every tile of Z kept, else one per lane
    none = signs[0, 0, :0]
    for i in prange(m):
        for k in range(d):
            W[i, k] = theta[i, k]
    for lane in prange(lanes):
        for blk in range(lane, blocks, lanes):
            lo = blk * block
            hi = min(m, lo + block)
            fpart[blk, :] = 0.0
            for c in range(chunks):
                count = min(chunk, batch - c * chunk)
                tile = _tile(Z, lane, c if stored else 0, hi - lo, chunk)
                _tile_forward(theta, W, XTc[c], lo, hi, count, act, params, omega, tile, fpart[blk, c * chunk:],
                              signs[blk, c] if relu and keep else none)
    for j in prange(batch):
        f = 0.0
        for blk in range(blocks):
            f += fpart[blk, j]
        r[j] = _dloss(out_scale * f - f0[j], y[j], loss)
    scale = -vel_scale / batch if batch > 0 else 0.0
    for lane in prange(lanes):
        tmp = np.empty((block, d), theta.dtype)
        gw = np.empty((block, d), theta.dtype)
        ga = np.empty(block, theta.dtype)
        srow = np.empty(chunk, theta.dtype)
        for blk in range(lane, blocks, lanes):
            lo = blk * block
            hi = min(m, lo + block)
            rows = hi - lo
            gw[:] = 0.0
            ga[:] = 0.0
            for c in range(chunks):
                count = min(chunk, batch - c * chunk)
                tile = _tile(Z, lane, c if stored else 0, rows, chunk)
                if not keep:
                    np.dot(W[lo:hi], XTc[c], tile)
                if relu:
                    _relu_tile_backward(Xc[c], r[c * chunk:], count, tile, signs[blk, c] if keep else none,
                                        gw[:rows], tmp[:rows])
                else:
                    _tile_backward(theta, Xc[c], r[c * chunk:], lo, count, act, params, tile, ga[:rows],
                                   gw[:rows], tmp[:rows], srow)
            for i in range(rows):
                ai = theta[lo + i, d] if relu else 1.0          # ReLU's gw is M: grad_W = a M, grad_a = w . M
                if relu:
                    ga[i] = _dot8(theta[lo + i], gw[i], d)
                for k in range(d):
                    vel[lo + i, k] = mask[k] * (scale * ai * gw[i, k] - lam * theta[lo + i, k])
                vel[lo + i, d] = mask[d] * (scale * ga[i] - lam * theta[lo + i, d])


@_jit(parallel=True)
def weighted_reverse(XT, theta, s0, s1, s2, r, l2, omega, mask, cot, alpha, c, lam, bar, omega_bar):
    """The reverse product of the weighted flow's velocity (``fluctuations.WeightedFlow.reverse``,
    its NumPy twin) for P cotangents ``cot`` (P, K, p) at a stage with features s0, s1, s2 (K, n),
    r, loss'' l2 (n,), XT = X^T (d, n): writes bar (P, K, p) and adds to omega_bar (P, K). A
    column's sum over nodes, then each (node, column)'s sums over samples (``_dot8``), in a fixed
    order: bits independent of the thread count."""
    P, K, p = cot.shape
    d, n = XT.shape
    u_bar = np.zeros((P, n))
    for q in prange(P):                                   # the cotangent of u: a sum over nodes per column
        xe = np.empty(n)
        for k in range(K):
            xe[:] = 0.0
            for i in range(d):
                ei = -mask[i] * cot[q, k, i]
                for j in range(n):
                    xe[j] += XT[i, j] * ei
            a, ea = theta[k, d], -mask[d] * cot[q, k, d]
            for j in range(n):
                u_bar[q, j] += a * s1[k, j] * xe[j] + s0[k, j] * ea
        for j in range(n):
            u_bar[q, j] *= c * l2[j]
    for k in prange(K):
        a, wk = theta[k, d], alpha * omega[k]
        e, xe, coef, terms = np.empty(p), np.empty(n), np.empty(n), np.empty(n)
        for q in range(P):
            for i in range(p):
                e[i] = -mask[i] * cot[q, k, i]
            xe[:] = 0.0
            for i in range(d):
                for j in range(n):
                    xe[j] += XT[i, j] * e[i]
            for j in range(n):
                ub = u_bar[q, j]
                coef[j] = c * r[j] * (a * s2[k, j] * xe[j] + s1[k, j] * e[d]) + wk * a * s1[k, j] * ub
                terms[j] = c * s1[k, j] * r[j] * xe[j] + wk * s0[k, j] * ub
            for i in range(d):
                bar[q, k, i] = _dot8(coef, XT[i], n) + lam * e[i]
            bar[q, k, d] = _sum8(terms, n) + lam * e[d]
            omega_bar[q, k] += alpha * a * _dot8(s0[k], u_bar[q], n)


@_jit()
def _ddact(z, code, params):
    """sigma''(z) (0 between the kinks of piecewise-linear activations): the NumPy twin is each
    activation's ``second`` in ``activations.py``."""
    if code == TANH:
        t = _tanh(z)
        return -2.0 * t * (1.0 - t * t)
    if code == SIGMOID or code == SOFTPLUS:
        s = _sigmoid(z)
        return s * (1.0 - s) * (1.0 - 2.0 * s) if code == SIGMOID else s * (1.0 - s)
    if code == ERF:
        return -2.2567583341910252 * z * math.exp(-z * z)
    if code == QUADRATIC:
        return 2.0
    if code in (RELU, LEAKY_RELU, PIECEWISE_LINEAR, LINEAR):
        return 0.0
    return math.nan


@_jit(parallel=True)
def features(Z, act, params, s0, s1, s2):
    """s0, s1, s2 = sigma, sigma', sigma'' of Z (K, n), elementwise (tanh and sigmoid from one
    transcendental each: their derivatives are functions of sigma)."""
    K, n = Z.shape
    for k in prange(K):
        if act == TANH:
            for j in range(n):
                t = _tanh(Z[k, j])
                s0[k, j], s1[k, j] = t, 1.0 - t * t
                s2[k, j] = -2.0 * t * s1[k, j]
        elif act == SIGMOID:
            for j in range(n):
                t = _sigmoid(Z[k, j])
                s0[k, j], s1[k, j] = t, t * (1.0 - t)
                s2[k, j] = s1[k, j] * (1.0 - 2.0 * t)
        else:
            for j in range(n):
                s0[k, j] = _act(Z[k, j], act, params)
                s1[k, j] = _dact(Z[k, j], act, params)
                s2[k, j] = _ddact(Z[k, j], act, params)
