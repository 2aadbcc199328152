import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from slide import resources as res
from slide import sweep as sweeps
from slide.config import ConfigError, check_config, dataset_config, dataset_entries, load_schema
from slide.pipeline import script_interpreter_error

min_version("9.0")

# Snakemake runs script rules with its own interpreter's path unquoted: one clear error instead of every job
# failing with exit status 127.
if (_python_error := script_interpreter_error(sys.executable)) is not None:
    raise WorkflowError(_python_error)


# Unknown keys (with the nearest valid one), bad values and cross-section SLIDE rules, for every dataset, as one
# line, before any job runs; Snakemake's validate then fills in the schema's defaults.
# Config files in precedence order (config/config.yaml first): a later file's `dataset:` replaces the list in
# an earlier file's `datasets:`, and the other way round.
_CONFIG_FILES = [f for f in workflow.configfiles if f not in workflow.overwrite_configfiles] + list(
    workflow.overwrite_configfiles
)
try:
    check_config(config, load_schema(workflow.source_path("../schemas/config.schema.yaml")), _CONFIG_FILES,
                 dict(workflow.config_settings.config))
except ConfigError as e:
    files = ", ".join(str(f) for f in workflow.overwrite_configfiles or workflow.configfiles) or "--config"
    raise WorkflowError(f"config ({files}): {e}") from None
validate(config, "../schemas/config.schema.yaml")


