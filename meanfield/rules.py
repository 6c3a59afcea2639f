"""Every cross-field refusal as data: one ``Rule`` type, the tables, and one place that applies them.

A rule names the ``field`` its refusal is about, ``when`` the combination is refused (a function of
the subject: the config, seen together with the call's own arguments such as ``weights``), what is
``allowed`` instead (text, or a function of the subject) and an optional ``hint``; the refusal is
``ConfigError.invalid(field, value, allowed, hint)``, value the field's (tuples shown as lists).
Tables: ``SECTIONS`` (each config section's own, checked when it is built), ``CONFIG`` (checked on
every ``Config``), ``DEEP`` (what network.depth >= 2 refuses, part of ``CONFIG``; ``DEEP_INPUTS``
its arguments), ``WEIGHTED`` (weighted particles), ``LIMIT`` (the computed mean-field limit),
``FLUCTUATIONS`` (the finite-width band around it), ``REDUCED`` (the limit reduced by symmetry),
``POPULATION_BAND`` (the band of the population risk), ``FLOAT32`` (float32 steps, part of
``CONFIG``), ``LAZY`` (the lazy limit's kernels and predictions), ``LANDSCAPE`` (critical points
and certificates). ``refuse`` raises the first broken rule; ``broken`` returns it. A field's own
type and range are declared with it, in ``config.py``.
"""
from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

from .errors import ConfigError
from .model import activations, integrators
from .model.diagnostics import SAMPLE_BASED

SAMPLED_KINDS = ("teacher", "isotropic_gaussians")        # laws that online SGD can sample
EXACT = tuple(a.name for a in activations.ACTIVATIONS.values() if a.population in ("closed form", "orthant"))


@dataclass(frozen=True)
class Rule:
    """A refused combination (module docstring)."""

    field: str
    when: Callable
    allowed: str | Callable
    hint: str = ""
    shown: Callable | None = None        # the value to show, if not the field's own
    message: Callable | None = None      # the whole message, where the standard one does not fit

    def value(self, subject):
        if self.shown is not None:
            return self.shown(subject)
        return _plain(functools.reduce(getattr, self.field.split("."), subject))


class Subject:
    """A config seen with the call's arguments: ``Subject(cfg, weights=w).weights``, ``.network``."""

    def __init__(self, cfg, **given):
        self._cfg, self._given = cfg, given

    def __getattr__(self, name):
        given = self.__dict__["_given"]
        return given[name] if name in given else getattr(self.__dict__["_cfg"], name)


def broken(subject, rules) -> Rule | None:
    """The first rule of ``rules`` that ``subject`` breaks, or None."""
    return next((rule for rule in rules if rule.when(subject)), None)


def refuse(subject, rules, context: str = ""):
    """Raise ConfigError for the first rule ``subject`` breaks; ``context`` follows what is allowed."""
    rule = broken(subject, rules)
    if rule is None:
        return
    allowed = (rule.allowed(subject) if callable(rule.allowed) else rule.allowed) + context
    if rule.message is not None:
        raise ConfigError(rule.message(subject), parameter=rule.field, value=rule.value(subject), allowed=allowed)
    raise ConfigError.invalid(rule.field, rule.value(subject), allowed, rule.hint)


def section_subject(section) -> Subject:
    """A config section seen as the config shows it: ``flow.potential`` as ``s.flow.potential``."""
    outer, _, inner = section._name.partition(".")
    return Subject(None, **{outer: SimpleNamespace(**{inner: section}) if inner else section})


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def _same_degree(s) -> bool:
    """Student and teacher activations homogeneous of one degree (the sphere's population risk)."""
    k = activations.activation(s.network.activation).homogeneity
    return k is not None and k == activations.activation(s.data.teacher_activation).homogeneity


def _no_kernel(name) -> bool:
    return activations.activation(name).population is None


def _population(field, when, allowed):
    return Rule(field, lambda s: s.data.kind == "population" and when(s), allowed)


def _gibbs(field, when, allowed):
    return Rule(field, lambda s: "gibbs" in s.record.diagnostics and when(s), allowed)


def _teacher_rows(field, when, allowed, shown=None):
    return Rule(field, lambda s: bool(s.data.teacher_weights) and when(s), allowed, shown=shown)


