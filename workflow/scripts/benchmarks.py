# Rule benchmarks: the heavy rules' benchmark tsvs as one table (logic in slide.benchmarks).
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.benchmarks import benchmark_table, write_table

    write_table(benchmark_table(snakemake.input), snakemake.output.csv, snakemake.output.html)
