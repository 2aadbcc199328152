"""Figures and summary outside Snakemake, e.g. for sweeps (several seeds / thread counts per system):

    python -m slide.report results/runs/synthetic --out results/sweep --meta results/data/synthetic/meta.json \
        --check results/system/check.json

writes time_vs_p1, steps_vs_p1 (and thread_scaling when several thread counts exist) as PNG + PDF,
summary.csv and summary.md into --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .make import make_figures, make_summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slide.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs_root", type=Path, help="results/runs/<dataset>: one directory per system")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--systems", nargs="+", default=["slide", "tf_full", "tf_sampled"])
    ap.add_argument("--dataset", help="name in titles (default: the runs_root directory name)")
    ap.add_argument("--meta", help="meta.json of the dataset (majority-label baseline)")
    ap.add_argument("--check", help="check.json of the host (CPU model and cores in titles)")
    ap.add_argument("--target-fraction", type=float, default=0.9)
    ap.add_argument("--target-rule", choices=["first", "sustained"], default="first")
    ap.add_argument("--band", choices=["minmax", "sd"], default="minmax")
    a = ap.parse_args(argv)
    dirs = [a.runs_root / s for s in a.systems]
    dataset = a.dataset or a.runs_root.name
    try:
        written = make_figures(dirs, dataset=dataset, meta=a.meta, check=a.check, band=a.band,
                               **{f"{k}_paths": [a.out / f"{n}.png", a.out / f"{n}.pdf"] for k, n in
                                  (("time", "time_vs_p1"), ("steps", "steps_vs_p1"), ("scaling", "thread_scaling"))})
        make_summary(dirs, dataset=dataset, target_fraction=a.target_fraction, meta=a.meta, check=a.check,
                     csv_path=a.out / "summary.csv", md_path=a.out / "summary.md", rule=a.target_rule)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in [*written, a.out / "summary.csv", a.out / "summary.md"]:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
