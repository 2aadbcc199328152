"""Audit: re-check dataset and result files against the provenance manifest (results/provenance.json).

The manifest (slide.report.provenance) records path, size and sha256 of the prepared splits, of every run's
final.json and metrics.csv, and (in the dataset's meta.json) of the raw source files. `verify` recomputes
them; any difference — a changed byte, a missing file — is a failure listing every offending file:

    python -m slide.verify results/provenance.json        # exit 0: all match; 1: mismatches (listed)
    snakemake --cores 1 verify                             # the same, as a rule

Run it before re-running the workflow: a changed result makes Snakemake rerun `provenance`, which then
records the changed file (`snakemake -n` shows that as "updated input files").
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .atomic import read_json
from .atomic import sha256_file


class VerificationError(RuntimeError):
    """Files differ from the manifest; the message lists every one (first line: the count)."""


@dataclass(frozen=True)
class Check:
    path: str
    sha256: str
    bytes: int | None
    what: str              # "dataset", "raw source", "run slide" ...
    required: bool = True  # raw sources may be removed after preparing; a missing one is only noted


def manifest_checks(manifest: dict, manifest_path: str = "provenance.json") -> list[Check]:
    """Every file record in a provenance manifest; ValueError (one line) when it has none or is malformed."""
    checks: list[Check] = []

    def add(rec, what: str, required: bool = True):
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), str) or not isinstance(rec.get("sha256"), str):
            raise ValueError(f"{manifest_path}: malformed file record for {what}: {rec!r} "
                             "(expected {{path, bytes, sha256}})")
        checks.append(Check(rec["path"], rec["sha256"].lower(), rec.get("bytes"), what, required))

    dataset = manifest.get("dataset") or {}
    for rec in dataset.get("files") or []:
        add(rec, "dataset")
    for name, rec in sorted(((dataset.get("meta") or {}).get("sources") or {}).items()):
        add(rec, f"raw source ({name})", required=False)
    runs = manifest.get("runs") or {}
    if not isinstance(runs, dict):
        raise ValueError(f"{manifest_path}: 'runs' must be an object (system -> list of runs)")
    for system, entries in runs.items():
        for entry in entries or []:
            for name in ("final.json", "metrics.csv"):
                if name in entry:
                    add(entry[name], f"run {system}")
    if not any(c.required for c in checks):
        raise ValueError(f"{manifest_path}: no dataset or run file records to verify")
    return checks


def check_file(c: Check, root: Path) -> str | None:
    """None when the file matches; otherwise one line saying what differs."""
    p = root / c.path
    if not p.is_file():
        return None if not c.required else f"{c.path}: MISSING ({c.what}; manifest sha256 {c.sha256[:12]}…)"
    size = p.stat().st_size
    digest = sha256_file(p)
    if digest != c.sha256:
        sizes = f", {c.bytes} -> {size} bytes" if c.bytes is not None and c.bytes != size else ""
        return f"{c.path}: SHA256 MISMATCH ({c.what}; manifest {c.sha256[:12]}…, now {digest[:12]}…{sizes})"
    return None


def verify(manifest_path: str | os.PathLike = "results/provenance.json", root: str | os.PathLike = ".") -> list[str]:
    """Check every file of the manifest; return the lines of the files that matched (for the log).

    Raises VerificationError listing all mismatches, ValueError on an unreadable manifest.
    """
    manifest_path, root = Path(manifest_path), Path(root)
    if not (root / manifest_path).is_file() and not manifest_path.is_file():
        raise ValueError(f"{manifest_path}: no provenance manifest (run the workflow first: it writes "
                         "results/provenance.json)")
    mp = manifest_path if manifest_path.is_file() else root / manifest_path
    manifest = read_json(mp)
    checks = manifest_checks(manifest, str(mp))
    problems, ok = [], []
    for c in checks:
        msg = check_file(c, root)
        if msg:
            problems.append(msg)
        elif (root / c.path).is_file():
            ok.append(f"ok  {c.path} ({c.what})")
        else:
            ok.append(f"--  {c.path} ({c.what}; not present, not required)")
    if problems:
        raise VerificationError(f"verify FAILED: {len(problems)} of {len(checks)} file(s) differ from {mp}\n"
                                + "\n".join(problems))
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slide.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", nargs="?", default="results/provenance.json")
    ap.add_argument("--root", default=".", help="directory the manifest's paths are relative to")
    a = ap.parse_args(argv)
    try:
        lines = verify(a.manifest, a.root)
    except (VerificationError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    print("\n".join(lines))
    print(f"verify passed: {len(lines)} file(s) match {a.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
