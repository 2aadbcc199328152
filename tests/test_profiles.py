"""workflow/profiles/{default,slurm,kubernetes}: each parses and plans the full DAG (`-n`) for the default and
the Amazon-670K configs, and survives `--summary` (a parse without -n: catches rules that need --cores).
The cluster profiles need the `[cluster]` extra (pip install -e '.[cluster]'); without it they are skipped."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "workflow" / "profiles"
CONFIGS = ["config/config.yaml", "config/amazon670k.yaml"]
PLUGINS = {"slurm": ["snakemake_executor_plugin_slurm"],
           "kubernetes": ["snakemake_executor_plugin_kubernetes", "snakemake_storage_plugin_fs"]}
HEAVY = ["prepare", "shuffle", "build_native", "train_slide", "train_slide_sweep", "train_tf_full",
         "train_tf_full_sweep", "train_tf_sampled", "train_tf_sampled_sweep"]
TRAIN = [r for r in HEAVY if r.startswith("train_")]


def _profile(name):
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def _need_plugins(name):
    missing = [m for m in PLUGINS.get(name, []) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"profile {name} needs {', '.join(missing)}: pip install -e '.[cluster]'")


def _args(name):
    # the kubernetes profile's storage prefix is the checkout on the shared volume; here, this checkout
    return ["--default-storage-prefix", str(ROOT)] if name == "kubernetes" else []


@pytest.mark.parametrize("name", ["default", "slurm", "kubernetes"])
@pytest.mark.parametrize("config", CONFIGS)
def test_profile_plans_the_full_dag(name, config):
    _need_plugins(name)
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", f"workflow/profiles/{name}",
                        "--configfile", config, *_args(name)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert f"Using profile workflow/profiles/{name}" in out
    assert "Nothing to be done" in out or "rule all:" in out or "localrule all:" in out, out[-2000:]


@pytest.mark.parametrize("name", ["default", "slurm", "kubernetes"])
def test_profile_parses_without_dry_run(name):
    _need_plugins(name)
    r = subprocess.run([sys.executable, "-m", "snakemake", "--summary", "--profile", f"workflow/profiles/{name}",
                        "--configfile", "config/amazon670k.yaml", *_args(name)], cwd=ROOT, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "output_file" in r.stdout


@pytest.mark.parametrize("name", ["default", "slurm", "kubernetes"])
def test_every_heavy_rule_has_memory_and_runtime_sized_for_amazon670k(name):
    res = _profile(name)["set-resources"]
    for rule in HEAVY:
        assert res[rule]["mem_mb"] >= 1000 and res[rule]["runtime"] >= 10, (name, rule)
    for rule in TRAIN:
        assert res[rule]["mem_mb"] >= 32000, (name, rule)  # 6.7 GB of LSH tables alone for SLIDE
    assert res["train_slide"] == {k: v for k, v in res["train_slide_sweep"].items()}


def test_the_profiles_agree_on_resources():
    base = {r: {k: v[k] for k in ("mem_mb", "runtime")} for r, v in _profile("default")["set-resources"].items()}
    for name in ("slurm", "kubernetes"):
        other = {r: {k: v[k] for k in ("mem_mb", "runtime")} for r, v in _profile(name)["set-resources"].items()}
        assert other == base, name


@pytest.mark.parametrize("name", ["slurm", "kubernetes"])
def test_cluster_profiles_size_cpus_per_rule(name):
    p = _profile(name)
    assert isinstance(p["cores"], int)  # threads: workflow.cores needs it outside -n
    for rule in TRAIN + ["build_native"]:
        assert p["set-threads"][rule] >= 1, rule
    if name == "slurm":  # timed jobs get whole nodes; the plugin rejects options it manages itself
        for rule in TRAIN:
            assert "--exclusive" in p["set-resources"][rule]["slurm_extra"]


def test_the_cluster_extra_pins_the_plugins():
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cluster"]
    names = {d.split("==")[0] for d in extra}
    assert names == {"snakemake-executor-plugin-slurm", "snakemake-executor-plugin-kubernetes",
                     "snakemake-storage-plugin-fs"}
    assert all("==" in d for d in extra)
