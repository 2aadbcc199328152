# Rule thread_scaling: training time per epoch vs threads of a thread sweep (logic in slide.report).
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.report.make import make_figures
    from slide.sweep import load_runs

    make_figures([Path(f).parent for f in snakemake.input.final], dataset=snakemake.wildcards.dataset,
                 meta=snakemake.input.meta, check=snakemake.input.check,
                 scaling_paths=[snakemake.output.png, snakemake.output.pdf],
                 dpi=snakemake.params.figures.get("dpi", 200), runs=load_runs(snakemake.input.final),
                 scaling_required=True)