# the sections' own cross-field rules, checked when a section is built (``config._Section``)
def _symmetric_square(A) -> bool:
    return len(A) == len(A[0]) and all(abs(A[i][j] - A[j][i]) <= 1e-12 * max(1.0, abs(A[i][j]))
                                       for i in range(len(A)) for j in range(i))


def _bandwidths(s) -> tuple:
    """The Gaussian interaction's bandwidths h for which 2 h^2 is a normal float64 and strength / h^2
    is finite (the kernels divide by 2 h^2 and scale by strength / h^2)."""
    tiny, huge = sys.float_info.min, sys.float_info.max
    return max(math.sqrt(tiny / 2), math.sqrt(abs(s.flow.interaction.strength) / huge)), math.sqrt(huge / 2)


def _piecewise(field, when, allowed):
    return Rule(field, lambda s: s.flow.schedule == "piecewise" and when(s.flow), allowed)


def _horizon(s) -> str:
    flow = s.flow
    return (f"flow.t_end = {flow.t_end!r} is not a multiple of flow.dt = {flow.dt!r} "
            f"({flow.t_end / flow.dt:.6g} steps); the nearest valid flow.t_end is {flow.n_steps * flow.dt!r}")


RTOL_MIN = 1e-13            # flow.rtol: about 500 ulps, the smallest tolerance rounding lets a step meet

SECTIONS = {
    "network": (
        Rule("network.pwl_knots", lambda s: not s.network.pwl_knots[0] < s.network.pwl_knots[1], "two knots t1 < t2"),
        Rule("network.d", lambda s: s.network.bias and s.network.d < 2, "an integer >= 2 when network.bias is true",
             "d counts the constant bias coordinate"),
    ),
    "data": (
        Rule("data.delta", lambda s: s.data.delta >= 1.0, "a number in [0, 1)"),
        Rule("data.test_fraction", lambda s: s.data.test_fraction >= 1.0, "a number in [0, 1)"),
    ),
    "flow.potential": (
        Rule("flow.potential.matrix", lambda s: (s.flow.potential.kind == "quadratic") != bool(s.flow.potential.matrix),
             "a matrix exactly when flow.potential.kind = 'quadratic'"),
        Rule("flow.potential.matrix", lambda s: bool(s.flow.potential.matrix)
             and not _symmetric_square(s.flow.potential.matrix), "a symmetric square matrix"),
    ),
    "flow.interaction": (
        Rule("flow.interaction.bandwidth",
             lambda s: not _bandwidths(s)[0] <= s.flow.interaction.bandwidth <= _bandwidths(s)[1],
             lambda s: (f"a bandwidth h in [{_bandwidths(s)[0]:.3g}, {_bandwidths(s)[1]:.3g}], where 2 h^2 is a "
                        f"normal float64 and strength / h^2 is finite (strength = {s.flow.interaction.strength:g})")),
    ),
    "flow": (
        _piecewise("flow.schedule_values", lambda f: len(f.schedule_values) != len(f.schedule_times) + 1,
                   lambda s: f"{len(s.flow.schedule_times) + 1} temperatures (one more than flow.schedule_times)"),
        _piecewise("flow.schedule_times", lambda f: any(b <= a for a, b in zip(f.schedule_times, f.schedule_times[1:]))
                   or any(t <= 0 for t in f.schedule_times), "increasing positive times"),
        _piecewise("flow.schedule_values", lambda f: any(v < 0 for v in f.schedule_values), "temperatures >= 0"),
        Rule("flow.rtol", lambda s: s.flow.rtol < RTOL_MIN or s.flow.rtol >= 1,
             f"a relative tolerance in [{RTOL_MIN:g}, 1) (float64 rounding makes smaller ones unreachable)"),
        *(Rule(field, lambda s, when=when: when(s.flow) and not integrators.INTEGRATORS[s.flow.integrator].noise,
               lambda s, allowed=allowed: f"{allowed} with flow.integrator = {s.flow.integrator!r}",
               "use 'euler' (Euler–Maruyama) or 'heun' with noise or minibatches")
          for field, when, allowed in (
              ("flow.temperature", lambda f: f.max_temperature > 0, "0: it integrates deterministic flows"),
              ("flow.batch_size", lambda f: f.batch_size > 0, "0 (full batch): it integrates deterministic flows"))),
        Rule("flow.t_end", lambda s: s.flow.n_steps < 1, lambda s: f"a time >= flow.dt = {s.flow.dt}"),
        Rule("flow.t_end", lambda s: abs(s.flow.t_end / s.flow.dt - s.flow.n_steps) > 1e-9 * s.flow.t_end / s.flow.dt,
             lambda s: f"a multiple of flow.dt, e.g. {s.flow.n_steps * s.flow.dt!r}", message=_horizon),
        Rule("flow.batch_size", lambda s: s.flow.online and s.flow.batch_size < 1,
             "an integer >= 1 when flow.online is true"),
    ),
    "record": (
        Rule("record.cone_angle", lambda s: s.record.cone_angle > 180.0, "an angle in (0, 180] degrees"),
        Rule("record.stop_below", lambda s: s.record.stop_below >= 1.0,
             "a fraction of the initial risk in [0, 1) (0: run to flow.t_end)"),
    ),
}


