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
def test_profiles_leave_memory_threads_and_runtime_to_the_rules(name):
    # the rules compute them from the data (slide.resources); fixed numbers here would override them
    p = _profile(name)
    for key in ("default-resources", "set-resources", "set-threads"):
        assert key not in p, (name, key)


@pytest.mark.parametrize("name", ["slurm", "kubernetes"])
def test_cluster_profiles_give_cores(name):
    assert isinstance(_profile(name)["cores"], int)  # threads of training/build rules need it outside -n


def test_slurm_profile_works_without_slurmdbd():
    _need_plugins("slurm")
    from dataclasses import fields

    from snakemake_executor_plugin_slurm import ExecutorSettings

    p = _profile("slurm")
    options = {k.removeprefix("slurm-").replace("-", "_"): v for k, v in p.items() if k.startswith("slurm-")}
    known = {f.name for f in fields(ExecutorSettings)}
    assert set(options) <= known, set(options) - known  # real option names of the pinned plugin
    assert options["status_command"] == "squeue"  # sacct fails without accounting storage
    assert options["init_seconds_before_status_checks"] <= 10


def test_the_cluster_extra_pins_the_plugins():
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cluster"]
    plugins = [d for d in extra if d != "slide-repro[all]"]  # and the whole pipeline, for a job image
    names = {d.split("==")[0] for d in plugins}
    assert names == {"snakemake-executor-plugin-slurm", "snakemake-executor-plugin-kubernetes",
                     "snakemake-storage-plugin-fs"}
    assert all("==" in d for d in plugins)
