"""Synthetic data, teacher networks, and validation of the user's own arrays.

Shapes: X (n, d) with d the network's input dimension (the constant bias column included when
``network.bias``); y (n,); a teacher is (m0, d + 1) = [u | c] with f*(x) = sum_j c_j sigma*(u_j . x).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..errors import DataError
from .twolayer import activation


@dataclass(frozen=True)
class Dataset:
    """Training and test samples, and the teacher that labelled them (None if none did)."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    teacher: np.ndarray | None = None


def sample_inputs(count: int, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """x ~ N(0, I) or uniform on the unit sphere, plus the constant 1 column if ``bias``; (count, d)."""
    d_raw = cfg.network.d - cfg.network.bias
    X = rng.standard_normal((count, d_raw))
    if cfg.data.inputs == "sphere":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    if cfg.network.bias:
        X = np.hstack([X, np.ones((count, 1))])
    return X


def make_teacher(cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """Teacher particles [u | c], (m0, d + 1): ``data.teacher_weights`` if given, else u uniform on
    the unit sphere (or a random orthonormal family if ``teacher_orthonormal``), c = ±teacher_scale."""
    if cfg.data.teacher_weights:
        return np.array(cfg.data.teacher_weights, dtype=np.float64)
    m0, d = cfg.data.teacher_m0, cfg.network.d
    u = rng.standard_normal((m0, d))
    if cfg.data.teacher_orthonormal:
        q, r = np.linalg.qr(u.T)                    # (d, m0), orthonormal columns
        u = (q * np.sign(np.diag(r))).T
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    c = np.full(m0, cfg.data.teacher_scale)
    if cfg.data.teacher_signs == "rademacher":
        c *= rng.choice([-1.0, 1.0], size=m0)
    return np.hstack([u, c[:, None]])


def teacher_labels(teacher: np.ndarray, X: np.ndarray, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """y = sum_j c_j sigma*(u_j . x) + label_noise * N(0, 1), shape (n,)."""
    d = X.shape[1]
    y = activation(cfg.data.teacher_activation, X @ teacher[:, :d].T, cfg.teacher_params) @ teacher[:, d]
    if cfg.data.label_noise > 0:
        y = y + cfg.data.label_noise * rng.standard_normal(len(y))
    return y


def make_data(cfg: Config, rng: np.random.Generator, arrays=None) -> Dataset:
    """The run's data: generated from ``cfg.data`` or, with ``arrays=(X, y)``, the user's own."""
    if arrays is not None:
        return split_arrays(validate_arrays(arrays, cfg), cfg, rng)
    d = cfg.network.d
    if cfg.data.kind in ("none", "population"):
        empty = np.zeros((0, d))
        teacher = make_teacher(cfg, rng) if cfg.data.kind == "population" else None
        return Dataset(empty, np.zeros(0), empty, np.zeros(0), teacher)
    if cfg.data.kind == "arrays":
        raise DataError("data.kind = 'arrays' needs the arrays: call simulate(cfg, data=(X, y))",
                        parameter="data", value=None, allowed="a pair (X, y) of arrays")
    n, n_test = cfg.data.n, cfg.data.n_test
    if cfg.data.kind == "isotropic_gaussians":
        X, y = draw(cfg, None, n + n_test, rng)
        return Dataset(X[:n], y[:n], X[n:], y[n:])
    X = sample_inputs(n + n_test, cfg, rng)
    if cfg.data.kind == "teacher":
        teacher = make_teacher(cfg, rng)
        y = teacher_labels(teacher, X, cfg, rng)
    else:  # random_labels
        teacher = None
        y = rng.choice([-1.0, 1.0], size=n + n_test)
    return Dataset(X[:n], y[:n], X[n:], y[n:], teacher)


def draw(cfg: Config, teacher, count: int, rng: np.random.Generator):
    """``count`` fresh samples (X, y) from the data law (teacher or isotropic Gaussians): online SGD."""
    if cfg.data.kind == "isotropic_gaussians":
        y = rng.choice([-1.0, 1.0], size=count)
        X = sample_inputs(count, cfg, rng) * (1.0 + cfg.data.delta * y)[:, None]
        return X, y
    X = sample_inputs(count, cfg, rng)
    return X, teacher_labels(teacher, X, cfg, rng)


def split_arrays(arrays, cfg: Config, rng: np.random.Generator) -> Dataset:
    """Split validated arrays (X, y) at random into train and test by ``data.test_fraction``."""
    X, y = arrays
    n_test = int(round(cfg.data.test_fraction * len(y)))
    order = rng.permutation(len(y))
    test, train = order[:n_test], order[n_test:]
    if len(train) == 0:
        raise DataError.invalid("data.test_fraction", cfg.data.test_fraction,
                                "a fraction that leaves at least one training sample")
    return Dataset(X[train], y[train], X[test], y[test])


def validate_arrays(arrays, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Check the user's (X, y) and return C-contiguous float64 copies (bias column appended).

    X must be (n, d) with d = network.d, or (n, d - 1) when ``network.bias`` (the constant
    column is then appended); y (n,) or (n, 1); both finite, numeric, non-empty, not masked.
    """
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 2:
        hint = "pass data=(X, y)" + (f", not a {type(arrays).__name__}" if not isinstance(arrays,
                                                                                          (tuple, list)) else "")
        raise DataError.invalid("data", type(arrays).__name__, "a pair (X, y) of arrays", hint)
    X, y = (_plain_array(name, value, ndim) for name, value, ndim in (("X", arrays[0], 2), ("y", arrays[1], 1)))
    if len(X) != len(y):
        raise DataError.invalid("y.shape", y.shape, f"({len(X)},), one label per row of X")
    return _with_bias(X, cfg), y


def data_inputs(X, cfg: Config) -> np.ndarray:
    """Check inputs to predict on like training inputs: X (n, d), or (n, d - 1) with the bias column
    appended when ``network.bias``; a C-contiguous float64 copy."""
    return _with_bias(_plain_array("X", X, 2), cfg)


def _plain_array(name: str, value, ndim: int) -> np.ndarray:
    """A finite, numeric, non-empty, unmasked array of ``ndim`` dimensions (a column of labels is
    flattened), as a C-contiguous float64 copy; DataError naming ``name`` otherwise."""
    if isinstance(value, np.ma.MaskedArray):
        raise DataError.invalid(name, "a masked array", "a plain array (drop or fill the masked entries "
                                "first: masks would be ignored)")
    try:
        value = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise DataError.invalid(name, "unconvertible input", "a numeric array", str(exc)) from None
    if value.dtype.kind not in "biuf":
        raise DataError.invalid(f"{name}.dtype", str(value.dtype), "a real numeric dtype")
    if name == "y" and value.ndim == 2 and value.shape[1:] == (1,):
        value = value[:, 0]                                  # a column of labels
    if value.ndim != ndim:
        raise DataError.invalid(f"{name}.shape", value.shape, f"an array with {ndim} dimensions")
    if value.size == 0:
        raise DataError.invalid(f"{name}.shape", value.shape, "a non-empty array")
    value = np.ascontiguousarray(value, dtype=np.float64)
    if not np.all(np.isfinite(value)):
        bad = np.argwhere(~np.isfinite(value))[0]
        raise DataError.invalid(f"{name}[{', '.join(map(str, bad))}]", float(value[tuple(bad)]),
                                "finite values only")
    return value


def _with_bias(X: np.ndarray, cfg: Config) -> np.ndarray:
    d_raw = cfg.network.d - cfg.network.bias
    if X.shape[1] != d_raw:
        what = (f"network.d - 1 = {d_raw} columns (bias appended)" if cfg.network.bias
                else f"network.d = {d_raw} columns")
        raise DataError.invalid("X.shape", X.shape, f"an array with {what}")
    return np.hstack([X, np.ones((len(X), 1))]) if cfg.network.bias else X


def check_start(risk: float, arrays: dict):
    """Refuse a run whose training risk at t = 0 is not finite. Its inputs, labels and initial
    parameters (``arrays``, name -> array) are finite (validated), so the network's output
    overflowed float64: a too-large dt is not to blame. DataError names the largest of them."""
    if np.isfinite(risk):
        return
    sizes = {name: float(np.max(np.abs(a))) if a.size else 0.0 for name, a in arrays.items()}
    name = max(sizes, key=sizes.get)
    largest = ", ".join(f"|{key}| = {value:.3g}" for key, value in sizes.items())
    raise DataError(f"the training risk at t = 0 is {risk}: the network's output overflows float64 (largest "
                    f"{largest}); rescale {name}", parameter=name, value=sizes[name],
                    allowed="values whose products and squares stay finite")