# what a deep network (network.depth >= 2) does not take, by name
DEEP = (
    Rule("network.scaling", lambda s: s.network.scaling != "mean_field",
         "'mean_field' (unused) with network.depth >= 2: set network.parameterization instead"),
    Rule("network.alpha", lambda s: s.network.alpha != 1.0, "1 with network.depth >= 2 (network.parameterization sets "
         "the scales)"),
    Rule("network.centered", lambda s: s.network.centered, "false with network.depth >= 2"),
    Rule("network.linearized", lambda s: s.network.linearized, "false with network.depth >= 2"),
    Rule("network.train", lambda s: s.network.train != "both",
         "'both' with network.depth >= 2 (every layer is trained)"),
    Rule("data.kind", lambda s: s.data.kind == "population", "a sampled kind with network.depth >= 2 (no exact "
         "population risk)"),
    Rule("flow.temperature", lambda s: s.flow.max_temperature > 0, "0 with network.depth >= 2"),
    Rule("flow.potential.kind", lambda s: s.flow.potential.kind != "none", "'none' with network.depth >= 2"),
    Rule("flow.interaction.kind", lambda s: s.flow.interaction.kind != "none", "'none' with network.depth >= 2"),
    Rule("init.symmetric", lambda s: s.init.symmetric, "false with network.depth >= 2 (network.parameterization sets "
         "the initial law)"),
    Rule("record.diagnostics",
         lambda s: bool(set(s.record.diagnostics) - {"lambda_min", "lambda_max", "kernel_change"}),
         "'lambda_min', 'lambda_max' and 'kernel_change' with network.depth >= 2"),
)
DEEP_INPUTS = tuple(Rule(name, lambda s, name=name: getattr(s, name) is not None,
                         "None with network.depth >= 2 (deep runs draw their parameters from network.parameterization)",
                         shown=lambda s, name=name: type(getattr(s, name)).__name__) for name in ("theta0", "weights"))



def _float32(when, allowed):
    text = allowed if callable(allowed) else (lambda s: allowed)
    return Rule("flow.dtype", lambda s: s.flow.dtype == "float32" and when(s), lambda s: "'float64' " + text(s))


# where float32 steps are not built (two-layer networks on samples, fixed steps, no energy terms)
FLOAT32 = (
    _float32(lambda s: s.network.depth > 1, "with network.depth >= 2 (float32 steps are two-layer only)"),
    _float32(lambda s: s.data.kind == "population", "with data.kind = 'population' (the exact risk's pair sums "
             "are float64)"),
    _float32(lambda s: integrators.INTEGRATORS[s.flow.integrator].adaptive,
             lambda s: f"with flow.integrator = {s.flow.integrator!r} (error control needs float64; "
                       f"fixed-step methods: {', '.join(integrators.FIXED_STEP)})"),
    _float32(lambda s: s.network.linearized, "with network.linearized (the tangent model steps in float64)"),
    _float32(lambda s: "tangent_gap" in s.record.diagnostics,
             "with the 'tangent_gap' diagnostic (its tangent model steps in float64)"),
    _float32(lambda s: s.flow.potential.kind != "none" or s.flow.interaction.kind != "none",
             "with flow.potential or flow.interaction (the energy terms are float64)"),
)


