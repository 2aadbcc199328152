"""Audit: re-check every recorded file of every dataset's run against its provenance manifest
(results/provenance/<dataset>.json, slide.report.provenance).

A manifest records path, size and sha256 of the prepared and unshuffled splits, meta.json, every run's
final.json, metrics.csv and model, the figures and summaries, and (in meta.json) the raw source files.
`verify` recomputes them for every manifest; any difference — a changed byte, a missing file — is a failure
listing every offending file:

    python -m slide.verify                                  # every manifest in results/provenance/
    python -m slide.verify results/provenance/tiny.json     # one dataset
    snakemake --cores 1 verify                              # the same as the first, as a rule

Figures and summaries are per dataset (results/figures/<dataset>/, results/summary/<dataset>/). A path that
several manifests record (the shared results/figures/ and results/summary.* of earlier versions) is checked
against the newest manifest that records it; older manifests list it as superseded.

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
    shared: bool = False   # a path every dataset's run writes (figures, summaries)


def manifest_checks(manifest: dict, manifest_path: str = "provenance.json") -> list[Check]:
    """Every file record in a provenance manifest; ValueError (one line) when it has none or is malformed."""
    checks: list[Check] = []

    def add(rec, what: str, required: bool = True, shared: bool = False):
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), str) or not isinstance(rec.get("sha256"), str):
            raise ValueError(f"{manifest_path}: malformed file record for {what}: {rec!r} "
                             "(expected {{path, bytes, sha256}})")
        checks.append(Check(rec["path"], rec["sha256"].lower(), rec.get("bytes"), what, required, shared))

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
            for rec in entry.get("model") or []:
                add(rec, f"run {system} model")
    for rec in manifest.get("outputs") or []:
        add(rec, "figure or summary", shared=True)
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


DEFAULT = "results/provenance"  # one manifest per dataset
LEGACY = "results/provenance.json"  # the single manifest of earlier versions


def manifest_paths(manifest_path: str | os.PathLike | None, root: Path) -> list[Path]:
    """The manifests to check: the one given, every *.json of a directory given, or the default directory
    (the earlier single manifest when the directory holds none)."""
    if manifest_path is None:
        found = sorted((root / DEFAULT).glob("*.json"))
        if found or not (root / LEGACY).is_file():
            if not found:
                raise ValueError(f"{root / DEFAULT}: no provenance manifests (run the workflow first: it writes "
                                 "results/provenance/<dataset>.json)")
            return found
        return [root / LEGACY]
    p = Path(manifest_path)
    p = p if p.exists() else root / p
    if p.is_dir():
        found = sorted(p.glob("*.json"))
        if not found:
            raise ValueError(f"{p}: no provenance manifests (*.json) in this directory")
        return found
    if not p.is_file():
        raise ValueError(f"{manifest_path}: no provenance manifest (run the workflow first: it writes "
                         "results/provenance/<dataset>.json)")
    return [p]


def verify(manifest_path: str | os.PathLike | None = None, root: str | os.PathLike = ".") -> list[str]:
    """Check every file of the manifests (see manifest_paths); return the lines of the files that matched.

    Raises VerificationError listing all mismatches, ValueError on an unreadable manifest.
    """
    root = Path(root)
    loaded = []
    for mp in manifest_paths(manifest_path, root):
        manifest = read_json(mp)
        name = (manifest.get("dataset") or {}).get("name") or mp.stem
        loaded.append((mp, name, str(manifest.get("generated_at") or ""), manifest_checks(manifest, str(mp))))
    # a shared path belongs to the newest manifest that records it (ISO timestamps sort in time order)
    owner = {}
    for mp, name, when, checks in loaded:
        for c in checks:
            if c.shared and (c.path not in owner or when >= owner[c.path][0]):
                owner[c.path] = (when, mp, name)
    problems, ok, total = [], [], 0
    for mp, name, _when, checks in loaded:
        tag = f"{name}: " if len(loaded) > 1 else ""
        for c in checks:
            if c.shared and owner[c.path][1] != mp:
                ok.append(f"--  {c.path} ({tag}{c.what}; superseded by the {owner[c.path][2]} run)")
                continue
            total += 1
            msg = check_file(c, root)
            if msg:
                problems.append(tag + msg)
            elif (root / c.path).is_file():
                ok.append(f"ok  {c.path} ({tag}{c.what})")
            else:
                ok.append(f"--  {c.path} ({tag}{c.what}; not present, not required)")
    if problems:
        where = ", ".join(str(mp) for mp, *_ in loaded)
        raise VerificationError(f"verify FAILED: {len(problems)} of {total} file(s) differ from {where}\n"
                                + "\n".join(problems))
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slide.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", nargs="?", default=None,
                    help=f"a manifest or a directory of them (default: {DEFAULT}/)")
    ap.add_argument("--root", default=".", help="directory the manifest's paths are relative to")
    a = ap.parse_args(argv)
    try:
        lines = verify(a.manifest, a.root)
    except (VerificationError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    print("\n".join(lines))
    print(f"verify passed: {sum(line.startswith('ok') for line in lines)} file(s) match {a.manifest or DEFAULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
