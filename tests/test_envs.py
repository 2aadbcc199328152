"""envs/*.yaml (per rule group, for --software-deployment-method conda) agree with the pyproject.toml pins, really
split (the TensorFlow env has no compiler toolchain and the SLIDE env no TensorFlow, down to the package extras each
installs), and every rule names one of them."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = {"slide": ROOT / "envs" / "slide.yaml", "tensorflow": ROOT / "envs" / "tensorflow.yaml",
        "parabel": ROOT / "envs" / "parabel.yaml"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", r.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


EXTRAS = PYPROJECT["optional-dependencies"]
BASE_PINS = _pins(PYPROJECT["dependencies"])
PROJECT_PINS = {**BASE_PINS, **{k: v for reqs in EXTRAS.values() for k, v in _pins(reqs).items()}}
SELF = re.compile(r"slide-repro\[([a-z,]+)\]")
TOOLCHAIN = {"cxx-compiler", "c-compiler", "compilers", "gxx", "gcc", "clang", "clangxx", "cmake", "ninja", "make"}


def _expand(extras) -> set[str]:
    """Package names that installing this package with `extras` pulls in (the extras of extras included)."""
    names = set(BASE_PINS)
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in EXTRAS[extra]:
            m = SELF.fullmatch(r)
            if m:
                todo += m.group(1).split(",")
            else:
                names.add(re.split(r"[=<>\[ ;]", r, maxsplit=1)[0].lower())
    return names


def _installed_extras(pip) -> list[str]:
    (line,) = [r for r in pip if r.startswith("-e ")]
    m = re.fullmatch(r"-e \.\.(?:\[([a-z,]+)\])?", line.strip())
    assert m, f"unexpected install line {line!r}"
    return m.group(1).split(",") if m.group(1) else []


def _env(name):
    env = yaml.safe_load(ENVS[name].read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return env, conda, pip


def test_every_project_dependency_is_pinned():
    assert len(BASE_PINS) == len(PYPROJECT["dependencies"]), "pyproject dependencies must be pinned with =="
    for extra, reqs in EXTRAS.items():
        loose = [r for r in reqs if not SELF.fullmatch(r) and "==" not in r]
        assert not loose, f"extra {extra}: unpinned {loose}"


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
    assert any(r.startswith("-e ..") for r in pip), "the env installs this package (its scripts import slide)"


def test_each_group_has_what_its_rules_import():
    slide = _pins(_env("slide")[2])
    tf = _pins(_env("tensorflow")[2])
    assert {"numpy", "scipy", "pandas", "matplotlib", "seaborn", "psutil", "tqdm", "pybind11"} <= slide.keys()
    assert {"tensorflow-cpu", "numpy", "psutil", "tqdm"} <= tf.keys()
    assert {"cxx-compiler", "ninja"} <= {d.split("=")[0].split(">")[0] for d in _env("slide")[1]}  # build_native


def test_the_base_install_has_neither_tensorflow_nor_the_workflow_engine():
    assert not {"tensorflow", "tensorflow-cpu", "snakemake"} & set(BASE_PINS)


def test_tensorflow_env_has_no_build_toolchain():
    _, conda, pip = _env("tensorflow")
    names = {re.split(r"[=<>]", d, maxsplit=1)[0] for d in conda}
    assert not names & TOOLCHAIN, f"envs/tensorflow.yaml installs build tools {names & TOOLCHAIN}"
    assert "pybind11" not in _pins(pip)
    installed = _expand(_installed_extras(pip)) | set(_pins(pip))
    assert "tensorflow-cpu" in installed
    assert not {"pybind11", "cmake", "ninja", "snakemake", "pandas", "matplotlib"} & installed, installed


def test_slide_env_has_no_tensorflow():
    _, _, pip = _env("slide")
    installed = _expand(_installed_extras(pip)) | set(_pins(pip))
    assert not {n for n in installed if n.startswith("tensorflow") or n in ("keras", "tf-keras")}, installed
    assert "pybind11" in installed


def test_tensorflow_env_can_install_without_a_compiler():
    """The TF env installs the package from source without a compiler: the build falls back to the Python package
    when CMake fails (pyproject.toml's `if.failed` override)."""
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["overrides"]
    assert any(o.get("if", {}).get("failed") is True and o.get("wheel", {}).get("cmake") is False for o in overrides)


def test_all_and_test_extras_cover_the_whole_pipeline():
    everything = _expand(["all"])
    assert {"snakemake", "tensorflow-cpu", "pybind11", "pandas", "matplotlib"} <= everything
    assert _expand(["test"]) >= everything  # the README's test command installs every rule group's packages
    assert _expand(["cluster"]) >= everything  # a cluster job image installs this extra


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
