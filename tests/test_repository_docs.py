"""The repository explains itself: every file path its text mentions exists in it, nothing cites a document or
an issue tracker entry that a reader of the repository cannot open, docs/ has an index naming every page,
config/README.md describes every config file, and no config file repeats a key (YAML keeps only the last)."""
from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from slide.config import check_config, load_schema
from workflow_copy import ROOT


def _tracked_text_files() -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    keep = []
    for name in out.splitlines():
        path = ROOT / name
        if name.startswith("tests/data/") or path.suffix in (".png", ".pdf", ".npz", ".zip", ".gz") or not path.is_file():
            continue
        try:
            path.read_text()
        except UnicodeDecodeError:
            continue
        keep.append(name)
    return keep


FILES = _tracked_text_files() if (ROOT / ".git").exists() else []
THIS = "tests/test_repository_docs.py"
# Documents that lived beside the repository while it was written, and issue numbers of a tracker that is not
# part of it. (The Bibtex test's path to data beside the checkout is a data location, not a document.)
OUTSIDE = re.compile(r"DESIGN\.md|SLIDE-NOTES|SNAKEMAKE-NOTES|\b[Ii]ssues? #?\d|\bissue on\b")
PATH = re.compile(r"(?<![\w./<-])((?:docs|config|envs|workflow|benchmarks|src|tests|native)/[\w./-]+?"
                  r"\.(?:md|yaml|yml|py|smk|cpp|hpp|rst|txt|json|toml))\b")
# Mentions that are fixed in the file's owner's change; remove an entry when that change lands.


def test_no_reference_to_documents_outside_the_repository():
    hits = [f"{name}:{i}: {line.strip()}" for name in FILES if name != THIS
            for i, line in enumerate((ROOT / name).read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


def test_every_mentioned_repository_path_exists():
    """Docs, configs, workflow, package, core and benchmark scripts name only files that exist."""
    missing = []
    for name in FILES:
        if name.startswith("tests/"):  # tests name files they create, or that a later change adds
            continue
        here = (ROOT / name).parent
        for i, line in enumerate((ROOT / name).read_text().splitlines(), 1):
            for m in PATH.finditer(line):
                p = m.group(1)
                if any(c in p for c in "<{*"):
                    continue
                if not ((ROOT / p).exists() or (here / p).exists()):
                    missing.append(f"{name}:{i}: {p}")
    assert not missing, "\n".join(missing)


def test_docs_index_names_every_page():
    index = (ROOT / "docs" / "README.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md")
    assert pages
    for page in pages:
        assert f"({page})" in index, f"docs/README.md does not link {page}"
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/README.md", "docs/design.md", "docs/original-code.md", "config/README.md"):
        assert f"({page})" in readme, f"README.md does not link {page}"


def test_config_readme_describes_every_config_file():
    text = (ROOT / "config" / "README.md").read_text()
    for path in sorted((ROOT / "config").glob("*.yaml")):
        assert f"`{path.name}`" in text, f"config/README.md does not describe {path.name}"


class _NoDuplicates(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dup = sorted({k for k in keys if keys.count(k) > 1}, key=str)
    if dup:
        raise ValueError(f"line {node.start_mark.line + 1}: key(s) {dup} given twice (only the last one counts)")
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_NoDuplicates.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@pytest.mark.parametrize("path", sorted([*(ROOT / "config").glob("*.yaml"), *(ROOT / "envs").glob("*.yaml"),
                                         *(ROOT / "workflow" / "profiles").glob("*/config.yaml")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_files_repeat_no_key(path):
    yaml.load(path.read_text(), Loader=_NoDuplicates)


def test_config_readme_overlay_example_is_valid():
    """The `my-run.yaml` example of config/README.md passes the config check over the default and a preset."""
    from snakemake.utils import update_config

    text = (ROOT / "config" / "README.md").read_text()
    example = re.search(r"```yaml\n# my-run.yaml\n(.*?)```", text, flags=re.S).group(1)
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config" / "synthetic-200k.yaml").read_text()))
    update_config(cfg, yaml.safe_load(example))
    check_config(cfg, load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
