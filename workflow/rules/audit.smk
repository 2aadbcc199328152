# Audit: job_records, a table of the heavy rules' `benchmark:` files (Snakemake's own timing of each job,
# not the benchmark scripts of benchmarks/), and `verify`, which re-checks every recorded file against the
# per-dataset manifests in results/provenance/ (logic in slide.job_records and slide.verify). Audit
# commands: docs/scale-out.md.


rule job_records:
    """Wall time, peak memory, I/O and CPU time of every heavy job (Snakemake's coarse polling)."""
    input:
        benchmark_files(),
    output:
        csv="results/job_records.csv",
        html=report(
            "results/report/job_records.html",
            caption="../report/job_records.rst",
            category="Job records",
            labels={"table": "benchmark directives"},
        ),
    log:
        "results/logs/job_records/job_records.log",
    resources:
        **job_resources("job_records"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/job_records.py"


rule verify:
    """Fail loudly when a recorded file differs from its manifest in results/provenance/ (every dataset).

    No input and no output on purpose: it runs every time it is asked for (`snakemake --cores 1 verify`),
    and never makes Snakemake rebuild the manifest from the very files it is meant to check.
    """
    log:
        "results/logs/verify/verify.log",
    resources:
        **job_resources("verify"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/verify.py"


AUDIT_TARGETS = ["results/job_records.csv", "results/report/job_records.html"]
