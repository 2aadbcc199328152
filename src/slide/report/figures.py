"""The paper's evidence as figures: P@1 vs training time (its Figure 5: one panel per dataset, and one figure per
dataset), P@1 vs iterations, thread scaling.

Functions return matplotlib Figures (tests inspect their Axes); `save_figure` writes PNG/PDF atomically.
Several runs per curve (seeds) are drawn as the mean with a band (min–max or ±sd).
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: Snakemake jobs and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from .runs import Group, Run, aggregate_curve, group_runs, system_label  # noqa: E402

X_AXES = {
    "train_seconds": ("training time (s, log scale; evaluation excluded)", "log"),
    "step": ("iterations (batches)", "linear"),
}
_SYSTEM_ORDER = ["slide", "tf_full", "tf_sampled", "parabel"]
_MARKERS = {"slide": "o", "tf_full": "s", "tf_sampled": "^", "parabel": "*"}


def system_colors(systems) -> dict[str, tuple]:
    """One fixed colour per system across all figures (colour-blind safe palette)."""
    names = list(dict.fromkeys([*_SYSTEM_ORDER, *systems]))
    return dict(zip(names, sns.color_palette("colorblind", len(names))))


def _style():
    # Print-readable: larger fonts than the default, light grid, no heavy frame.
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.3)


def plot_p1_curves(runs: list[Run], x: str = "train_seconds", title: str = "", majority: float | None = None,
                   band: str = "minmax", by_threads: bool | None = None, target: float | None = None) -> Figure:
    """P@1 (periodic evaluation rows) against `x` ("train_seconds" or "step"); one curve per group.

    On the log time axis the step-0 point (0 s) cannot be drawn and is dropped. A system with a single
    evaluation (parabel: no training curve) is one point at its training time, and is left out of the
    iterations figure. `majority` draws the majority-label baseline as a dashed horizontal line, `target` the
    time-to-target P@1 as a dotted one.
    """
    _check_axes(x, band)
    _style()
    fig, ax = plt.subplots(figsize=(7.5, 5.6), layout="constrained")
    _draw_p1(ax, runs, x, majority, band, by_threads, target)
    ax.set_title(title)
    _legend_below(fig, ax)
    return fig


def plot_paper_figure(panels: list[tuple[str, list[Run], float | None, float | None]], title: str = "",
                      band: str = "minmax") -> Figure:
    """The paper's Figure 5: one panel per dataset, P@1 against training time (log axis), every system, the
    majority-label baseline and the target. `panels`: (dataset, runs, majority P@1, target P@1) in order."""
    if not panels:
        raise ValueError("no dataset to draw")
    _style()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 5.4), layout="constrained", squeeze=False)
    entries: dict[str, object] = {}
    for ax, (dataset, runs, majority, target) in zip(axes[0], panels):
        _draw_p1(ax, runs, "train_seconds", majority, band, None, target, short_labels=True)
        ax.set_title(dataset)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    for ax in axes[0][1:]:
        ax.set_ylabel("")
    fig.suptitle(title)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=min(len(entries), 4),
                   frameon=False, fontsize="small")
    return fig


def _check_axes(x: str, band: str) -> None:
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if band not in ("minmax", "sd"):
        raise ValueError(f"band must be 'minmax' or 'sd', got {band!r}")


def curve_rows(runs: list[Run]) -> str:
    """What the curves' P@1 is measured on: "validation subset" | "test subset" (final.json "curve")."""
    kinds = {(r.final or {}).get("curve", "test") for r in runs if r.ok and r.metrics is not None and len(r.metrics) > 1}
    return {frozenset({"validation"}): "validation subset", frozenset({"test"}): "test subset"}.get(
        frozenset(kinds), "periodic evaluation subset")


