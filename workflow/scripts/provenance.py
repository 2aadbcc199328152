# Rule provenance: results/provenance/<dataset>.json (logic in slide.report.provenance).
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.sweep import load_runs  # exactly the configured runs, grouped per curve
    from slide.report.make import make_provenance

    make_provenance(snakemake.params.config, snakemake.output[0],
                    system_dirs=[Path(f).parent for f in snakemake.input.final], meta=snakemake.input.meta,
                    data_files=snakemake.input.data, check=snakemake.input.check,
                    build=snakemake.input.get("build"), runs=load_runs(snakemake.input.final),
                    outputs=snakemake.input.outputs)