def canonical(value):
    """`value` with every mapping's keys sorted: Snakemake compares params as text, so the same settings written
    in another order (a dataset moved from `dataset:` into a `datasets:` list) must not rerun anything."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


# Every dataset's own configuration (its entry, with its model/train/slide/tf/parabel overrides merged in)
DATASET_CONFIGS = {
    e["name"]: canonical(dataset_config(config, e))
    for e in dataset_entries(config, _CONFIG_FILES, dict(workflow.config_settings.config))
}
DATASETS = list(DATASET_CONFIGS)
SYSTEMS = config["systems"]
# The systems each training rule serves (each rule exists only when one of its systems is configured)
TF_SYSTEMS = [s for s in SYSTEMS if s in ("tf_full", "tf_sampled")]
TF_LOSS = {"tf_full": "full", "tf_sampled": "sampled"}


def alternatives(names):
    """Wildcard regex matching exactly `names` (never anything when empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


DATASET_RE = alternatives(DATASETS)


def dcfg(dataset):
    """The configuration of `dataset` (a name or wildcards)."""
    return DATASET_CONFIGS[getattr(dataset, "dataset", dataset)]


def data_dir(dataset):
    return f"results/data/{dataset}"


def run_dir(dataset, system):
    """Where one system's default run on one dataset writes (final.json, metrics.csv, model)."""
    return f"results/runs/{dataset}/{system}"


def run_file(dataset, system, name):
    return f"{run_dir(dataset, system)}/{name}"


def datasets_from(source):
    """The configured datasets whose raw files come from `source` (synthetic | download | local)."""
    return [ds for ds in DATASETS if dcfg(ds)["dataset"]["source"] == source]


def prepare_settings(wildcards):
    """The dataset settings that define its prepared files."""
    ds = dcfg(wildcards)["dataset"]
    return {k: ds.get(k) for k in ("source", "n_features", "n_labels", "local", "download", "synthetic")}


# Sweeps (config `sweep:`, slide.sweep): each variant trains into {run_dir}/{variant}/; a system the sweep does
# not vary (TF in a hash-only sweep, parabel) keeps its default run. Empty sweep: the default runs only.
SWEEP = config.get("sweep") or {}
SWEEP_VARIANTS = {s: (sweeps.variants(SWEEP, s) if s != "parabel" else []) for s in SYSTEMS}


def run_dirs(dataset, system):
    """The run directories of `system` on `dataset` that the configuration asks for."""
    return [f"{run_dir(dataset, system)}/{v.name}" for v in SWEEP_VARIANTS[system]] or [run_dir(dataset, system)]


def dataset_run_dirs(dataset):
    return [d for s in SYSTEMS for d in run_dirs(dataset, s)]


def variant_constraint(systems):
    """Wildcard regex matching exactly the configured variant names of `systems`."""
    return alternatives(sorted({v.name for s in systems for v in SWEEP_VARIANTS[s]}))


def train_config(wildcards, system=None):
    """The train section one run uses: its dataset's, with the system's caps (train.caps) applied and the sweep
    variant's seed; `caps` itself is left out, so another system's caps never retrain this one."""
    system = system or wildcards.system
    cfg = dcfg(wildcards)
    if "variant" in wildcards.keys():
        cfg = {**cfg, **sweeps.run_config(cfg, sweeps.parse_variant(wildcards.variant))}
    train = {k: v for k, v in cfg["train"].items() if k != "caps"}
    train.update((cfg["train"].get("caps") or {}).get(system) or {})
    return canonical(train)


def slide_config(wildcards):
    """The slide section one SLIDE run uses (a sweep variant's hash setting applied)."""
    cfg = dcfg(wildcards)
    if "variant" in wildcards.keys():
        return sweeps.run_config(cfg, sweeps.parse_variant(wildcards.variant))["slide"]
    return cfg["slide"]


def variant_threads(wildcards):
    """The sweep's thread count for the trainer (None: the rule's threads, i.e. all cores)."""
    return sweeps.parse_variant(wildcards.variant).threads if "variant" in wildcards.keys() else None


def train_inputs(extra=None):
    """The prepared dataset every training rule reads (plus rule-specific inputs)."""
    return {
        "train": "results/data/{dataset}/train.npz",
        "test": "results/data/{dataset}/test.npz",
        "meta": "results/data/{dataset}/meta.json",
        **(extra or {}),
    }


def benchmark_files():
    """Benchmark tsvs of the heavy jobs this configuration runs (rules lacking a benchmark directive are skipped).

    Call it once all rules exist (from audit.smk): it reads their benchmark directives.
    """
    files = ["results/benchmarks/build_native/build.tsv"] if "slide" in SYSTEMS else []
    defined = {r.name for r in workflow.rules}  # e.g. only one of synthesize/download exists
    for ds in DATASETS:
        source = dcfg(ds)["dataset"]["source"]
        for name in ["synthesize", "download", "prepare", "shuffle"]:
            if name in defined and (name not in ("synthesize", "download") or source == name):
                files.append(f"results/benchmarks/{name}/{ds}.tsv")
        for s in SYSTEMS:  # the training runs requested: a sweep's variants, or the default run
            base = f"results/benchmarks/train_{s}/{ds}"
            files += [f"{base}/{v.name}.tsv" for v in SWEEP_VARIANTS[s]] or [f"{base}.tsv"]
    return files


# --- inputs of the figures, summaries and provenance (figures.smk) ------------------------------------------
# build.json only exists when the native core is built, which only SLIDE needs
BUILD_INFO = ["results/build/build.json"] if "slide" in SYSTEMS else []
THREAD_SCALING = len(SWEEP.get("threads") or []) > 1


def figure_files(dataset):
    names = ["time_vs_p1", "steps_vs_p1"] + (["thread_scaling"] if THREAD_SCALING else [])
    return [f"results/figures/{dataset}/{name}.{ext}" for name in names for ext in ("png", "pdf")]


def summary_files(dataset):
    return [f"results/summary/{dataset}/summary.{ext}" for ext in ("csv", "md", "html")]


def report_inputs(wildcards):
    """Every configured run of one dataset (the default runs, or a sweep's variants; config order) and its side
    files; the scripts load exactly these runs, grouped per system (+ swept hash setting) by slide.sweep."""
    runs = dataset_run_dirs(wildcards.dataset)
    return {
        "final": [f"{d}/final.json" for d in runs],
        "metrics": [f"{d}/metrics.csv" for d in runs],
        "meta": f"{data_dir(wildcards.dataset)}/meta.json",
        "check": "results/system/check.json",
    }


def all_report_inputs(wildcards):
    """The runs and meta.json of every dataset, in config order (the combined figure and summary)."""
    return {
        "final": [f"{d}/final.json" for ds in DATASETS for d in dataset_run_dirs(ds)],
        "metrics": [f"{d}/metrics.csv" for ds in DATASETS for d in dataset_run_dirs(ds)],
        "meta": [f"{data_dir(ds)}/meta.json" for ds in DATASETS],
        "check": "results/system/check.json",
    }


def provenance_inputs(wildcards):
    ds, data = wildcards.dataset, data_dir(wildcards.dataset)
    runs = dataset_run_dirs(ds)
    return {
        "final": [f"{d}/final.json" for d in runs],
        "metrics": [f"{d}/metrics.csv" for d in runs],
        "meta": f"{data}/meta.json",
        "data": [f"{data}/train.npz", f"{data}/test.npz"]
        + [f"{data}/unshuffled/{f}" for f in ("train.npz", "test.npz", "info.json")],
        "check": "results/system/check.json",
        # the figures and summaries of this dataset, so that `verify` covers them too
        "outputs": figure_files(ds) + summary_files(ds),
        **({"build": BUILD_INFO[0]} if BUILD_INFO else {}),
    }


def final_targets():
    """What `rule all` asks for; each stage adds its end products here."""
    return [
        "results/system/check.json",
        *(f"{d}/final.json" for ds in DATASETS for d in dataset_run_dirs(ds)),
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
    """resources: of `rule`: mem_mb from the data's shape, runtime, and the SLURM partition/account if set.
    A rule serving several systems (train_tf) is sized as the system in the job's wildcards (train_tf_full)."""

    def mem_mb(wildcards, threads):
        from slide.data.prepare import raw_sources

        name = f"train_{wildcards.system}" if "system" in wildcards.keys() else rule
        if "dataset" not in wildcards.keys():  # rules over every dataset: report and audit tables
            return res.mem_mb(name, res.Shape(None, None, None, "config"), config, threads, CLUSTER)
        ds = wildcards.dataset
        cfg = dcfg(ds)
        if name.startswith("train_"):
            cfg = {**cfg, "train": train_config(wildcards, name.removeprefix("train_"))}
            if "variant" in wildcards.keys():
                cfg = {**cfg, **{k: v for k, v in sweeps.run_config(cfg, sweeps.parse_variant(wildcards.variant)).items()
                                 if k != "train"}}
        shape = res.dataset_shape(cfg["dataset"], data_dir(ds), list(raw_sources(cfg["dataset"], ds).values()))
        return res.mem_mb(name, shape, cfg, threads, CLUSTER)

    return {"mem_mb": mem_mb, **res.scheduler_resources(rule, CLUSTER)}


onstart:
    # SLURM: compare every planned job with the partition's nodes before submitting anything (slide.cluster)
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        from slide import cluster as slurm

        slurm.preflight([slurm.Request(job.rule.name, job.threads, int(job.resources.get("mem_mb", 0)),
                                       job.resources.get("runtime"), job.resources.get("slurm_partition"))
                         for job in workflow.dag.needrun_jobs()])
