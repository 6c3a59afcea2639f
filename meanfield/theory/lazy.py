"""The lazy limit as predictions: test points, any training time (t = inf included), ensembles.

The infinitely wide network trained by gradient flow on the mean loss moves like its tangent
model, in the library's flow time (docs/conventions.md): on the training inputs X (n, d) and at
any other inputs Z (n_test, d), with r = loss'(u, y) and a ridge lam on the displacement from the
initialisation ((lam / 2) |theta - theta_0|^2 on the tangent model's parameters),

    du/dt = -(1/n) H r - lam (u - u_0),        du_Z/dt = -(1/n) H_ZX r - lam (u_Z - u_0,Z).

Squared loss: with H = V diag(h) V^T and phi_k(t) = (1 - exp(-(h_k + n lam) t / n)) / (h_k + n lam)
(t / n where h_k + n lam = 0; 1 / (h_k + n lam) at t = inf),

    u(t) = u_0 + V diag(h phi) V^T (y - u_0),    u_Z(t) = u_0,Z + H_ZX V diag(phi) V^T (y - u_0):

one eigendecomposition serves every time; at t = inf with lam > 0 this is kernel ridge regression
with ridge n lam, and without a ridge kernel regression (interpolation where H is well
conditioned; its pseudo-inverse, with a warning, where it is numerically singular). Logistic
loss: the n-vector g(t) = int_0^t exp(-lam (t - s)) r(s) ds obeys dg/dt = r(u_0 - H g / n) - lam g
and u_Z = u_0,Z - H_ZX g / n; it is integrated adaptively (``solve_ivp``, DOP853, rtol
ODE_RTOL) at the finite times asked.

Ensembles (Lee et al. 2019): over random initialisations the initial outputs are a centred
Gaussian process with the prior kernel P (the NNGP), and u_Z(t) = f_0(Z) + T (y - f_0(X)) with
T = H_ZX V diag(phi) V^T is linear in f_0: mean T y and covariance
P_ZZ - T P_XZ - P_ZX T^T + T P_XX T^T. With only the output layer trained H = P (lazy scaling),
and at t = inf this is the Gaussian-process posterior. Rounding can make a variance (or a
covariance's eigenvalue) slightly negative: it is clipped to 0 and the largest clip reported,
relative to the prior variance, in ``Prediction.clipped``.

Kernels: a config (``limit_kernels.LimitKernel``: any registered activation, two-layer or deep),
an activation's name (a two-layer lazy network with both layers trained, standard Gaussian
initialisation) or ``Matrices`` the user computed. Test points go in blocks of rows (memory
block x n, never n_test x n at once beyond the output); ``plan`` sizes the work before it starts.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import ConfigError
from ..model import activations
from ..model.limit_kernels import LimitKernel

ODE_RTOL = 1e-10            # the logistic kernel ODE's relative tolerance (absolute: ODE_RTOL * 1e-2)
BLOCK_BYTES = 64 * 2**20    # memory of one block of test rows' kernels and intermediates
BLOCK_ARRAYS = 16           # (block, n) arrays alive at once while a block's kernels are computed (measured: 15)
LONG_SECONDS = 60.0         # a prediction whose kernels should take longer warns with its plan first
SINGULAR = 1e-12            # eigenvalues of H below this times the largest count as zero (no ridge)
KIND = "lazy_prediction"    # a saved prediction's manifest kind


class SingularKernelWarning(UserWarning):
    """The training kernel is numerically singular: t = inf predictions use its pseudo-inverse."""


@dataclass(frozen=True)
class Matrices:
    """Kernels the user computed: ``ntk`` (n, n) on the training inputs and ``ntk_test`` (n_test, n);
    for ensembles the prior on the same blocks, ``prior`` (n, n), ``prior_test`` (n_test, n), and
    ``prior_diag`` (n_test,) or ``prior_test_test`` (n_test, n_test)."""

    ntk: np.ndarray
    ntk_test: np.ndarray
    prior: np.ndarray | None = None
    prior_test: np.ndarray | None = None
    prior_diag: np.ndarray | None = None
    prior_test_test: np.ndarray | None = None
    error: float = 0.0


@dataclass
class Prediction:
    """Predictions at record times ``t`` (T,): ``train`` (T, n), ``test`` (T, n_test); for ensembles
    the mean (``test``) and ``variance`` (T, n_test) over initialisations, and ``covariance`` (T, n_test,
    n_test) when asked. ``condition``: (h_max + n lam) / (h_min + n lam) of the training kernel
    (inf when singular); ``clipped``: the largest negative eigenvalue of H and the largest negative
    variance set to 0, relative to their scale; ``kernel_error``: the kernels' estimated relative
    quadrature error (0 when exact)."""

    t: np.ndarray
    train: np.ndarray
    test: np.ndarray
    variance: np.ndarray | None
    covariance: np.ndarray | None
    condition: float
    clipped: float
    kernel_error: float
    lam: float
    loss: str
    kernel: str
    config: Config | None = field(default=None, repr=False)

    def describe(self) -> str:
        what = "ensemble mean and variance" if self.variance is not None else "predictions"
        times = f"{len(self.t)} time" + ("s" if len(self.t) != 1 else "")
        line = (f"lazy-limit {what} ({self.kernel}, {self.loss} loss, lam = {self.lam:g}) at {times}, "
                f"{self.train.shape[1]} training and {self.test.shape[1]} test points; condition number of H "
                f"{self.condition:.3g}")
        if self.kernel_error:
            line += f"; kernels by quadrature, estimated relative error {self.kernel_error:.1g}"
        return line + (f"; negative eigenvalues or variances clipped, up to {self.clipped:.1g} of their scale"
                       if self.clipped else "")

    def save(self, path) -> Path:
        """Write into the folder ``path``: arrays.npz, config.toml (if any), observables.csv (t, the
        test predictions' mean and, for ensembles, their mean variance) and a sealed manifest.json."""
        from ..store import results

        arrays = {"t": self.t, "train": self.train, "test": self.test}
        arrays.update({k: v for k, v in (("variance", self.variance), ("covariance", self.covariance))
                       if v is not None})
        columns = [self.t, self.test.mean(axis=1)] + ([self.variance.mean(axis=1)] if self.variance is not None else [])
        header = "t,mean_test_prediction" + (",mean_test_variance" if self.variance is not None else "")
        return results.save_sealed(path, KIND, arrays, self.config, (header, columns), condition=self.condition,
                                   clipped=self.clipped, kernel_error=self.kernel_error, lam=self.lam, loss=self.loss,
                                   kernel=self.kernel)

    @classmethod
    def load(cls, path) -> "Prediction":
        """Read a folder written by :meth:`save`; CorruptedResultError on any damage or edit."""
        from ..store import files, results

        manifest, config, arrays = results.load_sealed(path, KIND, "a saved lazy-limit prediction",
                                                       ("t", "train", "test"))
        get = lambda key: files.field(manifest, key, Path(path) / results.MANIFEST)
        return cls(arrays["t"], arrays["train"], arrays["test"], arrays.get("variance"), arrays.get("covariance"),
                   get("condition"), get("clipped"), get("kernel_error"), get("lam"), get("loss"), get("kernel"),
                   config)


# --- the kernels' blocks -----------------------------------------------------------------------

class _Blocks:
    """The kernels as predict reads them: ``train()`` -> (P_XX, H_XX); ``test(rows, full)`` ->
    (P_ZX, H_ZX, P_ZZ's diagonal or block) for a slice of test rows."""

    def __init__(self, kernel, X, Z):
        self.kernel, self.X, self.Z = kernel, X, Z
        self.matrices = isinstance(kernel, Matrices)
        self.n = len(kernel.ntk) if self.matrices else len(X)
        self.n_test = len(kernel.ntk_test) if self.matrices else len(Z)

    @property
    def error(self) -> float:
        return self.kernel.error

    def has_prior(self, full: bool) -> bool:
        """Whether user Matrices carry what an ensemble (``full``: a covariance) needs."""
        k = self.kernel
        own = k.prior_test_test is not None or (not full and k.prior_diag is not None)
        return k.prior is not None and (k.prior_test is not None or not self.n_test) and (own or not self.n_test)

    def train(self):
        if self.matrices:
            return self.kernel.prior, self.kernel.ntk
        return self.kernel.pair(self.X)

    def test(self, rows: slice, full: bool):
        k = self.kernel
        if self.matrices:
            if full:
                own = k.prior_test_test[rows, rows]
            elif k.prior_diag is not None:
                own = k.prior_diag[rows]
            else:
                own = None if k.prior_test_test is None else np.diag(k.prior_test_test)[rows]
            return (None if k.prior_test is None else k.prior_test[rows]), k.ntk_test[rows], own
        prior, H = k.pair(self.Z[rows], self.X)
        own = k.pair(self.Z[rows])[0] if full else k.diagonal(self.Z[rows])[0]
        return prior, H, own


def _kernel(kernel, X):
    """A LimitKernel or Matrices from what predict was given, and a one-word description."""
    if isinstance(kernel, Matrices):
        return kernel, "user matrices"
    if isinstance(kernel, str):
        activations.activation(kernel)                      # ValueError naming the registered ones
        if X is None:
            raise ConfigError.invalid("X", None, "the training inputs (n, d) with kernel = an activation's name")
        kernel = Config(network={"activation": kernel, "scaling": "lazy", "d": int(np.shape(X)[1])})
    if isinstance(kernel, Config):
        kernel = LimitKernel(kernel)
    if not isinstance(kernel, LimitKernel):
        raise ConfigError.invalid("kernel", type(kernel).__name__, "a Config, an activation's name, a LimitKernel or "
                                  "lazy.Matrices")
    net = kernel.cfg.network
    depth = f"L = {net.depth} {net.architecture}" if net.depth > 1 else f"two-layer, train = {net.train}"
    return kernel, f"{net.activation} {depth}"


def _inputs(kernel, X, X_test):
    """X (n, d) and X_test (n_test, d) as float arrays (None with Matrices; no test inputs: (0, d))."""
    if isinstance(kernel, Matrices):
        return None, None
    if X is None:
        raise ConfigError.invalid("X", None, "the training inputs (n, d)")
    X = np.asarray(X, dtype=float)
    X_test = np.zeros((0, X.shape[1])) if X_test is None else np.asarray(X_test, dtype=float)
    if X.ndim != 2 or X_test.ndim != 2 or X_test.shape[1] != X.shape[1]:
        raise ConfigError.invalid("X_test.shape", X_test.shape, f"(n_test, {X.shape[1] if X.ndim == 2 else 'd'}), "
                                  "as many columns as X (n, d)")
    return X, X_test


def _times(times) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or not len(t) or np.any(np.isnan(t)) or np.any(t < 0):
        raise ConfigError.invalid("times", np.asarray(times).tolist(), "a non-empty list of times >= 0 (inf allowed)")
    return t


# --- the plan ----------------------------------------------------------------------------------

def plan(n: int, n_test: int, n_times: int, ensemble: bool = False, covariance: bool = False,
         kernel: LimitKernel | None = None, X=None, Z=None) -> dict:
    """The memory (bytes, by the size that drives each term), the block of test rows and the
    kernels' estimated CPU seconds (``LimitKernel.seconds``, with X and Z; 0 for Matrices) of a
    prediction, before any work: the training kernels and their eigenvectors (about 6 n^2
    numbers), a block of test rows (BLOCK_ARRAYS block n: the kernels' temporaries; all the rows for
    a covariance), the outputs (T n_test, twice for an ensemble) and the covariances (T n_test^2)."""
    block = n_test if covariance else max(1, min(n_test, BLOCK_BYTES // (BLOCK_ARRAYS * 8 * max(n, 1))))
    terms = {"n": 6 * n * n * 8, "block": BLOCK_ARRAYS * block * n * 8 + (block * block * 8 if covariance else 0),
             "n_test": n_times * n_test * 8 * (1 + ensemble) + n_times * n * 8,
             "covariance": n_times * n_test * n_test * 8 if covariance else 0}
    seconds, nodes = 0.0, 0
    if kernel is not None:
        (train, nodes), test = kernel.seconds(X), kernel.seconds(Z, X)[0] if n_test else 0.0
        seconds = train + test + (kernel.seconds(Z, Z)[0] if covariance else 0.0)
    return {"terms": terms, "block": block, "bytes": sum(terms.values()), "seconds": seconds, "nodes": nodes,
            "n": n, "n_test": n_test, "times": n_times}


def describe_plan(found: dict) -> str:
    """One line: the sizes, the memory and the kernels' estimated CPU time."""
    rule = f" (a quadrature of {found['nodes']} nodes per axis)" if found["nodes"] else ""
    times = f"{found['times']} time" + ("s" if found["times"] != 1 else "")
    return (f"{found['n']:,} training and {found['n_test']:,} test points, {times}: about "
            f"{found['bytes'] / 2**20:.3g} MiB, the kernels about {found['seconds']:.3g} CPU-seconds{rule} (estimated)")


def check_plan(found: dict) -> None:
    """Refuse a prediction that would not fit in memory, naming the term that dominates."""
    from ..engine.memory import available_bytes

    have = available_bytes()
    if found["bytes"] <= have:
        return
    name = max(found["terms"], key=found["terms"].get)
    advice = {"n": "fewer training points", "block": "fewer training points",
              "n_test": "fewer test points or times", "covariance": "variances only (covariance = False)"}[name]
    raise ConfigError(f"this prediction needs about {found['bytes'] / 2**30:.3g} GiB but only {have / 2**30:.3g} GiB "
                      f"are available; most of it ({found['terms'][name] / 2**30:.3g} GiB) comes from {name}: "
                      f"{advice}", parameter=name, value=found["terms"][name], allowed=f"a prediction within "
                      f"{have / 2**30:.3g} GiB")


# --- predictions -------------------------------------------------------------------------------

def _phi(h, t, n, lam):
    """phi_k(t) (T, n) of the module docstring; components with h_k + n lam = 0 give t / n, or 0 at t = inf."""
    rate = h + n * lam                                    # (n,), >= 0
    out = np.empty((len(t), len(h)))
    for i, time in enumerate(t):
        if np.isinf(time):
            with np.errstate(divide="ignore"):
                out[i] = np.where(rate > 0, 1.0 / np.where(rate > 0, rate, 1.0), 0.0)
        else:
            z = rate * time / n
            with np.errstate(divide="ignore", invalid="ignore"):
                out[i] = np.where(z > 1e-12, -np.expm1(-z) / np.where(z > 0, rate, 1.0), time / n)
    return out


def predict(kernel, y, times, X=None, X_test=None, u0=None, u0_test=None, lam: float = 0.0,
            loss: str = "squared", ensemble: bool = False, covariance: bool = False) -> Prediction:
    """The lazy limit's predictions at ``times`` (module docstring) on the training inputs X (n, d)
    with labels y (n,) and at X_test (n_test, d): ``kernel`` a Config, an activation's name or
    ``Matrices`` (then X and X_test may be None). u0, u0_test: the network's initial outputs
    (default 0, as for a symmetric or centred initialisation). ``ensemble``: the mean and variance
    over initialisations instead (squared loss; u0 must be None), ``covariance``: and the full
    covariance of the test outputs."""
    kernel, name = _kernel(kernel, X)
    if lam < 0 or not math.isfinite(lam):
        raise ConfigError.invalid("lam", lam, "a ridge >= 0")
    activations.loss(loss)
    t = _times(times)
    X, X_test = _inputs(kernel, X, X_test)
    blocks = _Blocks(kernel, X, X_test)
    y = np.asarray(y, dtype=float)
    for field_name, value, size in (("y", y, blocks.n), ("u0", u0, blocks.n), ("u0_test", u0_test, blocks.n_test)):
        if value is not None and np.shape(value) != (size,):
            raise ConfigError.invalid(f"{field_name}.shape", np.shape(value), f"({size},), one value per "
                                      f"{'test' if field_name == 'u0_test' else 'training'} input")
    ensemble = ensemble or covariance
    if ensemble and (loss != "squared" or u0 is not None or u0_test is not None):
        raise ConfigError.invalid("ensemble", True, "only with the squared loss and without u0 (the mean is over "
                                  "initialisations)")
    if ensemble and blocks.matrices and not blocks.has_prior(covariance):
        raise ConfigError.invalid("kernel", "Matrices without the prior", "Matrices with prior, prior_test and "
                                  + ("prior_test_test" if covariance else "prior_diag or prior_test_test")
                                  + " for an ensemble")
    if loss != "squared" and np.any(np.isinf(t)):
        raise ConfigError.invalid("times", t.tolist(), f"finite times with loss = {loss!r} (the outputs grow "
                                  "without bound on separable data)")
    found = plan(blocks.n, blocks.n_test, len(t), ensemble, covariance, None if blocks.matrices else kernel,
                 blocks.X, blocks.Z)
    check_plan(found)
    if found["seconds"] > LONG_SECONDS:
        warnings.warn(f"meanfield: this prediction's plan: {describe_plan(found)}; inputs of smaller norm need fewer "
                      "quadrature nodes", stacklevel=2)
    u0 = np.zeros(blocks.n) if u0 is None else np.asarray(u0, dtype=float)
    u0_test = np.zeros(blocks.n_test) if u0_test is None else np.asarray(u0_test, dtype=float)
    P, H = blocks.train()
    h, V, condition, clipped = _eigen(0.5 * (H + H.T), blocks.n, lam)
    if loss == "squared":
        outputs = _squared(blocks, P, h, V, y, t, u0, u0_test, lam, ensemble, covariance, found["block"])
    else:
        outputs = _ode(blocks, H, y, t, u0, u0_test, lam, loss, found["block"])
    train, test, variance, cov, clip = outputs
    return Prediction(t, train, test, variance, cov, condition, max(clipped, clip), blocks.error, lam, loss, name,
                      getattr(kernel, "cfg", None))


def _eigen(H, n, lam):
    """(h, V, condition, clipped): H's eigenvalues with rounding's negative ones set to 0 (``clipped``:
    the largest, relative to the top one) and, without a ridge, those below SINGULAR of the top."""
    h, V = np.linalg.eigh(H)
    top = max(float(h[-1]), 1e-300)
    clipped = max(0.0, -float(h[0])) / top
    h = np.clip(h, 0.0, None)
    if lam > 0:
        return h, V, (top + n * lam) / (float(h[0]) + n * lam), clipped
    h = np.where(h > SINGULAR * top, h, 0.0)
    if h[0] == 0.0:
        warnings.warn(f"the training kernel is numerically singular (smallest eigenvalue below {SINGULAR:g} of the "
                      "largest; duplicated inputs?): t = inf uses its pseudo-inverse; a ridge lam > 0 gives kernel "
                      "ridge regression", SingularKernelWarning, stacklevel=4)
        return h, V, math.inf, clipped
    return h, V, top / float(h[0]), clipped


def _squared(blocks, P, h, V, y, t, u0, u0_test, lam, ensemble, full, block):
    """(train, test, variance, covariance, clipped) of the squared loss by the eigenbasis (module docstring)."""
    phi = _phi(h, t, blocks.n, lam)                                   # (T, n)
    target = V.T @ (y - u0)                                           # (n,); u0 = 0 for an ensemble
    train = u0 + (phi * h * target) @ V.T
    test = np.empty((len(t), blocks.n_test))
    variance = np.empty((len(t), blocks.n_test)) if ensemble else None
    cov = np.empty((len(t), blocks.n_test, blocks.n_test)) if full else None
    M = V.T @ P @ V if ensemble else None
    worst = 0.0
    for lo in range(0, blocks.n_test, block):
        rows = slice(lo, min(lo + block, blocks.n_test))
        P_zx, H_zx, own = blocks.test(rows, full)
        A = H_zx @ V                                                  # (b, n)
        test[:, rows] = u0_test[rows] + (phi * target) @ A.T
        if not ensemble:
            continue
        C = P_zx @ V
        for i in range(len(t)):
            Aphi = A * phi[i]
            if full:                                                  # one block holds every row
                values, vectors = np.linalg.eigh(own - Aphi @ C.T - C @ Aphi.T + (Aphi @ M) @ Aphi.T)
                worst = max(worst, max(0.0, -float(values[0])) / max(float(np.max(np.diag(own))), 1e-300))
                cov[i] = (vectors * np.clip(values, 0.0, None)) @ vectors.T
                variance[i] = np.diag(cov[i])
                continue
            var = own - 2 * np.sum(Aphi * C, axis=1) + np.sum((Aphi @ M) * Aphi, axis=1)
            worst = max(worst, float(np.max(np.clip(-var, 0.0, None) / np.maximum(own, 1e-300))))
            variance[i, rows] = np.clip(var, 0.0, None)
    return train, test, variance, cov, worst


def _ode(blocks, H, y, t, u0, u0_test, lam, loss, block):
    """(train, test, None, None, 0) of any loss: g' = r(u_0 - H g / n) - lam g, integrated adaptively."""
    from scipy.integrate import solve_ivp

    from ..errors import MeanfieldError

    n = blocks.n
    derivative = activations.loss(loss).derivative
    G = np.zeros((len(t), n))
    if np.max(t) > 0:
        order = np.argsort(t)
        found = solve_ivp(lambda s, g: derivative(u0 - H @ g / n, y) - lam * g, (0.0, float(np.max(t))), np.zeros(n),
                          method="DOP853", t_eval=t[order], rtol=ODE_RTOL, atol=ODE_RTOL * 1e-2)
        if not found.success:
            raise MeanfieldError(f"the {loss} kernel ODE failed: {found.message}")
        G[order] = found.y.T
    test = np.empty((len(t), blocks.n_test))
    for lo in range(0, blocks.n_test, block):
        rows = slice(lo, min(lo + block, blocks.n_test))
        test[:, rows] = u0_test[rows] - G @ blocks.test(rows, False)[1].T / n
    return u0 - G @ H / n, test, None, None, 0.0