def _first_record(s) -> float:
    """The time of the first record after t = 0 (problem.record_steps' first step after 0)."""
    n, records = s.flow.n_steps, max(s.record.n_records, 2)
    if records == 2:
        return n * s.flow.dt
    return (1 if s.record.spacing == "geometric" else max(1, round(n / (records - 1)))) * s.flow.dt


CONFIG = (
    Rule("network.m", lambda s: s.init.symmetric and s.network.m % 2, "an even integer when init.symmetric is true"),
    Rule("flow.dt_floor", lambda s: s.flow.dt_floor > s.flow.t_end,
         lambda s: f"a floor below the horizon flow.t_end = {s.flow.t_end:g}"),
    Rule("flow.dt_floor", lambda s: s.flow.t_end >= s.flow.dt_floor > _first_record(s),
         lambda s: f"a floor at most the first record's time, {_first_record(s):g} (record.n_records = "
                   f"{s.record.n_records}, {s.record.spacing} spacing; a floor above it skips records)"),
    Rule("flow.online", lambda s: s.flow.online and s.data.kind not in SAMPLED_KINDS,
         "false unless data.kind is one of " + ", ".join(map(repr, SAMPLED_KINDS)),
         "online SGD needs a data law to sample from"),
    Rule("flow.engine", lambda s: s.flow.engine == "blas" and s.network.linearized,
         "'fused' or 'auto' for the tangent model (network.linearized)"),
    Rule("flow.potential.matrix",
         lambda s: bool(s.flow.potential.matrix) and len(s.flow.potential.matrix) != s.network.d + 1,
         lambda s: f"a (network.d + 1) x (network.d + 1) = {s.network.d + 1} x {s.network.d + 1} matrix"),
    Rule("flow.batch_size", lambda s: s.flow.batch_size and s.data.kind == "none", "0 when data.kind = 'none'"),
    _population("data.inputs", lambda s: s.data.inputs == "sphere" and not _same_degree(s),
                "'gaussian' with data.kind = 'population', or 'sphere' when network.activation and "
                "data.teacher_activation are homogeneous of one degree (relu, leaky_relu, linear; quadratic)"),
    _population("network.bias", lambda s: s.network.bias, "false with data.kind = 'population' (inputs are N(0, I))"),
    _population("data.label_noise", lambda s: s.data.label_noise > 0, "0 with data.kind = 'population'"),
    _population("network.activation", lambda s: _no_kernel(s.network.activation),
                "an activation with a population kernel"),
    _population("data.teacher_activation", lambda s: _no_kernel(s.data.teacher_activation),
                "an activation with a population kernel"),
    _population("flow.loss", lambda s: s.flow.loss != "squared", "'squared' with data.kind = 'population'"),
    _population("flow.batch_size", lambda s: s.flow.batch_size > 0, "0 with data.kind = 'population' (exact risk)"),
    _population("record.diagnostics", lambda s: bool(set(s.record.diagnostics) & set(SAMPLE_BASED)),
                "no sample-based diagnostic (" + ", ".join(SAMPLE_BASED) + ") with data.kind = 'population'"),
    _gibbs("flow.lam", lambda s: s.flow.lam <= 0, "> 0 for the 'gibbs' diagnostic"),
    _gibbs("flow.temperature", lambda s: s.flow.max_temperature <= 0, "> 0 for the 'gibbs' diagnostic"),
    _gibbs("network.train", lambda s: s.network.train != "both", "'both' for the 'gibbs' diagnostic"),
    Rule("record.diagnostics",
         lambda s: "masses" in s.record.diagnostics and s.data.kind not in ("teacher", "population"),
         "'masses' only with a teacher (data.kind = 'teacher' or 'population')"),
    _teacher_rows("data.kind", lambda s: s.data.kind not in ("teacher", "population"),
                  "'teacher' or 'population' with data.teacher_weights"),
    _teacher_rows("data.teacher_weights", lambda s: len(s.data.teacher_weights[0]) != s.network.d + 1,
                  lambda s: f"rows of network.d + 1 = {s.network.d + 1} numbers [u_j | c_j]"),
    _teacher_rows("data.teacher_m0", lambda s: s.data.teacher_m0 != len(s.data.teacher_weights),
                  lambda s: f"{len(s.data.teacher_weights)}, the number of rows of data.teacher_weights"),
    _teacher_rows("data.teacher_orthonormal", lambda s: s.data.teacher_orthonormal, "false with data.teacher_weights"),
    Rule("data.teacher_m0", lambda s: s.data.teacher_orthonormal and s.data.teacher_m0 > s.network.d,
         lambda s: f"at most network.d = {s.network.d} with data.teacher_orthonormal"),
    *(Rule(rule.field, lambda s, rule=rule: s.network.depth > 1 and rule.when(s), rule.allowed, rule.hint, rule.shown)
      for rule in DEEP),
    *FLOAT32,
    Rule("data.test_fraction", lambda s: s.data.test_fraction and s.data.kind != "arrays",
         "0 unless data.kind = 'arrays' (use data.n_test)"),
)

