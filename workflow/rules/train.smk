# Timed rules take all cores so that they never overlap (timings stay honest), also in a thread sweep: a sweep run
# holds every core but trains with the sweep's thread count (params.threads), so measured times stay honest.
# Sweep rules (one per system with variants, config `sweep:`) reuse the default rules with per-variant
# outputs, logs, benchmarks and params; the default outputs keep their paths.


rule train_slide:
    input:
        # the built extension: a change to the C++ sources retrains (code tracking does not see them)
        **train_inputs({"build": "results/build/build.json"}),
    output:
        final=f"results/runs/{DATASET}/slide/final.json",
        metrics=f"results/runs/{DATASET}/slide/metrics.csv",
    log:
        f"results/logs/train_slide/{DATASET}.log",
    benchmark:
        f"results/benchmarks/train_slide/{DATASET}.tsv"
    threads: node_threads()
    params:
        model=config["model"],
        train=config["train"],
        slide=config["slide"],
    resources:
        **job_resources("train_slide"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/train_slide.py"


rule train_tf_full:
    input:
        **train_inputs(),
    output:
        final=f"results/runs/{DATASET}/tf_full/final.json",
        metrics=f"results/runs/{DATASET}/tf_full/metrics.csv",
    log:
        f"results/logs/train_tf_full/{DATASET}.log",
    benchmark:
        f"results/benchmarks/train_tf_full/{DATASET}.tsv"
    threads: node_threads()
    params:
        loss="full",
        model=config["model"],
        train=config["train"],
        tf=config["tf"],
    resources:
        **job_resources("train_tf_full"),
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/train_tf.py"


rule train_tf_sampled:
    input:
        **train_inputs(),
    output:
        final=f"results/runs/{DATASET}/tf_sampled/final.json",
        metrics=f"results/runs/{DATASET}/tf_sampled/metrics.csv",
    log:
        f"results/logs/train_tf_sampled/{DATASET}.log",
    benchmark:
        f"results/benchmarks/train_tf_sampled/{DATASET}.tsv"
    threads: node_threads()
    params:
        loss="sampled",
        model=config["model"],
        train=config["train"],
        tf=config["tf"],
    resources:
        **job_resources("train_tf_sampled"),
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/train_tf.py"


# --- sweeps: results/runs/{dataset}/{system}/{variant}/ (slide.sweep) -----------------------------------

if SWEEP_VARIANTS.get("slide"):

    use rule train_slide as train_slide_sweep with:
        output:
            final=f"results/runs/{DATASET}/slide/{{variant}}/final.json",
            metrics=f"results/runs/{DATASET}/slide/{{variant}}/metrics.csv",
        log:
            f"results/logs/train_slide/{DATASET}/{{variant}}.log",
        benchmark:
            f"results/benchmarks/train_slide/{DATASET}/{{variant}}.tsv"
        wildcard_constraints:
            variant=variant_constraint("slide"),
        params:
            model=config["model"],
            train=lambda wildcards: variant_config(wildcards)["train"],
            slide=lambda wildcards: variant_config(wildcards)["slide"],
            threads=variant_threads,


if SWEEP_VARIANTS.get("tf_full"):

    use rule train_tf_full as train_tf_full_sweep with:
        output:
            final=f"results/runs/{DATASET}/tf_full/{{variant}}/final.json",
            metrics=f"results/runs/{DATASET}/tf_full/{{variant}}/metrics.csv",
        log:
            f"results/logs/train_tf_full/{DATASET}/{{variant}}.log",
        benchmark:
            f"results/benchmarks/train_tf_full/{DATASET}/{{variant}}.tsv"
        wildcard_constraints:
            variant=variant_constraint("tf_full"),
        params:
            loss="full",
            model=config["model"],
            train=lambda wildcards: variant_config(wildcards)["train"],
            tf=config["tf"],
            threads=variant_threads,


if SWEEP_VARIANTS.get("tf_sampled"):

    use rule train_tf_sampled as train_tf_sampled_sweep with:
        output:
            final=f"results/runs/{DATASET}/tf_sampled/{{variant}}/final.json",
            metrics=f"results/runs/{DATASET}/tf_sampled/{{variant}}/metrics.csv",
        log:
            f"results/logs/train_tf_sampled/{DATASET}/{{variant}}.log",
        benchmark:
            f"results/benchmarks/train_tf_sampled/{DATASET}/{{variant}}.tsv"
        wildcard_constraints:
            variant=variant_constraint("tf_sampled"),
        params:
            loss="sampled",
            model=config["model"],
            train=lambda wildcards: variant_config(wildcards)["train"],
            tf=config["tf"],
            threads=variant_threads,
