# Rule paper_figure: P@1 vs training time, one panel per dataset (logic in slide.report).
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.report.make import make_paper_figure
    from slide.sweep import load_runs  # exactly the configured runs, grouped per curve

    sm = snakemake  # noqa: F821
    datasets = list(sm.params.datasets)
    # inputs come in config order; a run's dataset is the folder below results/runs/
    finals = {ds: [f for f in sm.input.final if Path(f).parts[:3] == ("results", "runs", ds)] for ds in datasets}
    metas = dict(zip(datasets, sm.input.meta))
    make_paper_figure({ds: load_runs(fs) for ds, fs in finals.items()}, metas, paths=[sm.output.png, sm.output.pdf],
                      check=sm.input.check, target_fraction=sm.params.figures["target_fraction"],
                      band=sm.params.figures.get("band", "minmax"), dpi=sm.params.figures.get("dpi", 200))
