# Data stage: synthesize | download | local -> prepare -> shuffle -> results/data/{dataset}/
# Raw text: resources/raw/{dataset}/{train,test}.txt (synthetic, download); local files are read in place.
# Only the rule for the configured dataset.source exists, so the raw files have exactly one producer.
import re
import sys

from slide.data.prepare import raw_sources

DATASET_CFG = config["dataset"]
_DS = {"dataset": re.escape(DATASET)}  # the rules below know only the configured dataset


if DATASET_CFG["source"] == "synthetic":

    rule synthesize:
        """Seeded synthetic data with Amazon-670K's shape (dataset.synthetic)."""
        output:
            train="resources/raw/{dataset}/train.txt",
            test="resources/raw/{dataset}/test.txt",
        wildcard_constraints:
            **_DS,
        log:
            "results/logs/synthesize/{dataset}.log",
        benchmark:
            "results/benchmarks/synthesize/{dataset}.tsv"
        params:
            synthetic=DATASET_CFG.get("synthetic") or {},
        resources:
            **job_resources("synthesize"),
        conda:
            "../../envs/slide.yaml"
        script:
            "../scripts/synthesize.py"


if DATASET_CFG["source"] == "download":

    rule download:
        """Resumable, sha256-verified download + safe extraction (dataset.download)."""
        output:
            train="resources/raw/{dataset}/train.txt",
            test="resources/raw/{dataset}/test.txt",
        wildcard_constraints:
            **_DS,
        log:
            "results/logs/download/{dataset}.log",
        benchmark:
            "results/benchmarks/download/{dataset}.tsv"
        params:
            download=DATASET_CFG.get("download") or {},
            cache=lambda wildcards: f"resources/download/{wildcards.dataset}",
        resources:
            **job_resources("download"),
        conda:
            "../../envs/slide.yaml"
        script:
            "../scripts/download.py"


if DATASET_CFG["source"] == "local":
    # Snakemake's MissingInputException lists the files; say where they come from
    _missing = [p for p in raw_sources(DATASET_CFG, DATASET).values() if not Path(p).is_file()]
    if _missing:
        print(f"dataset '{DATASET}': dataset.local names missing file(s): {', '.join(_missing)} -- put the "
              "dataset's files there (see the comment at the top of its config/*.yaml and README.md, \"Your own data\")",
              file=sys.stderr)


rule prepare:
    """Parse and validate the raw text into CSR (unshuffled) + the sources' sha256."""
    input:
        unpack(lambda wildcards: raw_sources(DATASET_CFG, wildcards.dataset)),
    output:
        train="results/data/{dataset}/unshuffled/train.npz",
        test="results/data/{dataset}/unshuffled/test.npz",
        info="results/data/{dataset}/unshuffled/info.json",
    wildcard_constraints:
        **_DS,
    log:
        "results/logs/prepare/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}.tsv"
    params:
        n_features=DATASET_CFG.get("n_features"),
        n_labels=DATASET_CFG.get("n_labels"),
        split_column=(DATASET_CFG.get("local") or {}).get("split_column", 1),
    resources:
        **job_resources("prepare"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/prepare.py"


rule shuffle:
    """Seeded permutation of both splits (the raw files are sorted by label) + meta.json."""
    input:
        train="results/data/{dataset}/unshuffled/train.npz",
        test="results/data/{dataset}/unshuffled/test.npz",
        info="results/data/{dataset}/unshuffled/info.json",
    output:
        train="results/data/{dataset}/train.npz",
        test="results/data/{dataset}/test.npz",
        meta="results/data/{dataset}/meta.json",
    wildcard_constraints:
        **_DS,
    log:
        "results/logs/shuffle/{dataset}.log",
    benchmark:
        "results/benchmarks/shuffle/{dataset}.tsv"
    params:
        seed=DATASET_CFG.get("shuffle_seed", 0),
        # prepare's settings again: a config change then reruns the data stage even when a failed prepare
        # left no intermediate files behind (Snakemake compares params only of jobs whose outputs exist)
        prepare={k: DATASET_CFG.get(k) for k in ("source", "n_features", "n_labels", "local", "download", "synthetic")},
    resources:
        **job_resources("shuffle"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/shuffle.py"
