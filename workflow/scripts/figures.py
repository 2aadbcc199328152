# Rule figures: one dataset's P@1 vs training time / iterations (logic in slide.report).
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.sweep import load_runs  # exactly the configured runs, grouped per curve
    from slide.report.make import make_figures

    cfg = snakemake.params.figures
    make_figures([Path(f).parent for f in snakemake.input.final], dataset=snakemake.wildcards.dataset,
                 meta=snakemake.input.meta, check=snakemake.input.check,
                 time_paths=[snakemake.output.time_png, snakemake.output.time_pdf],
                 steps_paths=[snakemake.output.steps_png, snakemake.output.steps_pdf],
                 band=cfg.get("band", "minmax"), dpi=cfg.get("dpi", 200), runs=load_runs(snakemake.input.final),
                 target_fraction=cfg["target_fraction"])