WEIGHTED = (
    Rule("network.scaling", lambda s: s.network.scaling != "mean_field",
         "'mean_field' with weighted particles (the weights replace the 1/m of the mean-field predictor)"),
    Rule("network.linearized", lambda s: s.network.linearized, "false with weighted particles"),
    Rule("record.diagnostics", lambda s: bool(s.record.diagnostics),
         "[] with weighted particles (the diagnostics assume equal weights)"),
    _float32(lambda s: True, "with weighted particles"),
)

LIMIT = (
    Rule("network.depth", lambda s: s.network.depth > 1, "1: the limit is that of two-layer networks"),
    Rule("network.scaling", lambda s: s.network.scaling != "mean_field",
         "'mean_field' (the limit of the 1/m predictor)"),
    Rule("network.linearized", lambda s: s.network.linearized, "false: the tangent model has no mean-field limit here"),
    Rule("flow.temperature", lambda s: s.flow.max_temperature > 0,
         "0: with noise the limit is a McKean–Vlasov SDE, not a push-forward", shown=lambda s: s.flow.max_temperature),
    Rule("flow.batch_size", lambda s: s.flow.batch_size > 0, "0: minibatch SGD is not the gradient flow of one risk"),
    _float32(lambda s: True, "(the limit is computed in float64)"),
)


FLUCTUATIONS = (
    *LIMIT,
    Rule("data.kind", lambda s: s.data.kind == "none", "a sampled kind, arrays, or 'population' (POPULATION_BAND)"),
    Rule("network.activation", lambda s: activations.ACTIVATIONS[s.network.activation].kinked,
         "a smooth activation (tanh, sigmoid, erf, softplus, quadratic, linear): with a kinked one the particles "
         "cross the planes w . x_j = 0 and the flow map is not differentiable in the initial measure"),
    Rule("network.centered", lambda s: s.network.centered, "false (f0 is itself a fluctuating functional of mu_0)"),
    Rule("flow.integrator", lambda s: integrators.INTEGRATORS[s.flow.integrator].adaptive,
         f"a fixed-step method ({', '.join(integrators.FIXED_STEP)}): the adjoint follows the limit's steps"),
    Rule("flow.potential", lambda s: s.flow.potential.kind != "none", "'none'", shown=lambda s: s.flow.potential.kind),
    Rule("flow.interaction", lambda s: s.flow.interaction.kind != "none", "'none'",
         shown=lambda s: s.flow.interaction.kind),
)



def _classes(s) -> bool:
    """Mei, Montanari & Nguyen's isotropic Gaussian classes sampled by online SGD: the limit is the
    population flow of the law it samples (m -> infinity, and SGD's noise of variance ~ dt / batch gone)."""
    return s.data.kind == "isotropic_gaussians" and s.flow.online


