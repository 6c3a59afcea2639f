"""Run configuration: frozen dataclasses validated on construction; TOML in, JSON out.

A ``Config`` has a ``seed`` and five sections (``network``, ``init``, ``data``, ``flow``,
``record``). Every invalid value raises :class:`~meanfield.errors.ConfigError` naming the field,
the value and what is allowed; an unknown key suggests the closest valid one.
"""
from __future__ import annotations

import difflib
import math
import numbers
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import rules
from .errors import ConfigError
from .model import activations, energy, integrators, parameterizations
from .model.diagnostics import DIAGNOSTICS
from .model.scaling import SCALINGS

ACTIVATIONS = tuple(activations.ACTIVATIONS)          # the registries' names, for validation
LOSSES = tuple(activations.LOSSES)
TRAIN_MODES = ("both", "hidden", "output")
ARCHITECTURES = parameterizations.ARCHITECTURES
PARAMETERIZATIONS = tuple(parameterizations.PARAMETERIZATIONS)
W_LAWS = ("gaussian", "sphere")
A_LAWS = ("gaussian", "rademacher", "zero", "balanced", "constant")
DATA_KINDS = ("teacher", "population", "isotropic_gaussians", "random_labels", "none", "arrays")
SAMPLED_KINDS = rules.SAMPLED_KINDS
INPUT_LAWS = ("gaussian", "sphere")
TEACHER_SIGNS = ("positive", "rademacher")
INTEGRATORS = tuple(integrators.INTEGRATORS)

POTENTIALS = tuple(energy.POTENTIALS)
INTERACTIONS = tuple(energy.INTERACTIONS)
ENGINES = ("auto", "fused", "blas")
DTYPES = ("float64", "float32")
SPACINGS = ("geometric", "linear")
SCHEDULES = ("constant", "log", "power", "piecewise")


# --- field checks: each raises ConfigError.invalid(name, value, allowed) ---------------------