def _draw_p1(ax, runs: list[Run], x: str, majority: float | None, band: str, by_threads: bool | None,
             target: float | None, short_labels: bool = False) -> None:
    _check_axes(x, band)
    xlabel, scale = X_AXES[x]
    groups = [g for g in group_runs(runs, by_threads) if any(r.metrics is not None for r in g.runs)]
    colors = system_colors(g.system for g in groups)
    shades = _thread_shades(groups)
    banded = False
    for g in groups:
        curve = aggregate_curve([r for r in g.runs if r.metrics is not None], x=x)
        point = len(curve) == 1  # no curve: one evaluation (a system that is not trained in steps)
        if point and x == "step":
            continue
        if scale == "log":
            curve = curve[curve["x"] > 0]
        if curve.empty:
            continue
        n = int(curve["n"].iloc[0])
        color = colors[g.system] if shades is None else shades[(g.system, g.threads)]
        label = g.label + (f", mean of {n} runs" if n > 1 else "")
        if point:
            ax.plot(curve["x"], curve["mean"], linestyle="none", marker=_MARKERS.get(g.system, "D"), markersize=10,
                    color=color, label=label + ("" if short_labels else " (one point: its training time)"),
                    gid=f"point:{g.system}:{g.threads}")
            continue
        ax.plot(curve["x"], curve["mean"], marker=_MARKERS.get(g.system, "o"), markersize=4, linewidth=2,
                color=color, label=label, gid=f"curve:{g.system}:{g.threads}")
        if n > 1:
            lo, hi = ((curve["min"], curve["max"]) if band == "minmax"
                      else (curve["mean"] - curve["sd"], curve["mean"] + curve["sd"]))
            ax.fill_between(curve["x"], lo, hi, color=color, alpha=0.2, linewidth=0, label="_nolegend_",
                            gid=f"band:{g.system}:{g.threads}")
            banded = True
    if banded:  # one legend entry explains every band (one per curve would double the legend)
        ax.fill_between([], [], [], color="0.6", alpha=0.4, linewidth=0,
                        label=f"shaded: {'min–max' if band == 'minmax' else '±1 sd'} over runs")
    if majority is not None:
        ax.axhline(majority, color="0.35", linestyle="--", linewidth=1.5, gid="majority",
                   label="majority-label baseline" if short_labels else f"majority-label baseline (P@1 = {majority:.3f})")
    if target is not None and np.isfinite(target):
        ax.axhline(target, color="0.15", linestyle=":", linewidth=1.5, gid="target",
                   label="target P@1" if short_labels else f"target P@1 = {target:.3f}")
    ax.set_xscale(scale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"P@1 ({curve_rows(runs)})")
    ax.set_ylim(bottom=0)
    if scale == "log":
        # plain-number ticks ("10^1" reads badly in print): 1-2-5 per decade, every integer multiple when
        # the curves span less than about a decade (short smoke runs) so that the axis keeps several labels
        xs = [v for line in ax.get_lines() if (line.get_gid() or "").startswith(("curve:", "point:"))
              for v in line.get_xdata()]
        narrow = bool(xs) and max(xs) / min(xs) < 12
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=tuple(range(1, 10)) if narrow else (1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))


def plot_thread_scaling(runs: list[Run], title: str = "") -> Figure:
    """Training time per epoch against thread count, one line per system (mean over seeds, min–max bars).

    Uses final.json (train_seconds / epochs) of finished runs that recorded their thread count.
    """
    _style()
    fig, ax = plt.subplots(figsize=(7.5, 5.6), layout="constrained")
    usable = [r for r in runs if r.ok and r.threads and r.final.get("epochs")]
    colors = system_colors(r.system for r in usable)
    all_threads: set[int] = set()
    for system in dict.fromkeys(r.system for r in usable):
        pts = scaling_points([r for r in usable if r.system == system])
        all_threads.update(pts["threads"])
        yerr = np.vstack([pts["mean"] - pts["min"], pts["max"] - pts["mean"]])
        bars = ax.errorbar(pts["threads"], pts["mean"], yerr=yerr, marker=_MARKERS.get(system, "D"), markersize=5,
                           linewidth=2, capsize=3, color=colors[system], label=system_label(system))
        bars.lines[0].set_gid(f"scaling:{system}")  # the mean line (caps and bars are separate artists)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    if all_threads:
        ax.set_xticks(sorted(all_threads), [str(t) for t in sorted(all_threads)])
    ax.set_xlabel("threads")
    ax.set_ylabel("training time per epoch (s, log scale)")
    ax.set_title(title)
    _legend_below(fig, ax)
    return fig


def scaling_points(runs: list[Run]) -> dict[str, np.ndarray]:
    """Per thread count: mean/min/max of seconds per epoch over the runs (one system)."""
    by_t: dict[int, list[float]] = {}
    for r in runs:
        by_t.setdefault(r.threads, []).append(r.final["train_seconds"] / r.final["epochs"])
    ts = sorted(by_t)
    vals = [np.asarray(by_t[t], dtype=float) for t in ts]
    return {"threads": np.asarray(ts), "mean": np.array([v.mean() for v in vals]),
            "min": np.array([v.min() for v in vals]), "max": np.array([v.max() for v in vals])}


def several_thread_counts(runs: list[Run]) -> bool:
    return len({r.threads for r in runs if r.ok and r.threads}) > 1


def figure_title(what: str, dataset: str, host: str) -> str:
    return f"{dataset}: {what}\n{host}"


def save_figure(fig: Figure, paths: list[str | os.PathLike], dpi: int = 200) -> None:
    """Write the figure to each path (format from the suffix), atomically; then free it."""
    try:
        for p in paths:
            p = Path(p)
            with atomic_path(p, suffix=p.suffix) as tmp:
                fig.savefig(tmp, dpi=dpi, format=p.suffix.lstrip("."))
    finally:
        plt.close(fig)


def _legend_below(fig: Figure, ax) -> None:
    """Legend under the axes so that it never hides a curve or the baseline line."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2 if len(handles) > 1 else 1,
                   frameon=False, fontsize="small")


def _thread_shades(groups: list[Group]) -> dict | None:
    """When curves are split by thread count: light-to-dark shades of the system's colour."""
    if not any(g.threads is not None for g in groups):
        return None
    base = system_colors(g.system for g in groups)
    shades = {}
    for system in dict.fromkeys(g.system for g in groups):
        mine = [g for g in groups if g.system == system]
        pal = sns.light_palette(base[system], n_colors=len(mine) + 2)[2:]  # lightest shade still visible
        shades.update({(g.system, g.threads): c for g, c in zip(mine, pal)})
    return shades


def _plain_number(v, _pos) -> str:
    return f"{v:g}"
