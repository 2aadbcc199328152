# Data stage, per dataset: synthesize | download | local -> prepare -> shuffle -> results/data/{dataset}/
# Raw text: resources/raw/{dataset}/{train,test}.txt (synthetic, download); local files are read in place.
# synthesize and download exist for the datasets of their source only, so every raw file has exactly one producer.
import sys

from slide.data.prepare import raw_sources


if datasets_from("synthetic"):

    rule synthesize:
        """Seeded synthetic data with Amazon-670K's shape (dataset.synthetic)."""
        output:
            train="resources/raw/{dataset}/train.txt",
            test="resources/raw/{dataset}/test.txt",
        wildcard_constraints:
            dataset=alternatives(datasets_from("synthetic")),
        log:
            "results/logs/synthesize/{dataset}.log",
        benchmark:
            "results/benchmarks/synthesize/{dataset}.tsv"
        params:
            synthetic=lambda wildcards: dcfg(wildcards)["dataset"].get("synthetic") or {},
        resources:
            **job_resources("synthesize"),
        conda:
            "../../envs/slide.yaml"
        script:
            "../scripts/synthesize.py"


if datasets_from("download"):

    rule download:
        """Resumable, sha256-verified download + safe extraction (dataset.download)."""
        output:
            train="resources/raw/{dataset}/train.txt",
            test="resources/raw/{dataset}/test.txt",
        wildcard_constraints:
            dataset=alternatives(datasets_from("download")),
        log:
            "results/logs/download/{dataset}.log",
        benchmark:
            "results/benchmarks/download/{dataset}.tsv"
        params:
            download=lambda wildcards: dcfg(wildcards)["dataset"].get("download") or {},
            cache=lambda wildcards: f"resources/download/{wildcards.dataset}",
        resources:
            **job_resources("download"),
        conda:
            "../../envs/slide.yaml"
        script:
            "../scripts/download.py"


for _ds in datasets_from("local"):
    # Snakemake's MissingInputException lists the files; say where they come from
    _missing = [p for p in raw_sources(dcfg(_ds)["dataset"], _ds).values() if not Path(p).is_file()]
    if _missing:
        print(f"dataset '{_ds}': dataset.local names missing file(s): {', '.join(_missing)} -- put the "
              "dataset's files there (see the comment at the top of its config/*.yaml and README.md, \"Your own data\")",
              file=sys.stderr)


rule prepare:
    """Parse and validate the raw text into CSR (unshuffled) + the sources' sha256."""
    input:
        unpack(lambda wildcards: raw_sources(dcfg(wildcards)["dataset"], wildcards.dataset)),
    output:
        train="results/data/{dataset}/unshuffled/train.npz",
        test="results/data/{dataset}/unshuffled/test.npz",
        info="results/data/{dataset}/unshuffled/info.json",
    wildcard_constraints:
        dataset=DATASET_RE,
    log:
        "results/logs/prepare/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}.tsv"
    params:
        n_features=lambda wildcards: dcfg(wildcards)["dataset"].get("n_features"),
        n_labels=lambda wildcards: dcfg(wildcards)["dataset"].get("n_labels"),
        split_column=lambda wildcards: (dcfg(wildcards)["dataset"].get("local") or {}).get("split_column", 1),
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
        dataset=DATASET_RE,
    log:
        "results/logs/shuffle/{dataset}.log",
    benchmark:
        "results/benchmarks/shuffle/{dataset}.tsv"
    params:
        seed=lambda wildcards: dcfg(wildcards)["dataset"].get("shuffle_seed", 0),
        # prepare's settings again: a config change then reruns the data stage even when a failed prepare
        # left no intermediate files behind (Snakemake compares params only of jobs whose outputs exist)
        prepare=prepare_settings,
    resources:
        **job_resources("shuffle"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/shuffle.py"
