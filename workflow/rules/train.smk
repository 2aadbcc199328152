# Training: one rule per engine, keyed by {dataset} (and {system} where an engine serves several systems):
# train_slide, train_tf (tf_full, tf_sampled) and train_parabel (off by default), each writing
# run_dir(dataset, system)/{final.json, metrics.csv, model}.
# Timed rules take all cores so that they never overlap (timings stay honest), also in a thread sweep: a sweep run
# holds every core but trains with the sweep's thread count (params.threads), so measured times stay honest.
# Sweep rules (config `sweep:`) reuse these rules with per-variant outputs, logs and benchmarks
# (results/runs/{dataset}/{system}/{variant}/); the default outputs keep their paths.

if "slide" in SYSTEMS:

    rule train_slide:
        input:
            # the built extension: a change to the C++ sources retrains (code tracking does not see them)
            **train_inputs({"build": "results/build/build.json"}),
        output:
            final=run_file("{dataset}", "slide", "final.json"),
            metrics=run_file("{dataset}", "slide", "metrics.csv"),
        wildcard_constraints:
            dataset=DATASET_RE,
        log:
            "results/logs/train_slide/{dataset}.log",
        benchmark:
            "results/benchmarks/train_slide/{dataset}.tsv"
        threads: node_threads()
        params:
            model=lambda wildcards: dcfg(wildcards)["model"],
            train=lambda wildcards: train_config(wildcards, "slide"),
            slide=slide_config,
        resources:
            **job_resources("train_slide"),
        conda:
            "../../envs/slide.yaml"
        script:
            "../scripts/train_slide.py"


if TF_SYSTEMS:

    rule train_tf:
        """TensorFlow baselines: {system} is tf_full (full softmax) or tf_sampled (sampled softmax)."""
        input:
            **train_inputs(),
        output:
            final=run_file("{dataset}", "{system}", "final.json"),
            metrics=run_file("{dataset}", "{system}", "metrics.csv"),
        wildcard_constraints:
            dataset=DATASET_RE,
            system=alternatives(TF_SYSTEMS),
        log:
            "results/logs/train_{system}/{dataset}.log",
        benchmark:
            "results/benchmarks/train_{system}/{dataset}.tsv"
        threads: node_threads()
        params:
            loss=lambda wildcards: TF_LOSS[wildcards.system],
            model=lambda wildcards: dcfg(wildcards)["model"],
            train=train_config,
            tf=lambda wildcards: dcfg(wildcards)["tf"],
        resources:
            **job_resources("train_tf"),
        conda:
            "../../envs/tensorflow.yaml"
        script:
            "../scripts/train_tf.py"


if "parabel" in SYSTEMS:

    rule train_parabel:
        """Parabel label trees (the omikuji package): a non-neural reference, one point per dataset."""
        input:
            **train_inputs(),
        output:
            final=run_file("{dataset}", "parabel", "final.json"),
            metrics=run_file("{dataset}", "parabel", "metrics.csv"),
        wildcard_constraints:
            dataset=DATASET_RE,
        log:
            "results/logs/train_parabel/{dataset}.log",
        benchmark:
            "results/benchmarks/train_parabel/{dataset}.tsv"
        threads: node_threads()
        params:
            model=lambda wildcards: dcfg(wildcards)["model"],
            train=lambda wildcards: train_config(wildcards, "parabel"),
            parabel=lambda wildcards: dcfg(wildcards).get("parabel") or {},
        resources:
            **job_resources("train_parabel"),
        conda:
            "../../envs/parabel.yaml"
        script:
            "../scripts/train_parabel.py"


# --- sweeps: results/runs/{dataset}/{system}/{variant}/ (slide.sweep) -----------------------------------

if SWEEP_VARIANTS.get("slide"):

    use rule train_slide as train_slide_sweep with:
        output:
            final=run_file("{dataset}", "slide", "{variant}/final.json"),
            metrics=run_file("{dataset}", "slide", "{variant}/metrics.csv"),
        log:
            "results/logs/train_slide/{dataset}/{variant}.log",
        benchmark:
            "results/benchmarks/train_slide/{dataset}/{variant}.tsv"
        wildcard_constraints:
            dataset=DATASET_RE,
            variant=variant_constraint(["slide"]),
        params:
            model=lambda wildcards: dcfg(wildcards)["model"],
            train=lambda wildcards: train_config(wildcards, "slide"),
            slide=slide_config,
            threads=variant_threads,


if any(SWEEP_VARIANTS.get(s) for s in TF_SYSTEMS):

    use rule train_tf as train_tf_sweep with:
        output:
            final=run_file("{dataset}", "{system}", "{variant}/final.json"),
            metrics=run_file("{dataset}", "{system}", "{variant}/metrics.csv"),
        log:
            "results/logs/train_{system}/{dataset}/{variant}.log",
        benchmark:
            "results/benchmarks/train_{system}/{dataset}/{variant}.tsv"
        wildcard_constraints:
            dataset=DATASET_RE,
            system=alternatives([s for s in TF_SYSTEMS if SWEEP_VARIANTS[s]]),
            variant=variant_constraint(TF_SYSTEMS),
        params:
            loss=lambda wildcards: TF_LOSS[wildcards.system],
            model=lambda wildcards: dcfg(wildcards)["model"],
            train=train_config,
            tf=lambda wildcards: dcfg(wildcards)["tf"],
            threads=variant_threads,
