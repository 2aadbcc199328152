import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from slide import resources as res
from slide import sweep as sweeps
from slide.config import ConfigError, check_config, load_schema

min_version("9.0")


# Unknown keys (with the nearest valid one), bad values and cross-section SLIDE rules, as one line, before
# any job runs; Snakemake's validate then fills in the schema's defaults.
try:
    check_config(config, load_schema(workflow.source_path("../schemas/config.schema.yaml")))
except ConfigError as e:
    files = ", ".join(str(f) for f in workflow.configfiles) or "--config"
    raise WorkflowError(f"config ({files}): {e}") from None
validate(config, "../schemas/config.schema.yaml")

DATASET = config["dataset"]["name"]
SYSTEMS = config["systems"]
DATA = f"results/data/{DATASET}"
RAW = f"resources/raw/{DATASET}"


def run_dir(system):
    return f"results/runs/{DATASET}/{system}"


# Sweeps (config `sweep:`, slide.sweep): each variant trains into {run_dir(system)}/{variant}/; a system the
# sweep does not vary (TF in a hash-only sweep) keeps its default run. Empty sweep: the default runs only.
SWEEP = config.get("sweep") or {}
SWEEP_VARIANTS = {s: sweeps.variants(SWEEP, s) for s in SYSTEMS}


def run_dirs(system):
    """The run directories of `system` that the configuration asks for."""
    return [f"{run_dir(system)}/{v.name}" for v in SWEEP_VARIANTS[system]] or [run_dir(system)]


RUN_DIRS = [d for s in SYSTEMS for d in run_dirs(s)]


def variant_constraint(system):
    """Wildcard regex matching exactly the configured variant names of `system`."""
    return "|".join(re.escape(v.name) for v in SWEEP_VARIANTS[system]) or "(?!)"


def variant_config(wildcards):
    """model/train/slide config of the sweep variant in `wildcards.variant`."""
    return sweeps.run_config(config, sweeps.parse_variant(wildcards.variant))


def variant_threads(wildcards):
    """The sweep's thread count for the trainer (None: the rule's threads, i.e. all cores)."""
    return sweeps.parse_variant(wildcards.variant).threads


def train_inputs(extra=None):
    """The prepared dataset every training rule reads (plus rule-specific inputs)."""
    return {"train": f"{DATA}/train.npz", "test": f"{DATA}/test.npz", "meta": f"{DATA}/meta.json", **(extra or {})}


def benchmark_files():
    """Benchmark tsvs of the heavy jobs this configuration runs (rules lacking a benchmark directive are skipped).

    Call it once all rules exist (from audit.smk): it reads their benchmark directives.
    """
    files = []
    heavy = ["synthesize", "download", "prepare", "shuffle"] + (["build_native"] if "slide" in SYSTEMS else [])
    defined = {r.name: r for r in workflow.rules}  # e.g. only one of synthesize/download exists
    for name in heavy:
        if name in defined and defined[name].benchmark is not None:  # paths as the rules declare them
            files.append("results/benchmarks/build_native/build.tsv" if name == "build_native"
                         else f"results/benchmarks/{name}/{DATASET}.tsv")
    for s in SYSTEMS:  # the training runs requested: a sweep's variants, or the default run
        variants = SWEEP_VARIANTS[s]
        base = f"results/benchmarks/train_{s}/{DATASET}"
        files += [f"{base}/{v.name}.tsv" for v in variants] or [f"{base}.tsv"]
    return files


def final_targets():
    """What `rule all` asks for; each stage adds its end products here."""
    return [
        "results/system/check.json",
        *(f"{d}/final.json" for d in RUN_DIRS),
        *FIGURE_TARGETS,
        *AUDIT_TARGETS,
    ]


# --- what each job asks for (slide.resources): one place for every profile ----------------------------------
# Memory comes from the data's shape: the config at planning time, the prepared files once they exist
# (Snakemake re-evaluates resources when a job is ready to run). Command-line --default-resources or
# --set-resources are not needed, and cannot remove these.
CLUSTER = res.Cluster.from_config(config.get("cluster"))


def node_threads():
    """threads: of training and build rules: every core Snakemake may use, at most a node's (cluster.cores)."""
    return res.threads(workflow.cores, CLUSTER)


def job_resources(rule):
    """resources: of `rule`: mem_mb from the data's shape, runtime, and the SLURM partition/account if set."""

    def mem_mb(wildcards, threads):
        from slide.data.prepare import raw_sources

        cfg = {**config, **variant_config(wildcards)} if "variant" in wildcards.keys() else config
        shape = res.dataset_shape(config["dataset"], DATA, list(raw_sources(config["dataset"], DATASET).values()))
        return res.mem_mb(rule, shape, cfg, threads, CLUSTER)

    return {"mem_mb": mem_mb, **res.scheduler_resources(rule, CLUSTER)}


onstart:
    # SLURM: compare every planned job with the partition's nodes before submitting anything (slide.cluster)
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        from slide import cluster as slurm

        slurm.preflight([slurm.Request(job.rule.name, job.threads, int(job.resources.get("mem_mb", 0)),
                                       job.resources.get("runtime"), job.resources.get("slurm_partition"))
                         for job in workflow.dag.needrun_jobs()])