REDUCED = (
    *(rule for rule in LIMIT if rule.field != "flow.batch_size"),
    Rule("flow.batch_size", lambda s: s.flow.batch_size > 0 and not _classes(s),
         "0: minibatch SGD is not the gradient flow of one risk"),
    Rule("data.kind", lambda s: s.data.kind != "population" and not _classes(s),
         "'population' (the exact risk, Gaussian inputs), or 'isotropic_gaussians' with flow.online"),
    Rule("data.inputs", lambda s: s.data.inputs != "gaussian", "'gaussian' (rotation invariant)"),
    Rule("network.bias", lambda s: s.network.bias, "false (a constant input breaks the rotation invariance)"),
    Rule("flow.loss", lambda s: s.flow.loss != "squared", "'squared'"),
    Rule("network.activation", lambda s: s.network.activation not in EXACT,
         f"one of {', '.join(EXACT)} (exact kernels)"),
    Rule("data.teacher_activation", lambda s: not _classes(s) and s.data.teacher_activation != s.network.activation,
         lambda s: f"{s.network.activation!r}, the student's"),
    Rule("data.teacher_leaky_slope", lambda s: not _classes(s) and s.network.activation == "leaky_relu"
         and s.data.teacher_leaky_slope != s.network.leaky_slope, lambda s: f"{s.network.leaky_slope}, the student's"),
    Rule("init.w_law", lambda s: s.init.w_law != "gaussian", "'gaussian' (isotropic)"),
    Rule("flow.potential", lambda s: s.flow.potential.kind != "none", "'none'", shown=lambda s: s.flow.potential.kind),
    Rule("flow.interaction", lambda s: s.flow.interaction.kind != "none", "'none'",
         shown=lambda s: s.flow.interaction.kind),
)

POPULATION_BAND = (            # the band of the population risk, on the reduced limit
    *REDUCED,
    Rule("data.kind", lambda s: s.data.kind != "population",
         "'population' (the band of isotropic_gaussians' mixture is not built)"),
    Rule("network.activation", lambda s: activations.ACTIVATIONS[s.network.activation].kernel_second is None,
         "an activation with closed-form second partials of its kernel ("
         + ", ".join(name for name, a in activations.ACTIVATIONS.items() if a.kernel_second is not None) + ")"),
    *(rule for rule in FLUCTUATIONS if rule.field in ("network.centered", "flow.integrator")),
)

LAZY = (
    Rule("network.scaling", lambda s: s.network.depth == 1 and s.network.scaling != "lazy",
         "'lazy' (under the mean-field scaling the kernel moves at O(1): the lazy limit does not describe the "
         "network)"),
    Rule("network.parameterization", lambda s: s.network.depth > 1 and s.network.parameterization != "ntk",
         "'ntk' with network.depth >= 2 (the kernel regime; mup learns features)"),
    Rule("init.w_law", lambda s: s.init.w_law != "gaussian", "'gaussian' (the kernels are Gaussian expectations)"),
    Rule("init.a_law", lambda s: s.init.a_law == "balanced",
         "'gaussian', 'rademacher', 'constant' or 'zero' (a independent of w)"),
    Rule("data.kind", lambda s: s.data.kind == "population", "a sampled kind (predictions on finite data)"),
    Rule("flow.lam", lambda s: s.flow.lam > 0, "0 (the engine's lam decays theta towards 0; the lazy limit's "
         "ridge on the displacement is predict(..., lam=) or --lam)"),
    Rule("flow.temperature", lambda s: s.flow.max_temperature > 0, "0 (no noise in the kernel flow)",
         shown=lambda s: s.flow.max_temperature),
    Rule("flow.batch_size", lambda s: s.flow.batch_size > 0, "0 (full-batch gradient flow)"),
    Rule("flow.potential", lambda s: s.flow.potential.kind != "none", "'none'", shown=lambda s: s.flow.potential.kind),
    Rule("flow.interaction", lambda s: s.flow.interaction.kind != "none", "'none'",
         shown=lambda s: s.flow.interaction.kind),
    _float32(lambda s: True, "(the lazy limit is computed in float64)"),
)

LANDSCAPE = (
    Rule("network.depth", lambda s: s.network.depth > 1, "1 (two-layer networks)"),
    Rule("network.linearized", lambda s: s.network.linearized, "false"),
    Rule("network.centered", lambda s: s.network.centered, "false"),
    Rule("weights", lambda s: s.weights is not None, "None (unweighted particles)", shown=lambda s: True),
    _float32(lambda s: True, "(critical points are certified in float64: run in float64)"),
)
