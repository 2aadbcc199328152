# Audit: a table of the heavy rules' `benchmark:` files for the report, and `verify`, which
# re-checks every recorded file against the per-dataset manifests in results/provenance/ (logic in
# slide.benchmarks and slide.verify). Audit commands: docs/scale-out.md.


rule benchmarks:
    """Wall time, peak memory, I/O and CPU time of every heavy job (Snakemake's coarse polling)."""
    input:
        benchmark_files(),
    output:
        csv="results/benchmarks.csv",
        html=report(
            "results/report/benchmarks.html",
            caption="../report/benchmarks.rst",
            category="Benchmarks",
            labels={"table": "benchmark directives"},
        ),
    log:
        "results/logs/benchmarks/benchmarks.log",
    resources:
        **job_resources("benchmarks"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/benchmarks.py"


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


AUDIT_TARGETS = ["results/benchmarks.csv", "results/report/benchmarks.html"]
