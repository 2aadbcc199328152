from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, "../schemas/config.schema.yaml")

DATASET = config["dataset"]["name"]
SYSTEMS = config["systems"]
DATA = f"results/data/{DATASET}"
RAW = f"resources/raw/{DATASET}"


def run_dir(system):
    return f"results/runs/{DATASET}/{system}"


def train_inputs(extra=None):
    """The prepared dataset every training rule reads (plus rule-specific inputs)."""
    return {"train": f"{DATA}/train.npz", "test": f"{DATA}/test.npz", "meta": f"{DATA}/meta.json", **(extra or {})}


def final_targets():
    """What `rule all` asks for; each stage adds its end products here."""
    return [
        "results/system/check.json",
        *(f"{run_dir(s)}/final.json" for s in SYSTEMS),
        *FIGURE_TARGETS,
    ]
