"""Matplotlib helpers and animations. Never imported by ``meanfield`` itself.

Particles are drawn as Chizat does: neuron i at |a_i| w_i in the plane of the first two input
coordinates, red if a_i > 0 and blue if a_i < 0; for the positively 1-homogeneous ReLU the
predictor depends on the particles only through these points and signs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.ticker import NullFormatter

from ..store.results import Result
from .fits import power_law, seed_slopes

POSITIVE, NEGATIVE, TEACHER = "#c0392b", "#2e6db4", "#111111"


def lifted(theta: np.ndarray) -> np.ndarray:
    """|a_i| w_i (first two coordinates), shape (..., m, 2)."""
    return np.abs(theta[..., -1:]) * theta[..., :2]


def particles(ax, result: Result, teacher: np.ndarray | None = None, trajectories: bool = True,
              max_particles: int = 400, title: str | None = None):
    """Particle cloud at the final time with (optionally) each neuron's path since t = 0."""
    snaps = result.snapshots if result.snapshots is not None else np.stack([result.theta0, result.theta])
    snaps = snaps[:, :max_particles]
    points = lifted(snaps)                                  # (R, m, 2)
    sign = snaps[-1, :, -1] >= 0
    for positive, colour in ((True, POSITIVE), (False, NEGATIVE)):
        chosen = sign == positive
        if trajectories:
            ax.plot(points[:, chosen, 0], points[:, chosen, 1], color=colour, lw=0.6, alpha=0.45)
        ax.scatter(points[-1, chosen, 0], points[-1, chosen, 1], s=9, color=colour, zorder=3,
                   label="a > 0" if positive else "a < 0")
    ax.scatter(points[0, :, 0], points[0, :, 1], s=4, color="0.6", zorder=2, label="t = 0")
    radius = np.quantile(np.linalg.norm(points[-1], axis=1), 0.98) * 1.15
    if teacher is not None:
        _teacher_rays(ax, teacher, radius)
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$|a_i|\, w_{i,1}$")
    ax.set_ylabel(r"$|a_i|\, w_{i,2}$")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize=7, markerscale=1.5)


def _teacher_rays(ax, teacher, radius):
    """The teacher's neuron directions u_j as rays from the origin (the mean-field limit puts
    mass c_j on the ray of u_j, at a radius that depends on the normalisation)."""
    u = teacher[:, :2] / np.linalg.norm(teacher[:, :2], axis=1, keepdims=True)
    for j, (ux, uy) in enumerate(u):
        ax.plot([0, radius * ux], [0, radius * uy], ls="--", color=TEACHER, lw=1.2, zorder=1,
                label="teacher directions" if j == 0 else None)


