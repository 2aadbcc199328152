"""The summary table: reported accuracy, cost, time to a target P@1 and SLIDE's speedups over the baselines.

Every configured system gets a row: a missing or failed run (no final.json) is listed as such, never
dropped. Several runs of a system (seeds) are averaged; distinct thread counts get separate rows.

Reported P@1/3/5 are full-test numbers of the model the run reports: the best-validation one when the run
held out validation rows (final.json "best"), else the last; the last step's are listed too. The target and
time to target use one measure, the periodic evaluation curve (metrics.csv): target = fraction x the best
system's curve P@1 at its reported step (systems with a training curve; a one-point reference such as Parabel
is checked against the target, not part of it), and a system reaches it when its own curve does.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from .html import page
from .runs import Group, Run, group_runs, system_label

COLUMNS = ["system", "label", "threads", "status", "runs", "selected", "p_at_1", "p_at_3", "p_at_5",
           "reported_step", "reported_seconds", "last_p_at_1", "last_p_at_3", "last_p_at_5", "stopped",
           "test_samples", "steps", "epochs", "train_seconds", "seconds_per_batch", "curve", "curve_p_at_1",
           "target_p_at_1", "time_to_target_s", "target_reached", "peak_rss_gib", "slide_speedup_time_to_target",
           "slide_speedup_per_batch", "sparse_p_at_1", "dense_ms_per_row", "sparse_ms_per_row"]
MAJORITY = "majority_label"
GIB = 1024 ** 3


TARGET_RULES = ("first", "sustained")


def time_to_target(metrics: pd.DataFrame, target: float, x: str = "train_seconds", rule: str = "first") -> float:
    """Training time at which P@1 reaches `target`, linearly interpolated between evaluations; NaN if never.

    rule "first": the first evaluation at or above the target (the paper's "time to reach accuracy").
    rule "sustained": the crossing after which P@1 never falls below the target again, so an early transient
    spike (seen when a model briefly scores well before collapsing onto the most frequent label) does not count.
    """
    if rule not in TARGET_RULES:
        raise ValueError(f"target rule must be one of {', '.join(TARGET_RULES)}, got {rule!r}")
    m = metrics.sort_values("step", kind="stable")
    t, p = m[x].to_numpy(float), m["p_at_1"].to_numpy(float)
    above = p >= target
    if rule == "first":
        hit = np.flatnonzero(above)
        i = int(hit[0]) if hit.size else -1
    else:
        below = np.flatnonzero(~above)
        i = int(below[-1]) + 1 if below.size else 0
        i = i if i < len(p) else -1
    if i < 0:
        return math.nan
    if i == 0 or p[i] == p[i - 1]:
        return float(t[i])
    return float(t[i - 1] + (target - p[i - 1]) / (p[i] - p[i - 1]) * (t[i] - t[i - 1]))


def summarize(runs: list[Run], systems: list[str], target_fraction: float, majority: float | dict | None = None,
              by_threads: bool | None = None, rule: str = "first") -> pd.DataFrame:
    """One row per configured system (per thread count when several), plus the majority-label baseline.

    `majority`: its P@1, or {"p_at_1": ..., "p_at_3": ..., "p_at_5": ...} (runs.majority_pk).
    """
    if not 0 < target_fraction <= 1:
        raise ValueError(f"figures.target_fraction must be in (0, 1], got {target_fraction}")
    groups = group_runs([r for r in runs if r.system in systems], by_threads)
    present = {g.system for g in groups}
    groups += [Group(s, None) for s in systems if s not in present]  # configured but no run directory at all
    groups.sort(key=lambda g: (systems.index(g.system), g.threads or 0))

    rows = [_base_row(g) for g in groups]
    target = target_p1(groups, target_fraction)
    for g, row in zip(groups, rows):
        row["target_p_at_1"] = target
        if not g.finished or math.isnan(target):
            continue
        times = [time_to_target(r.metrics, target, rule=rule) if r.metrics is not None else math.nan for r in g.finished]
        reached = sum(not math.isnan(t) for t in times)
        row["time_to_target_s"] = float(np.mean(times)) if reached == len(times) else math.nan
        row["target_reached"] = ("yes" if reached else "no") if len(times) == 1 else f"{reached}/{len(times)} runs"
    _speedups(rows)
    df = pd.DataFrame(rows, columns=COLUMNS)
    base = {"p_at_1": majority} if isinstance(majority, (int, float)) else dict(majority or {})
    if base.get("p_at_1") is not None:
        df.loc[len(df)] = {**{c: math.nan for c in COLUMNS}, "system": MAJORITY, "label": "majority-label baseline",
                           "status": "baseline", "target_p_at_1": target, "target_reached": "",
                           **{k: v for k, v in base.items() if k in ("p_at_1", "p_at_3", "p_at_5")}}
    return df


def curve_p1(run: Run) -> float:
    """P@1 of the run's periodic evaluation curve at its reported step (final.json "best" step, else the last
    evaluation); NaN without metrics."""
    if run.metrics is None or run.metrics.empty:
        return math.nan
    m = run.metrics.sort_values("step", kind="stable")
    best = (run.final or {}).get("best")
    if isinstance(best, dict) and best.get("step") is not None:
        at = m[m["step"] == best["step"]]
        if len(at):
            return float(at["p_at_1"].iloc[-1])
    return float(m["p_at_1"].iloc[-1])


def target_p1(groups: list[Group], target_fraction: float) -> float:
    """fraction x the best curve P@1 at the reported step (mean over a group's finished runs); NaN if none.

    Systems trained under the shared protocol (a curve of several evaluations) define the target; a reference
    system with a single evaluation (Parabel) is checked against it, and defines it only when no system has a
    curve."""
    curves = [g for g in groups if any(r.metrics is not None and len(r.metrics) > 1 for r in g.finished)]
    best = []
    for g in curves or groups:
        vals = [curve_p1(r) for r in g.finished]
        vals = [v for v in vals if not math.isnan(v)]
        if vals:
            best.append(float(np.mean(vals)))
    return target_fraction * max(best) if best else math.nan


def _base_row(g: Group) -> dict:
    row = {c: math.nan for c in COLUMNS}
    # the thread count: the group's, or the one every run of the system recorded (final.json)
    threads = g.threads if g.threads is not None else _common({r.threads for r in g.runs if r.ok})
    row.update(system=g.system, label=g.label, threads=threads, runs=len(g.runs), target_reached="",
               selected="", stopped="", curve="", _speedup_key=g.threads)
    done = g.finished
    if not done:
        row["status"] = ("missing: no run" if not g.runs else "failed: no final.json"
                         + (" (metrics.csv present)" if any(r.metrics is not None for r in g.runs) else ""))
        return row
    row["status"] = "ok" if len(done) == len(g.runs) else f"ok ({len(done)}/{len(g.runs)} runs finished)"

    def mean(key, mode=None):  # mode: a block of final.json's inference_modes (SLIDE's dense and sparse inference)
        vals = [r.final.get(key) if mode is None else (r.final.get("inference_modes") or {}).get(mode, {}).get(key)
                for r in done]
        vals = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return float(np.mean(vals)) if vals else math.nan

    def mean_of(block, key):  # final.json's "best" / "last" blocks (runs without them: the top level)
        vals = [((r.final.get(block) if isinstance(r.final.get(block), dict) else None) or
                 {"step": r.final.get("steps"), "train_seconds": r.final.get("train_seconds"),
                  **{k: r.final.get(k) for k in ("p_at_1", "p_at_3", "p_at_5")}}).get(key) for r in done]
        vals = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return float(np.mean(vals)) if vals else math.nan

    for key in ("p_at_1", "p_at_3", "p_at_5", "test_samples", "steps", "epochs", "train_seconds",
                "seconds_per_batch"):
        row[key] = mean(key)
    row["selected"] = _common({r.final.get("selected", "last") for r in done}) or "mixed"
    reported = "best" if row["selected"] == "best_validation" else "last"
    row["reported_step"], row["reported_seconds"] = mean_of(reported, "step"), mean_of(reported, "train_seconds")
    for k in ("p_at_1", "p_at_3", "p_at_5"):
        row[f"last_{k}"] = mean_of("last", k)
    row["stopped"] = ", ".join(sorted({str(r.final.get("stopped")) for r in done if r.final.get("stopped")}))
    row["curve"] = _common({r.final.get("curve", "test") for r in done}) or "mixed"
    curve = [v for v in (curve_p1(r) for r in done) if not math.isnan(v)]
    row["curve_p_at_1"] = float(np.mean(curve)) if curve else math.nan
    row["peak_rss_gib"] = mean("peak_rss_bytes") / GIB
    row["sparse_p_at_1"] = mean("p_at_1", "sparse")
    row["dense_ms_per_row"] = mean("ms_per_row", "dense")
    row["sparse_ms_per_row"] = mean("ms_per_row", "sparse")
    return row


def _common(values: set):
    """The one value of `values` (None when empty or several)."""
    return next(iter(values)) if len(values) == 1 else None


def _speedups(rows: list[dict]) -> None:
    """SLIDE's speedup over each row = row's cost / SLIDE's cost (same thread count); > 1: SLIDE is faster."""
    slide = {r["_speedup_key"]: r for r in rows if r["system"] == "slide" and r["status"].startswith("ok")}
    for r in rows:
        s = slide.get(r["_speedup_key"])
        if s is None or not r["status"].startswith("ok"):
            continue
        r["slide_speedup_time_to_target"] = _ratio(r["time_to_target_s"], s["time_to_target_s"])
        r["slide_speedup_per_batch"] = _ratio(r["seconds_per_batch"], s["seconds_per_batch"])


def _ratio(a: float, b: float) -> float:
    return a / b if (not math.isnan(a) and not math.isnan(b) and b > 0) else math.nan


# --- output ---------------------------------------------------------------------------------------

def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def _fmt(v, kind: str) -> str:
    if v is None or pd.isna(v):
        return ""
    return {"p": f"{v:.3f}", "s": f"{v:.4g}", "gib": f"{v:.2f}", "x": f"{v:.2f}×", "int": f"{int(v)}"}[kind]


_TABLE = [("System", "label", None), ("Status", "status", None), ("P@1", "p_at_1", "p"), ("P@3", "p_at_3", "p"),
          ("P@5", "p_at_5", "p"), ("Reported step", "reported_step", "int"), ("at s", "reported_seconds", "s"),
          ("Last P@1", "last_p_at_1", "p"), ("Last P@3", "last_p_at_3", "p"), ("Last P@5", "last_p_at_5", "p"),
          ("Last step", "steps", "int"), ("Stopped by", "stopped", None),
          ("Train s", "train_seconds", "s"), ("s / batch", "seconds_per_batch", "s"),
          ("s to target", "time_to_target_s", "s"), ("Peak RSS GiB", "peak_rss_gib", "gib"),
          ("SLIDE speedup to target", "slide_speedup_time_to_target", "x"),
          ("SLIDE speedup per batch", "slide_speedup_per_batch", "x"),
          ("P@1 sparse inference", "sparse_p_at_1", "p"), ("ms / row dense", "dense_ms_per_row", "s"),
          ("ms / row sparse", "sparse_ms_per_row", "s")]


def table_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Display table (header, rows) shared by the Markdown and HTML renderings."""
    header = [h for h, _, _ in _TABLE]
    rows = []
    for _, r in df.iterrows():
        cells = []
        for _, key, kind in _TABLE:
            v = r[key]
            if key == "time_to_target_s" and pd.isna(v) and r["target_reached"] not in ("", "yes"):
                reached = r["target_reached"]
                cells.append("not reached" if reached == "no" else f"not reached by all ({reached})")
                continue
            cells.append(("" if pd.isna(v) else str(v)) if kind is None else _fmt(v, kind))
        rows.append(cells)
    return header, rows


def notes(df: pd.DataFrame, target_fraction: float, rule: str = "first") -> list[str]:
    """Sentences under the table: target definition, speedups (with lower bounds), missing runs."""
    sys_rows = df[df["system"] != MAJORITY]
    ok = sys_rows[sys_rows["status"].str.startswith("ok")]
    out = []
    curve = {"validation": "validation subset", "test": "test subset"}
    if len(ok) and ok["curve_p_at_1"].notna().any():
        # the system that set the target (a one-point reference with a higher P@1 does not: see target_p1)
        setter = ok[(ok["curve_p_at_1"] * target_fraction - ok["target_p_at_1"]).abs() < 1e-12]
        best = setter.iloc[0] if len(setter) else ok.loc[ok["curve_p_at_1"].idxmax()]
        rows_ = curve.get(best["curve"], "evaluation rows")
        out.append(f"Target P@1 = {target_fraction:g} × the best reported P@1 on the periodic evaluation's "
                   f"{rows_} ({best['curve_p_at_1']:.3f}, {best['label']}) = {best['target_p_at_1']:.3f}. Time to "
                   "target: training seconds (evaluation excluded) at which the same evaluation "
                   + ("first reaches the target" if rule == "first" else
                      "reaches the target for good (never falling below it again)")
                   + ", linearly interpolated between evaluations, over each system's whole run (until it "
                   "converged or hit its cap): \"not reached\" means never within the run.")
    out.append("P@k: full test set, for the model each run reports: the best on the validation rows (held out of "
               "the training rows, never the test set) where the run had them, else the last step's; \"Last\": "
               "the last step's. Speedup = baseline cost / SLIDE cost (> 1: SLIDE is faster). Sparse inference scores "
               "only the neurons the tables retrieve; ms / row: prediction time per test row of each inference mode.")
    slide = ok[ok["system"] == "slide"]
    for _, r in ok[ok["system"] != "slide"].iterrows():
        s = slide[slide["threads"].isna()] if pd.isna(r["threads"]) else slide[slide["threads"] == r["threads"]]
        if s.empty and len(slide) == 1:  # one SLIDE row, whatever thread count the baseline recorded
            s = slide
        if s.empty:
            continue
        s = s.iloc[0]
        parts = []
        if not math.isnan(r["slide_speedup_time_to_target"]):
            parts.append(f"{r['slide_speedup_time_to_target']:.2f}× to reach the target")
        elif math.isnan(s["time_to_target_s"]):
            parts.append("no time-to-target ratio (SLIDE did not reach the target)")
        elif r["target_reached"] == "no":
            # the baseline ran out of training time below the target: its whole training time is a lower bound
            parts.append(f"at least {r['train_seconds'] / s['time_to_target_s']:.2f}× to reach the target "
                         f"({r['label']} never reached it in {r['train_seconds']:.4g} s)")
        if not math.isnan(r["slide_speedup_per_batch"]):
            parts.append(f"{r['slide_speedup_per_batch']:.2f}× per batch")
        if parts:
            out.append(f"SLIDE vs {r['label']}: " + "; ".join(parts) + ".")
    bad = sys_rows[~sys_rows["status"].str.startswith("ok")]
    if len(bad):
        out.append("Missing or failed runs: " + "; ".join(f"{r['label']} ({r['status']})" for _, r in bad.iterrows())
                   + ".")
    return out


def to_markdown(df: pd.DataFrame, dataset: str, host: str, target_fraction: float, rule: str = "first") -> str:
    header, rows = table_rows(df)
    lines = [f"# Summary: {dataset}", "", f"Host: {host}", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines += [""] + [f"- {n}" for n in notes(df, target_fraction, rule)]
    return "\n".join(lines) + "\n"


def to_html(df: pd.DataFrame, dataset: str, host: str, target_fraction: float, rule: str = "first") -> str:
    header, rows = table_rows(df)
    return page(f"Summary: {dataset}", [("p", f"Host: {host}"), ("table", (header, rows)),
                                        ("ul", notes(df, target_fraction, rule))])


def write_summary(df: pd.DataFrame, csv_path, md_path, html_path=None, *, dataset: str, host: str,
                  target_fraction: float, rule: str = "first") -> None:
    write_csv(df, csv_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(to_markdown(df, dataset, host, target_fraction, rule))
    if html_path is not None:
        with atomic_path(html_path) as tmp:
            tmp.write_text(to_html(df, dataset, host, target_fraction, rule))


# --- every dataset in one table ------------------------------------------------------------------------------

TEXT_COLUMNS = ["system", "label", "status", "selected", "stopped", "curve", "target_reached"]


def combined_markdown(df: pd.DataFrame, target_fraction: float) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of the combined table: a dataset column, then the per-dataset table's columns."""
    header, rows = table_rows(df) if len(df) else ([h for h, _, _ in _TABLE], [])
    rows = [[ds, *cells] for ds, cells in zip(df["dataset"] if len(df) else [], rows)]
    out = []
    targets = df[df["system"] != MAJORITY].groupby("dataset", sort=False)["target_p_at_1"].first() if len(df) else {}
    if len(targets):
        out.append(f"Target P@1 per dataset ({target_fraction:g} × the best reported P@1 on the periodic "
                   "evaluation rows): " + ", ".join(f"{ds} {t:.3f}" for ds, t in targets.items() if pd.notna(t))
                   + ". Each dataset's own summary (results/summary/<dataset>/summary.md) explains its numbers.")
    out.append("P@k: full test set, for the model each run reports (the best on the validation rows where the run "
               "had them, else the last step's); \"Last\": the last step's.")
    return ["Dataset", *header], rows, out


def write_combined(df: pd.DataFrame, csv_path, md_path, html_path=None, *, target_fraction: float) -> None:
    for col in TEXT_COLUMNS:
        if col in df:
            df[col] = df[col].fillna("").astype(str)
    write_csv(df, csv_path)
    header, rows, notes_ = combined_markdown(df, target_fraction)
    lines = ["# Summary: every dataset", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines += [""] + [f"- {n}" for n in notes_]
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    if html_path is not None:
        with atomic_path(html_path) as tmp:
            tmp.write_text(page("Summary: every dataset", [("table", (header, rows)), ("ul", notes_)]))
