"""Former name of slide.job_records (the table of Snakemake's `benchmark:` files), kept until
workflow/scripts/benchmarks.py imports slide.job_records; then delete this module."""
from .job_records import COLUMNS, HEADER, job_record_table, read_benchmark, write_table  # noqa: F401

benchmark_table = job_record_table
