# Rule report_environment: host check + build info as one page of the Snakemake report.
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.report.make import make_environment

    make_environment(snakemake.output[0], check=snakemake.input.check, build=snakemake.input.get("build"),
                     provenance=snakemake.input.provenance)
