"""Job records: the files that Snakemake's `benchmark:` directive writes for the heavy rules
(results/benchmarks/{rule}/{job}.tsv), as one table (wall time, memory, I/O, CPU time per job).

Named "job records" to keep them apart from the benchmark scripts in benchmarks/, which measure the systems
themselves. Snakemake polls coarsely (0.5 s, later 30 s), so these are an audit trail of wall time, peak memory, I/O and
CPU time per job; the training numbers in the figures come from the trainers' own timers.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .report.html import page

# Snakemake's benchmark columns (s and h:m:s are the same wall time; io in MiB, memory in MB)
COLUMNS = ["s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time"]
HEADER = ["rule", "job", "wall s", "h:m:s", "max RSS MB", "max USS MB", "io in MiB", "io out MiB", "mean load %",
          "CPU s", "repeats"]


def read_benchmark(path: str | os.PathLike) -> pd.DataFrame:
    """One benchmark tsv; a file without Snakemake's columns is a one-line error naming it."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a Snakemake benchmark tsv ({str(e).splitlines()[0]})") from None
    missing = [c for c in ("s", "h:m:s") if c not in df.columns]
    if missing or df.empty:
        raise ValueError(f"{path}: not a Snakemake benchmark tsv (expected columns s, h:m:s, max_rss, ... and "
                         f"at least one row{'; missing ' + ', '.join(missing) if missing else ''})")
    return df


def job_record_table(paths, root: str | os.PathLike = "results/benchmarks") -> pd.DataFrame:
    """One row per benchmark file (mean over `repeat` rows): rule and job from the path below `root`."""
    rows = []
    for p in map(Path, paths):
        df = read_benchmark(p)
        try:
            rel = p.relative_to(root)
        except ValueError:
            rel = Path(p.parent.name) / p.name
        num = df[[c for c in COLUMNS if c in df.columns]].apply(pd.to_numeric, errors="coerce").mean()
        rows.append({"rule": rel.parts[0], "job": str(rel.with_suffix("")).split("/", 1)[-1],
                     "h:m:s": str(df["h:m:s"].iloc[0]), "repeats": len(df), **num.to_dict()})
    cols = ["rule", "job", *COLUMNS[:1], "h:m:s", *COLUMNS[1:], "repeats"]
    return pd.DataFrame(rows, columns=cols)


def write_table(df: pd.DataFrame, csv_path, html_path, title: str = "Job records of the heavy rules") -> None:
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")

    def f(v, digits=1):
        return "" if pd.isna(v) else f"{v:.{digits}f}"

    rows = [[r["rule"], r["job"], f(r["s"], 2), r["h:m:s"], f(r.get("max_rss")), f(r.get("max_uss")),
             f(r.get("io_in")), f(r.get("io_out")), f(r.get("mean_load")), f(r.get("cpu_time"), 2), r["repeats"]]
            for _, r in df.iterrows()]
    note = ("Snakemake `benchmark:` files (results/benchmarks/<rule>/<job>.tsv). Sampling is coarse (0.5 s, "
            "then 30 s), so short jobs under-report memory; the training curves use the trainers' own timers.")
    with atomic_path(html_path) as tmp:
        tmp.write_text(page(title, [("p", note), ("table", (HEADER, rows))]))
