"""envs/*.yaml (per rule group, for --software-deployment-method conda) agree with the pyproject.toml pins, and
every rule names one of them."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = {"slide": ROOT / "envs" / "slide.yaml", "tensorflow": ROOT / "envs" / "tensorflow.yaml"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", r.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


PROJECT_PINS = _pins(PYPROJECT["dependencies"])


def _env(name):
    env = yaml.safe_load(ENVS[name].read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return env, conda, pip


def test_every_project_dependency_is_pinned():
    assert len(PROJECT_PINS) == len(PYPROJECT["dependencies"]), "pyproject dependencies must be pinned with =="


@pytest.mark.parametrize("name", ENVS)
def test_env_pip_pins_match_pyproject(name):
    _, _, pip = _env(name)
    pins = _pins(pip)
    unpinned = [r for r in pip if not r.startswith("-e ") and "==" not in r]
    assert not unpinned, f"{name}: unpinned pip requirements {unpinned}"
    assert pins, name
    for pkg, version in pins.items():
        assert pkg in PROJECT_PINS, f"envs/{name}.yaml pins {pkg}, which pyproject.toml does not list"
        assert version == PROJECT_PINS[pkg], f"envs/{name}.yaml: {pkg}=={version}, pyproject.toml: {PROJECT_PINS[pkg]}"


@pytest.mark.parametrize("name", ENVS)
def test_env_python_and_package_match_the_project(name):
    env, conda, pip = _env(name)
    assert "nodefaults" in env["channels"] and "conda-forge" in env["channels"]
    (py,) = [d for d in conda if d.startswith("python")]
    assert py == "python=" + PYPROJECT["requires-python"].removeprefix(">=")
    assert "-e .." in pip, "the env installs this package (its scripts import slide)"


def test_each_group_has_what_its_rules_import():
    slide = _pins(_env("slide")[2])
    tf = _pins(_env("tensorflow")[2])
    assert {"numpy", "scipy", "pandas", "matplotlib", "seaborn", "psutil", "tqdm", "pybind11"} <= slide.keys()
    assert {"tensorflow-cpu", "numpy", "psutil", "tqdm"} <= tf.keys()
    assert {"cxx-compiler", "ninja"} <= {d.split("=")[0].split(">")[0] for d in _env("slide")[1]}  # build_native


def test_every_rule_names_an_existing_env():
    """Every rule names an environment file of envs/ (the two groups above, or one of an optional system's own)."""
    rules = ROOT / "workflow" / "rules"
    existing = {p.resolve() for p in (ROOT / "envs").glob("*.yaml")}
    for smk in rules.glob("*.smk"):
        text = smk.read_text()
        n_rules = len(re.findall(r"^\s*rule \w+:", text, flags=re.M))
        envs = re.findall(r'conda:\s*\n\s*"([^"]+)"', text)
        assert len(envs) == n_rules, f"{smk.name}: {n_rules} rules, {len(envs)} conda directives"
        for e in envs:
            assert (rules / e).resolve() in existing, f"{smk.name}: {e} is not a file of envs/"
