"""Running the real Snakemake workflow from tests: a scratch copy of it (the repository's results/ stay
untouched) and a `snakemake` runner that uses this interpreter (so the installed `slide` is the one tested)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "workflow", "config", "native", "envs")


def workflow_copy(dest: Path) -> Path:
    """Copy what `snakemake` needs to run the pipeline into `dest` (created); return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
        else:
            shutil.copy(src, dest / name)
    return dest


def snakemake(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
