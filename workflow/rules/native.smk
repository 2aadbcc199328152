rule build_native:
    """Build the C++ SLIDE core tuned for the checked host into results/build/ (extension + build.json)."""
    input:
        sources=sorted(str(p) for p in Path("native").rglob("*") if p.is_file()),
        check="results/system/check.json",
    output:
        "results/build/build.json",
    log:
        "results/logs/build_native/build.log",
    benchmark:
        "results/benchmarks/build_native/build.tsv"
    threads: node_threads()
    resources:
        **job_resources("build_native"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/build_native.py"
