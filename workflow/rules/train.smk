# Timed rules take all cores so that they never overlap (DESIGN.md).


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
    threads: workflow.cores
    params:
        model=config["model"],
        train=config["train"],
        slide=config["slide"],
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
    threads: workflow.cores
    params:
        loss="full",
        model=config["model"],
        train=config["train"],
        tf=config["tf"],
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
    threads: workflow.cores
    params:
        loss="sampled",
        model=config["model"],
        train=config["train"],
        tf=config["tf"],
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/train_tf.py"