def risk_curves(ax, curves: dict, reference_slopes=(), ylabel="training risk $R(\\theta_t)$"):
    """Risk against time on log-log axes; ``curves`` maps a label to (t, risk).

    A reference line t^slope is drawn for each of ``reference_slopes``, anchored on the first curve.
    """
    for label, (t, r) in curves.items():
        keep = (t > 0) & (r > 0)
        ax.loglog(t[keep], r[keep], lw=1.8, label=label)
    if curves and reference_slopes:
        t, r = next(iter(curves.values()))
        keep = (t > 0) & (r > 0)
        t0, r0 = t[keep][len(t[keep]) // 3], r[keep][len(t[keep]) // 3]
        span = np.geomspace(t0, t[keep][-1], 20)
        for slope in reference_slopes:
            ax.loglog(span, r0 * (span / t0) ** slope, "k--", lw=0.9, label=f"slope {slope:g}")
    ax.set_xlabel("time $t$ (flow units)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def scaling(ax, x, series: dict, xlabel: str, ylabel: str, expected: dict | None = None,
            colors: dict | None = None) -> dict:
    """Log-log points with fitted power laws; returns {label: PowerLaw}. ``series``: label -> y;
    ``expected``: label -> the exponent theory predicts for that setting (printed beside the fit)."""
    fits = {}
    for label, y in series.items():
        fit = power_law(x, y)
        fits[label] = fit
        line, = ax.loglog(x, y, "o", ms=5, color=(colors or {}).get(label, COLORS.get(label)))
        target = f", expected {expected[label]:+g}" if expected and label in expected else ""
        ax.loglog(x, fit(x), "-", color=line.get_color(), lw=1.2,
                  label=f"{label}: slope {fit.slope:+.2f} ± {fit.stderr:.2f}{target}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    quiet_minor_ticks(ax)
    ax.legend(fontsize=7)
    return fits


# one colour per method or regime, the same in every panel and every figure
COLORS = {"mean-field": "tab:blue", "lazy": "tab:orange", "kernel": "tab:green", "theory": "k",
          "relu": "tab:red", "tanh": "tab:purple",
          "engine": "tab:blue", "numpy": "tab:orange", "numpy (expert)": "tab:brown",
          "torch autograd": "tab:green", "torch (expert)": "tab:olive", "torch.compile": "tab:red",
          "JAX": "tab:purple", "JAX loop (grad)": "tab:pink", "JAX loop (expert)": "tab:gray"}


def seed_scaling(ax, x, series: dict, xlabel: str, ylabel: str, colors: dict | None = None) -> dict:
    """Log-log median over seeds with its interquartile band, and the power law fitted per seed;
    returns {label: fits.seed_slopes dict}. ``series``: label -> values (len(x), seeds)."""
    fits = {}
    for label, values in series.items():
        values = np.asarray(values, dtype=float).reshape(len(x), -1)
        fit = seed_slopes(x, values)
        fits[label] = fit
        color = (colors or {}).get(label, COLORS.get(label))
        median = np.median(values, axis=1)
        line, = ax.loglog(x, median, "o", ms=5, color=color)
        if values.shape[1] > 1:
            ax.fill_between(x, *np.percentile(values, [25, 75], axis=1), color=line.get_color(), alpha=0.2, lw=0)
        prefactor = np.exp(np.mean(np.log(median) - fit["slope"] * np.log(x)))
        ax.loglog(x, prefactor * np.asarray(x, float) ** fit["slope"], "-", color=line.get_color(), lw=1.2,
                  label=f"{label}: slope {fit['slope']:+.2f} [{fit['ci_low']:+.2f}, {fit['ci_high']:+.2f}]")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    label_ticks(ax, x)
    quiet_minor_ticks(ax)
    return fits


def label_ticks(ax, values, axis: str = "x"):
    """Every swept value a labelled tick, and no minor tick labels (call after the last plot call
    that may reset the scale)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_ticks(values, [f"{v:g}" for v in values])
    target.set_minor_formatter(NullFormatter())


def quiet_minor_ticks(ax):
    """No labels on the minor ticks of log axes spanning a decade or more (they collide there);
    shorter axes keep them, since they may have no major tick at all."""
    for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() == "log" and low > 0 and high / low >= 10:
            axis.set_minor_formatter(NullFormatter())


def animate(result: Result, path, teacher: np.ndarray | None = None, fps: int = 8,
            max_particles: int = 400, title: str = "particle flow") -> Path:
    """Write a GIF of the particles |a_i| w_i over the record times (Pillow writer, no ffmpeg)."""
    if result.snapshots is None:
        raise ValueError("animate needs a result recorded with record.snapshots = true")
    points = lifted(result.snapshots[:, :max_particles])
    signs = result.snapshots[:, :max_particles, -1] >= 0
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    lim = 1.15 * np.quantile(np.linalg.norm(points, axis=2), 0.98)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$|a_i|\, w_{i,1}$")
    ax.set_ylabel(r"$|a_i|\, w_{i,2}$")
    if teacher is not None:
        _teacher_rays(ax, teacher, lim)
    cloud = ax.scatter(points[0, :, 0], points[0, :, 1], s=9)
    label = ax.set_title(title)

    def frame(k):
        cloud.set_offsets(points[k])
        cloud.set_color(np.where(signs[k], POSITIVE, NEGATIVE))
        label.set_text(f"{title}, t = {result.t[k]:.3g}")
        return cloud, label

    anim = FuncAnimation(fig, frame, frames=len(result.t), blit=False)
    path = Path(path)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=72)
    plt.close(fig)
    return path
