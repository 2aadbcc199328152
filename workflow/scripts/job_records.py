# Rule job_records: the heavy rules' benchmark tsvs as one table (logic in slide.job_records).
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.job_records import job_record_table, write_table

    write_table(job_record_table(snakemake.input), snakemake.output.csv, snakemake.output.html)