def _int(name, value, low=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError.invalid(name, value, "an integer" + (f" >= {low}" if low is not None else ""))
    if low is not None and value < low:
        raise ConfigError.invalid(name, value, f"an integer >= {low}")
    return int(value)


def _float(name, value, low=None, strict=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError.invalid(name, value, "a real number")
    value = float(value)
    bound = "" if low is None else (f" > {low}" if strict else f" >= {low}")
    if not math.isfinite(value):
        raise ConfigError.invalid(name, value, "a finite real number" + bound)
    if low is not None and (value < low or (strict and value == low)):
        raise ConfigError.invalid(name, value, "a finite real number" + bound)
    return value


def _bool(name, value):
    if not isinstance(value, bool):
        raise ConfigError.invalid(name, value, "true or false")
    return value


def _floats(name, value):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError.invalid(name, value, "a list of real numbers")
    return tuple(_float(f"{name}[{k}]", v) for k, v in enumerate(value))


def _pair_of_floats(name, value):
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError.invalid(name, value, "a list of two real numbers")
    return tuple(_float(f"{name}[{k}]", v) for k, v in enumerate(value))


def _matrix(name, value):
    """A list of equally long lists of finite reals (a matrix, row by row), as a tuple of tuples."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError.invalid(name, value, "a list of rows, each a list of real numbers")
    rows = tuple(_floats(f"{name}[{k}]", row) for k, row in enumerate(value))
    if len({len(row) for row in rows}) > 1:
        raise ConfigError.invalid(name, [list(r) for r in rows], "rows of equal length")
    return rows


def _choices(name, value, choices):
    """A list of distinct names from ``choices``, stored as a tuple."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError.invalid(name, value, "a list of names from " + ", ".join(map(repr, choices)))
    for k, item in enumerate(value):
        _choice(f"{name}[{k}]", item, choices)
    if len(set(value)) != len(value):
        raise ConfigError.invalid(name, value, "a list without repeated names")
    return tuple(value)


def _choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        raise ConfigError.invalid(name, value, "one of " + ", ".join(repr(c) for c in choices), hint)
    return value


def _unknown_key(key, prefix: str, names) -> ConfigError:
    """An unknown key, with the closest valid one: a key of another section is named with its
    section (``dt`` -> ``flow.dt``), else the closest name in this table."""
    tables = {**_SECTIONS, "flow.potential": PotentialConfig, "flow.interaction": InteractionConfig}
    elsewhere = [f"{section}.{key}" for section, cls in tables.items() if key in cls.__dataclass_fields__
                 and section != prefix]
    close = elsewhere or [f"{prefix}.{c}" if prefix else c for c in difflib.get_close_matches(str(key), names, n=1)]
    if not close and not prefix:
        every = [f"{s}.{f}" for s, cls in _SECTIONS.items() for f in cls.__dataclass_fields__]
        close = difflib.get_close_matches(str(key), every, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    name = f"{prefix}.{key}" if prefix else str(key)
    return ConfigError(f"unknown key {name!r}{hint} Valid keys{' of ' + prefix if prefix else ''}: {', '.join(names)}",
                       parameter=name, value=key, allowed=", ".join(names))


def _strict(cls):
    """Make ``cls(unknown=...)`` a ConfigError with a did-you-mean, not a TypeError."""
    init = cls.__init__

    def __init__(self, *args, **kwargs):
        names = list(cls.__dataclass_fields__)
        for key in kwargs:
            if key not in names:
                raise _unknown_key(key, getattr(cls, "_name", ""), names)
        init(self, *args, **kwargs)

    __init__.__doc__, __init__.__wrapped__ = init.__doc__, init
    cls.__init__ = __init__
    return cls


def _field(default, check, *args, factory: bool = False):
    """A section's field, declared once with its check: ``check(name, value, *args)`` runs on
    construction and returns the stored value (``factory``: the default is a class to call)."""
    return field(**({"default_factory": default} if factory else {"default": default}),
                 metadata={"check": (check, args)})


class _Section:
    """Shared behaviour of the config sections: each field's check (``_field``), then the section's
    cross-field rules (``rules.SECTIONS``), and strict construction from dicts."""

    _name = ""

    def __post_init__(self):
        for f in fields(self):
            check, args = f.metadata["check"]
            object.__setattr__(self, f.name, check(f"{self._name}.{f.name}", getattr(self, f.name), *args))
        rules.refuse(rules.section_subject(self), rules.SECTIONS.get(self._name, ()))

    @classmethod
    def from_dict(cls, values: dict, prefix: str | None = None):
        prefix = cls._name if prefix is None else prefix
        if not isinstance(values, dict):
            raise ConfigError.invalid(prefix, values, f"a table of {prefix} settings")
        names = [f.name for f in fields(cls)]
        for key in values:
            if key not in names:
                raise _unknown_key(key, prefix, names)
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain values: lists for tuples, dicts for nested tables."""
        def plain(value):
            if isinstance(value, _Section):
                return value.to_dict()
            return [plain(v) for v in value] if isinstance(value, tuple) else value

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


@_strict
@dataclass(frozen=True)
class NetworkConfig(_Section):
    """The two-layer network f(x) = alpha s(m) sum_i a_i sigma(w_i . x) (minus f_0 if centered).

    ``d`` counts every input coordinate, the constant one of ``bias`` included. ``linearized``
    trains the tangent model f(x; theta0) + grad f(x; theta0) . (theta - theta0) instead.
    ``piecewise_linear`` is s1 below t1, s2 above t2 and linear between: pwl_knots = (t1, t2),
    pwl_values = (s1, s2) (Mei, Montanari & Nguyen's bounded activation).

    ``depth`` >= 2 hidden layers of width m make a deep network (``deep.py``): ``architecture``
    "mlp" or "resnet" (Du et al.'s x^(l) = x^(l-1) + c_res / (L sqrt(m)) sigma(W_l x^(l-1))),
    ``parameterization`` "ntk", "mup" or "standard"; it replaces ``scaling`` and ``alpha``.
    """

    _name = "network"
    m: int = _field(100, _int, 1)
    d: int = _field(2, _int, 1)
    activation: str = _field("relu", _choice, ACTIVATIONS)
    scaling: str = _field("mean_field", _choice, SCALINGS)
    alpha: float = _field(1.0, _float, 0.0, True)
    centered: bool = _field(False, _bool)
    bias: bool = _field(False, _bool)
    train: str = _field("both", _choice, TRAIN_MODES)
    leaky_slope: float = _field(0.01, _float)
    pwl_knots: tuple = _field((0.5, 1.5), _pair_of_floats)
    pwl_values: tuple = _field((-2.5, 7.5), _pair_of_floats)
    linearized: bool = _field(False, _bool)
    depth: int = _field(1, _int, 1)
    architecture: str = _field("mlp", _choice, ARCHITECTURES)
    parameterization: str = _field("ntk", _choice, PARAMETERIZATIONS)
    c_res: float = _field(1.0, _float, 0.0, True)

    @property
    def activation_params(self):
        """The activation's parameters as the kernels take them: [leaky_slope, t1, t2, s1, s2]."""
        import numpy as np

        return np.array([self.leaky_slope, *self.pwl_knots, *self.pwl_values], dtype=np.float64)


@_strict
@dataclass(frozen=True)
class InitConfig(_Section):
    """Initial law of the particles, before the overall scale ``tau``.

    w ~ N(0, w_scale^2 I) or uniform on the sphere of radius w_scale; a ~ N(0, a_scale^2),
    ±a_scale, 0, balanced (|a| = |w|, random sign) or constant (a = a_scale). ``symmetric`` draws m/2 particles and adds
    their mirrors (w, -a), so that the initial predictor is exactly 0.
    """

    _name = "init"
    w_law: str = _field("gaussian", _choice, W_LAWS)
    w_scale: float = _field(1.0, _float, 0.0)
    a_law: str = _field("gaussian", _choice, A_LAWS)
    a_scale: float = _field(1.0, _float, 0.0)
    tau: float = _field(1.0, _float, 0.0)
    symmetric: bool = _field(False, _bool)

@_strict
@dataclass(frozen=True)
class DataConfig(_Section):
    """Where (x, y) come from.

    ``teacher``: y = sum_j c_j sigma*(u_j . x) + noise, u_j uniform on the unit sphere,
    c_j = teacher_scale (or ±teacher_scale), the u_j orthonormal if ``teacher_orthonormal``, or
    the user's ``teacher_weights``, rows [u_j | c_j] of length network.d + 1 (teacher_m0 rows);
    ``population``: the same teacher with x ~ N(0, I) (or uniform on the sphere, for activations
    homogeneous of one degree) and the exact population risk E[(f - f*)^2] / 2 (no samples, see
    ``population.py``);
    ``isotropic_gaussians``: y = ±1 with x ~ N(0, (1 + y delta)^2 I) (Mei, Montanari & Nguyen);
    ``random_labels``: y = ±1 at random; ``none``: no data
    (zero risk: a pure potential + noise flow); ``arrays``: the user's (X, y), passed to
    ``simulate``, split with ``test_fraction``. Inputs are N(0, I) or uniform on the unit sphere.
    """

    _name = "data"
    kind: str = _field("teacher", _choice, DATA_KINDS)
    n: int = _field(100, _int, 1)
    n_test: int = _field(0, _int, 0)
    inputs: str = _field("gaussian", _choice, INPUT_LAWS)
    teacher_m0: int = _field(3, _int, 1)
    teacher_activation: str = _field("relu", _choice, ACTIVATIONS)
    teacher_leaky_slope: float = _field(0.01, _float)
    teacher_scale: float = _field(1.0, _float)
    teacher_signs: str = _field("positive", _choice, TEACHER_SIGNS)
    teacher_orthonormal: bool = _field(False, _bool)
    teacher_weights: tuple = _field((), _matrix)
    label_noise: float = _field(0.0, _float, 0.0)
    delta: float = _field(0.5, _float, 0.0)
    test_fraction: float = _field(0.0, _float, 0.0)

def _table(name, value, cls):
    """A nested table (``[flow.potential]``) given as a dict or a section object."""
    if isinstance(value, dict):
        return cls.from_dict(value, name)
    if not isinstance(value, cls):
        raise ConfigError.invalid(name, value, f"a table of {name} settings")
    return value


@_strict
@dataclass(frozen=True)
class PotentialConfig(_Section):
    """``[flow.potential]``: an external potential V besides weight decay (see ``energy.py``).

    ``kind``: "none", "quadratic" (V = theta . A theta / 2 with ``matrix`` A, (d + 1) x (d + 1),
    symmetric), "quartic" (V = strength |theta|^4 / 4) or "double_well" (V = depth sum_k
    ((theta_k / center)^2 - 1)^2)."""

    _name = "flow.potential"
    kind: str = _field("none", _choice, POTENTIALS)
    matrix: tuple = _field((), _matrix)
    strength: float = _field(1.0, _float)
    depth: float = _field(1.0, _float)
    center: float = _field(1.0, _float, 0.0, True)

@_strict
@dataclass(frozen=True)
class InteractionConfig(_Section):
    """``[flow.interaction]``: a pair interaction W with (1/2) double integral W dmu dmu in the
    energy (see ``energy.py``). ``kind``: "none", "inner" (W = -strength theta . theta'),
    "quadratic" (W = strength |theta - theta'|^2 / 2) or "gaussian" (W = strength
    exp(-|theta - theta'|^2 / (2 bandwidth^2)))."""

    _name = "flow.interaction"
    kind: str = _field("none", _choice, INTERACTIONS)
    strength: float = _field(1.0, _float)
    bandwidth: float = _field(1.0, _float, 0.0, True)

@_strict
@dataclass(frozen=True)
class FlowConfig(_Section):
    """The dynamics: loss, time step and horizon, weight decay ``lam``, Langevin ``temperature``.

    ``schedule``: the temperature at time t is ``temperature`` (constant), temperature / log(e + t)
    (log), temperature / (1 + t)^schedule_power (power), or piecewise constant: schedule_values[k]
    from schedule_times[k - 1] on (schedule_values has one more entry than schedule_times).

    ``integrator``: "euler" (Euler–Maruyama with noise), "heun" (stochastic Heun with noise),
    "rk4" (deterministic flows only), see ``model/integrators.py``, or an embedded pair
    (deterministic flows only): "dopri5" (Dormand–Prince 5(4), alias "adaptive"), "bs3"
    (Bogacki–Shampine 3(2)) or "tsit5" (Tsitouras 5(4)), with the step chosen to keep the error
    within ``rtol`` / ``atol`` (``engine/adaptive.py``); ``dt`` is then its first trial step, and the
    records are at the same times; ``dt_floor`` > 0: steps never shorter, taken even above the
    tolerance (for ReLU on samples, whose drift jumps where a sample crosses a neuron's hyperplane;
    ``Result.stats["forced_steps"]``). ``potential`` and ``interaction``: the energy terms
    ``[flow.potential]`` and ``[flow.interaction]`` (``model/energy.py``).

    ``batch_size = 0`` is full-batch gradient descent; ``batch_size = B`` samples B training points
    per step (SGD); ``online`` draws B fresh samples from the data law each step. ``threads = 0``
    ("auto", ``meanfield.engine.threads``) uses one thread for small steps or on a busy machine and
    every core otherwise; ``threads = k`` uses k. Results are the same bits for every count.
    ``engine``: "fused" (one compiled loop over steps, never forms the batch x m matrix), "blas"
    (one compiled call per step, BLAS products on blocks of neurons into preallocated buffers), or
    "auto" (blas when d > 3 and the batch x m matrix has at least 20 000 entries: measured
    crossovers, ``problem.FUSED_MAX_D`` and ``BLAS_MIN_ENTRIES``). ``dtype``: the particles' and
    the training data's floating type in the steps, "float64" (the reference) or "float32" (two-layer
    networks on samples, fused and BLAS paths: about twice as fast at large d, half the memory; the
    training data and theta0 are rounded to float32 once, and every recorded quantity is computed in
    float64 from the float32 particles).
    """

    _name = "flow"
    loss: str = _field("squared", _choice, LOSSES)
    dt: float = _field(0.01, _float, 0.0, True)
    t_end: float = _field(1.0, _float, 0.0, True)
    lam: float = _field(0.0, _float, 0.0)
    temperature: float = _field(0.0, _float, 0.0)
    schedule: str = _field("constant", _choice, SCHEDULES)
    schedule_power: float = _field(1.0, _float, 0.0, True)
    schedule_times: tuple = _field((), _floats)
    schedule_values: tuple = _field((), _floats)
    batch_size: int = _field(0, _int, 0)
    online: bool = _field(False, _bool)
    integrator: str = _field("euler", _choice, INTEGRATORS)
    rtol: float = _field(1e-6, _float, 0.0, True)
    atol: float = _field(1e-9, _float, 0.0)
    dt_floor: float = _field(0.0, _float, 0.0)
    threads: int = _field(0, _int, 0)
    engine: str = _field("auto", _choice, ENGINES)
    dtype: str = _field("float64", _choice, DTYPES)
    potential: PotentialConfig = _field(PotentialConfig, _table, PotentialConfig, factory=True)
    interaction: InteractionConfig = _field(InteractionConfig, _table, InteractionConfig, factory=True)

    @property
    def max_temperature(self) -> float:
        """The largest temperature of the schedule (the noise is off when it is 0)."""
        return max(self.schedule_values) if self.schedule == "piecewise" else self.temperature

    @property
    def n_steps(self) -> int:
        """Number of steps K, with t_k = k dt and t_K = K dt the final time."""
        return int(round(self.t_end / self.dt))


@_strict
@dataclass(frozen=True)
class RecordConfig(_Section):
    """What is recorded: ``n_records`` times spaced geometrically or linearly in [0, t_end] (1: the
    final state only).

    A run diverges when the particles become non-finite or the training risk exceeds
    ``divergence_factor * max(1, initial risk)``. ``diagnostics`` adds the lazy-regime
    observables (see ``observables.py``): lambda_min, lambda_max, kernel_change, pattern_flips, tangent_gap,
    the mean-field masses (total, negative, within ``cone_angle`` degrees of a teacher neuron), and
    the Langevin ones: free_energy (with the entropy) and gibbs (T KL(mu || p_mu)), and for ±1
    labels the margins (minimum and normalised margin, training and test error rates).
    A run given a checkpoint folder saves its progress at the first record, then at a record
    time once ``checkpoint_seconds`` have passed since the last save (0: at every record), and
    on Ctrl-C, SIGTERM or divergence. ``stop_below`` > 0 ends a run at the first record where its
    training risk is at most ``stop_below`` times the initial one (a stopping rule: the risk "at
    convergence"); its status is then "converged" and its last record is that time.
    """

    _name = "record"
    n_records: int = _field(50, _int, 1)
    spacing: str = _field("geometric", _choice, SPACINGS)
    snapshots: bool = _field(True, _bool)
    divergence_factor: float = _field(1e6, _float, 1.0, True)
    diagnostics: tuple = _field((), _choices, tuple(DIAGNOSTICS))
    cone_angle: float = _field(10.0, _float, 0.0, True)
    checkpoint_seconds: float = _field(10.0, _float, 0.0)
    stop_below: float = _field(0.0, _float, 0.0)

_SECTIONS = {"network": NetworkConfig, "init": InitConfig, "data": DataConfig,
             "flow": FlowConfig, "record": RecordConfig}


@_strict
@dataclass(frozen=True)
class Config:
    """A whole run: ``seed`` and the five sections. ``Config.from_toml(path)`` reads a file."""

    seed: int = 0
    network: NetworkConfig = field(default_factory=NetworkConfig)
    init: InitConfig = field(default_factory=InitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    record: RecordConfig = field(default_factory=RecordConfig)

    def __post_init__(self):
        seed = _int("seed", self.seed, 0)
        object.__setattr__(self, "seed", seed)
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise ConfigError.invalid(name, value, f"a {cls.__name__} or a table")
        self._check_consistency()

    @property
    def teacher_params(self):
        """The teacher's activation parameters as the kernels take them: its own leaky slope
        (data.teacher_leaky_slope), the network's piecewise-linear knots and values."""
        params = self.network.activation_params.copy()
        params[0] = self.data.teacher_leaky_slope
        return params

    def _check_consistency(self):
        rules.refuse(self, rules.CONFIG)

    # --- construction and serialisation ----------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        if not isinstance(values, dict):
            raise ConfigError.invalid("config", values, "a table")
        valid = ["seed", *_SECTIONS]
        for key in values:
            if key not in valid:
                raise _unknown_key(key, "", valid)
        kwargs = {k: v for k, v in values.items() if k == "seed"}
        for name, cls_ in _SECTIONS.items():
            if name in values:
                kwargs[name] = cls_.from_dict(values[name])
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path) -> "Config":
        """Read a TOML file; syntax errors report the line, unknown keys the closest valid one."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8-sig")          # a byte-order mark is allowed
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist", parameter="path",
                              value=str(path), allowed="an existing readable TOML file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}", parameter="path",
                              value=str(path), allowed="an existing readable TOML file") from None
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}", parameter="path",
                              value=str(path), allowed="a TOML file") from None
        if not values:
            import warnings
            warnings.warn(f"config file {str(path)!r} sets nothing: running every default (see the README's "
                          "Configuration section)", stacklevel=2)
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        return {"seed": self.seed, **{name: getattr(self, name).to_dict() for name in _SECTIONS}}

    def to_toml(self) -> str:
        lines = [f"seed = {self.seed}"]
        for name in _SECTIONS:
            values = getattr(self, name).to_dict()
            lines.append(f"\n[{name}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items() if not isinstance(value, dict)]
            for table, entries in values.items():
                if isinstance(entries, dict):
                    lines.append(f"\n[{name}.{table}]")
                    lines += [f"{key} = {_toml_value(value)}" for key, value in entries.items()]
        return "\n".join(lines) + "\n"

    def updated(self, changes: dict[str, Any] | None = None, **kwargs) -> "Config":
        """A copy with dotted keys changed: ``cfg.updated({"network.m": 200, "seed": 3})``."""
        values = self.to_dict()
        for key, value in {**(changes or {}), **kwargs}.items():
            section, _, name = key.partition(".")
            if not name:
                values[section] = value
            elif section not in _SECTIONS:
                close = difflib.get_close_matches(section, list(_SECTIONS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown section {section!r} in key {key!r}{hint}",
                                  parameter=key, value=value, allowed=", ".join(_SECTIONS))
            else:
                table, _, sub = name.partition(".")
                if sub and isinstance(values[section].get(table), dict):        # "flow.potential.kind"
                    values[section][table][sub] = value
                else:
                    values[section][name] = value
        return Config.from_dict(values)


def _toml_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return str(value)
