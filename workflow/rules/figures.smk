# Figures, summary, provenance and the pages of `snakemake --report results/report.html` .
# Logic lives in slide.report; the scripts only pass paths. Inputs are the configured systems' runs.

report: "../report/workflow.rst"


# build.json only exists when the native core is built, which only SLIDE needs
BUILD_INFO = ["results/build/build.json"] if "slide" in SYSTEMS else []
# One provenance manifest per dataset, so that `verify` checks every dataset's run, not only the last one.
PROVENANCE = f"results/provenance/{DATASET}.json"
THREAD_SCALING = len(SWEEP.get("threads") or []) > 1


# every configured run (RUN_DIRS: the default runs, or a sweep's variants); the scripts load exactly these
_FINALS = [f"{d}/final.json" for d in RUN_DIRS]
_METRICS = [f"{d}/metrics.csv" for d in RUN_DIRS]
_REPORT_INPUTS = {
    "final": _FINALS,
    "metrics": _METRICS,
    "meta": f"{DATA}/meta.json",
    "check": "results/system/check.json",
}
# runs are the final.json inputs (config order), grouped per system (+ swept hash setting) by slide.sweep
_REPORT_PARAMS = {"dataset": DATASET, "figures": config["figures"]}


rule figures:
    input:
        **_REPORT_INPUTS,
    output:
        time_png=report(
            "results/figures/time_vs_p1.png",
            caption="../report/time_vs_p1.rst",
            category="Figures",
            labels={"figure": "P@1 vs training time"},
        ),
        time_pdf="results/figures/time_vs_p1.pdf",
        steps_png=report(
            "results/figures/steps_vs_p1.png",
            caption="../report/steps_vs_p1.rst",
            category="Figures",
            labels={"figure": "P@1 vs iterations"},
        ),
        steps_pdf="results/figures/steps_vs_p1.pdf",
    log:
        "results/logs/figures/figures.log",
    params:
        **_REPORT_PARAMS,
    resources:
        **job_resources("figures"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/figures.py"


rule summary:
    input:
        **_REPORT_INPUTS,
    output:
        csv=report(
            "results/summary.csv",
            caption="../report/summary_csv.rst",
            category="Summary",
            labels={"table": "summary (CSV)"},
        ),
        md="results/summary.md",
        html=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "summary"},
        ),
    log:
        "results/logs/summary/summary.log",
    params:
        **_REPORT_PARAMS,
    resources:
        **job_resources("summary"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/summary.py"


rule provenance:
    input:
        final=_FINALS,
        metrics=_METRICS,
        meta=f"{DATA}/meta.json",
        data=[f"{DATA}/train.npz", f"{DATA}/test.npz"]
        + [f"{DATA}/unshuffled/{f}" for f in ("train.npz", "test.npz", "info.json")],
        check="results/system/check.json",
        # the figures and summaries of this run, so that `verify` covers them too
        outputs=[
            f"results/figures/{name}.{ext}"
            for name in ["time_vs_p1", "steps_vs_p1"] + (["thread_scaling"] if THREAD_SCALING else [])
            for ext in ("png", "pdf")
        ]
        + ["results/summary.csv", "results/summary.md", "results/report/summary.html"],
        **({"build": BUILD_INFO[0]} if BUILD_INFO else {}),
    output:
        report(
            PROVENANCE,
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "provenance.json"},
        ),
    log:
        "results/logs/provenance/provenance.log",
    params:
        config=config,  # a config change rewrites the record
    resources:
        **job_resources("provenance"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/provenance.py"


rule report_environment:
    input:
        check="results/system/check.json",
        provenance=PROVENANCE,
        **({"build": BUILD_INFO[0]} if BUILD_INFO else {}),
    output:
        report(
            "results/report/environment.html",
            caption="../report/environment.rst",
            category="Host and build",
            labels={"page": "host check and native build"},
        ),
    log:
        "results/logs/report_environment/environment.log",
    resources:
        **job_resources("report_environment"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/report_environment.py"


FIGURE_TARGETS = [
    "results/figures/time_vs_p1.png",
    "results/figures/time_vs_p1.pdf",
    "results/figures/steps_vs_p1.png",
    "results/figures/steps_vs_p1.pdf",
    "results/summary.csv",
    "results/summary.md",
    "results/report/summary.html",
    PROVENANCE,
    "results/report/environment.html",
]


# A thread sweep (several sweep.threads) also draws training time per epoch against threads, per system.
if THREAD_SCALING:

    rule thread_scaling:
        input:
            **_REPORT_INPUTS,
        output:
            png=report(
                "results/figures/thread_scaling.png",
                caption="../report/thread_scaling.rst",
                category="Figures",
                labels={"figure": "time per epoch vs threads"},
            ),
            pdf="results/figures/thread_scaling.pdf",
        log:
            "results/logs/figures/thread_scaling.log",
        params:
            **_REPORT_PARAMS,
        resources:
            **job_resources("thread_scaling"),
        conda:
            "../../envs/slide.yaml"
        script:
            "../scripts/thread_scaling.py"

    FIGURE_TARGETS += ["results/figures/thread_scaling.png", "results/figures/thread_scaling.pdf"]
