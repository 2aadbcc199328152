# Figures, summaries, provenance and the pages of `snakemake --report results/report.html`.
# Per dataset: results/figures/{dataset}/, results/summary/{dataset}/, results/provenance/{dataset}.json, so that
# another configuration's run never overwrites them. Over every configured dataset: the paper's figure
# (results/figures/paper_time_vs_p1.*, one panel per dataset) and the combined summary (results/summary.*).
# Logic lives in slide.report; the scripts only pass paths. Inputs are the configured systems' runs.

report: "../report/workflow.rst"


rule figures:
    input:
        unpack(report_inputs),
    output:
        time_png=report(
            "results/figures/{dataset}/time_vs_p1.png",
            caption="../report/time_vs_p1.rst",
            category="Figures",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "P@1 vs training time"},
        ),
        time_pdf="results/figures/{dataset}/time_vs_p1.pdf",
        steps_png=report(
            "results/figures/{dataset}/steps_vs_p1.png",
            caption="../report/steps_vs_p1.rst",
            category="Figures",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "P@1 vs iterations"},
        ),
        steps_pdf="results/figures/{dataset}/steps_vs_p1.pdf",
    wildcard_constraints:
        dataset=DATASET_RE,
    log:
        "results/logs/figures/{dataset}.log",
    params:
        figures=canonical(config["figures"]),
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/figures.py"


rule summary:
    input:
        unpack(report_inputs),
    output:
        csv=report(
            "results/summary/{dataset}/summary.csv",
            caption="../report/summary_csv.rst",
            category="Summary",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "summary (CSV)"},
        ),
        md="results/summary/{dataset}/summary.md",
        html=report(
            "results/summary/{dataset}/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "summary"},
        ),
    wildcard_constraints:
        dataset=DATASET_RE,
    log:
        "results/logs/summary/{dataset}.log",
    params:
        figures=canonical(config["figures"]),
    resources:
        **job_resources("summary"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/summary.py"


rule paper_figure:
    """The paper's Figure 5: P@1 against training time, one panel per dataset, every system."""
    input:
        unpack(all_report_inputs),
    output:
        png=report(
            "results/figures/paper_time_vs_p1.png",
            caption="../report/paper_time_vs_p1.rst",
            category="Figures",
            subcategory="all datasets",
            labels={"dataset": "all", "figure": "P@1 vs training time, one panel per dataset"},
        ),
        pdf="results/figures/paper_time_vs_p1.pdf",
    log:
        "results/logs/figures/paper_time_vs_p1.log",
    params:
        datasets=DATASETS,
        figures=canonical(config["figures"]),
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/paper_figure.py"


rule combined_summary:
    """Every dataset's summary table in one (a dataset column first)."""
    input:
        csv=[f"results/summary/{ds}/summary.csv" for ds in DATASETS],
    output:
        csv="results/summary.csv",
        md="results/summary.md",
        html=report(
            "results/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            subcategory="all datasets",
            labels={"dataset": "all", "table": "summary"},
        ),
    log:
        "results/logs/summary/combined.log",
    params:
        datasets=DATASETS,
        figures=canonical(config["figures"]),
    resources:
        **job_resources("summary"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/combined_summary.py"


rule provenance:
    input:
        unpack(provenance_inputs),
    output:
        report(
            "results/provenance/{dataset}.json",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"dataset": "{dataset}", "file": "provenance.json"},
        ),
    wildcard_constraints:
        dataset=DATASET_RE,
    log:
        "results/logs/provenance/{dataset}.log",
    params:
        config=lambda wildcards: dcfg(wildcards),  # a config change rewrites the record
    resources:
        **job_resources("provenance"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/provenance.py"


rule report_environment:
    input:
        check="results/system/check.json",
        provenance="results/provenance/{dataset}.json",
        **({"build": BUILD_INFO[0]} if BUILD_INFO else {}),
    output:
        report(
            "results/report/{dataset}/environment.html",
            caption="../report/environment.rst",
            category="Host and build",
            labels={"dataset": "{dataset}", "page": "host check and native build"},
        ),
    wildcard_constraints:
        dataset=DATASET_RE,
    log:
        "results/logs/report_environment/{dataset}.log",
    resources:
        **job_resources("report_environment"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/report_environment.py"


FIGURE_TARGETS = [
    *(f for ds in DATASETS for f in figure_files(ds) + summary_files(ds)),
    *(f"results/provenance/{ds}.json" for ds in DATASETS),
    *(f"results/report/{ds}/environment.html" for ds in DATASETS),
    "results/figures/paper_time_vs_p1.png",
    "results/figures/paper_time_vs_p1.pdf",
    "results/summary.csv",
    "results/summary.md",
    "results/summary.html",
]


# A thread sweep (several sweep.threads) also draws training time per epoch against threads, per system.
if THREAD_SCALING:

    rule thread_scaling:
        input:
            unpack(report_inputs),
        output:
            png=report(
                "results/figures/{dataset}/thread_scaling.png",
                caption="../report/thread_scaling.rst",
                category="Figures",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "figure": "time per epoch vs threads"},
            ),
            pdf="results/figures/{dataset}/thread_scaling.pdf",
        wildcard_constraints:
            dataset=DATASET_RE,
        log:
            "results/logs/figures/{dataset}-thread_scaling.log",
        params:
            figures=canonical(config["figures"]),
        resources:
            **job_resources("thread_scaling"),
        conda:
            "../../envs/slide.yaml"
        script:
            "../scripts/thread_scaling.py"
