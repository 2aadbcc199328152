# Rule summary: final P@k, time to target, speedups, missing runs (logic in slide.report).
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.sweep import load_runs  # exactly the configured runs, grouped per curve
    from slide.report.make import make_summary

    make_summary([Path(f).parent for f in snakemake.input.final], dataset=snakemake.wildcards.dataset,
                 target_fraction=snakemake.params.figures["target_fraction"], meta=snakemake.input.meta,
                 check=snakemake.input.check, csv_path=snakemake.output.csv, md_path=snakemake.output.md,
                 html_path=snakemake.output.html, rule=snakemake.params.figures.get("target_rule", "first"),
                 runs=load_runs(snakemake.input.final))
