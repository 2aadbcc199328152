# Rule combined_summary: every dataset's summary.csv in one table (logic in slide.report).
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.report.make import make_combined_summary

    sm = snakemake  # noqa: F821
    make_combined_summary(dict(zip(sm.params.datasets, sm.input.csv)), csv_path=sm.output.csv, md_path=sm.output.md,
                          html_path=sm.output.html, target_fraction=sm.params.figures["target_fraction"])
