"""results/provenance/<dataset>.json: what produced one dataset's results (code, packages, config, data, host,
build, seeds), and the sha256 of every file the run wrote (checked by slide.verify).

Versions come from importlib.metadata, never by importing the packages (TensorFlow takes seconds to import).
"""
from __future__ import annotations

import datetime
import importlib.metadata as md
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from ..atomic import sha256_file
from .html import page
from .runs import Run, host_label, host_summary, read_json_optional

PACKAGES = ["slide-repro", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "snakemake", "psutil", "tqdm",
            "pybind11", "pyyaml", "pygments", "tensorflow-cpu", "tensorflow", "keras"]


def package_versions(names: list[str] = PACKAGES) -> dict[str, str | None]:
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
    return out


def git_info(root: str | os.PathLike = ".") -> dict | None:
    """Commit and dirty flag of the checkout at `root`; None outside a git work tree or without git.

    Read-only: --no-optional-locks keeps `git status` from rewriting the index while others work.
    """
    if shutil.which("git") is None:
        return None

    def git(*args: str) -> str | None:
        r = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None

    if git("rev-parse", "--is-inside-work-tree") != "true":
        return None
    commit = git("rev-parse", "HEAD")  # None in a repository without commits
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": bool(status) if status is not None else None,
            "changed_files": len(status.splitlines()) if status else 0}


def file_record(path: str | os.PathLike) -> dict:
    p = Path(path)
    return {"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}


def model_records(path: str | os.PathLike) -> list[dict]:
    """A run's saved model: one file (SLIDE) or a directory of files (TensorFlow); [] when absent."""
    p = Path(path)
    if p.is_file():
        return [file_record(p)]
    return [file_record(f) for f in sorted(p.rglob("*")) if f.is_file()] if p.is_dir() else []


def collect(config: dict, *, meta_path=None, data_files=(), check_path=None, build_path=None,
            runs: list[Run] = (), root: str | os.PathLike = ".", outputs=()) -> dict:
    """The provenance record of one dataset's run. Missing side files become null, never an error (the report
    still says so). Files recorded for `verify`: `data_files` (the prepared and unshuffled splits), meta.json,
    every run's final.json, metrics.csv and model, and `outputs` (figures, summaries)."""
    meta = read_json_optional(meta_path)
    runs_info = {}
    for r in runs:
        entry = {"path": str(r.path), "finished": r.ok, "seed": r.seed, "threads": r.threads}
        for name in ("final.json", "metrics.csv"):
            if (r.path / name).exists():
                entry[name] = file_record(r.path / name)
        entry["model"] = model_records(r.path / "model")
        if r.ok:
            # versions / ISA / hugepage outcome that the model reported (Model.info()), without the big dicts
            entry["info"] = {k: v for k, v in r.final.items() if k not in ("config",) and not k.startswith("p_at_")}
        runs_info.setdefault(r.system, []).append(entry)
    return {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(root),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "config": config,
        "dataset": {"name": (config.get("dataset") or {}).get("name"), "meta": meta,
                    "files": [file_record(f) for f in [*data_files, *([meta_path] if meta_path else [])]
                              if Path(f).exists()]},
        "outputs": [file_record(f) for f in outputs if Path(f).exists()],
        "host": read_json_optional(check_path),
        "build": read_json_optional(build_path),
        "seeds": seeds(config, meta, runs),
        "runs": runs_info,
    }


def seeds(config: dict, meta: dict | None, runs: list[Run]) -> dict:
    ds = config.get("dataset") or {}
    out = {"train": (config.get("train") or {}).get("seed"), "shuffle": ds.get("shuffle_seed"),
           "synthetic": (ds.get("synthetic") or {}).get("seed") if ds.get("source") == "synthetic" else None}
    if meta:
        out["meta"] = {k: v for k, v in meta.items() if "seed" in k.lower()}
    out["runs"] = sorted({r.seed for r in runs if r.seed is not None})
    return out


def environment_html(check: dict | None, build: dict | None, prov: dict | None = None) -> str:
    """Host check + build info (+ code and package versions) as one page for the Snakemake report."""
    isa = host_summary(check)["isa"]
    head = host_label(check) + (f"; best ISA: {isa}" if isa else "") + ("" if check else " (no host check)")
    sections = [("p", head), ("h2", "Host check (results/system/check.json)"), ("kv", check),
                ("h2", "Native build (results/build/build.json)"), ("kv", build)]
    if prov is not None:
        sections += [("h2", "Code"), ("kv", prov.get("git") or {"git": "not a git checkout"}),
                     ("h2", "Packages"), ("kv", prov.get("packages")), ("h2", "Seeds"), ("kv", prov.get("seeds"))]
    return page("Host and build", sections)
