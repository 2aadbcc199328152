"""Preflight for SLURM: compare what each job asks for with the nodes `sinfo` reports, and stop with one clear
line per problem instead of submitting jobs that SLURM refuses or leaves PENDING forever.

The workflow runs it at start, before the first submission, whenever the SLURM executor is used
(workflow/rules/common.smk): every job of the planned run is compared, with the resources Snakemake will
request for it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

SINFO = ["sinfo", "-h", "-N", "-o", "%P %c %m %l"]  # one line per node and partition


@dataclass
class Partition:
    name: str
    default: bool = False
    nodes: list[tuple[int, int]] = field(default_factory=list)  # (CPUs, memory in MB) per node
    time_limit_min: float | None = None                          # None: no limit

    @property
    def max_cpus(self) -> int:
        return max(c for c, _ in self.nodes)

    @property
    def max_mem_mb(self) -> int:
        return max(m for _, m in self.nodes)


@dataclass(frozen=True)
class Request:
    """One job's request: rule name, CPUs, memory (MB), runtime (minutes), partition (None: the default)."""
    rule: str
    cpus: int
    mem_mb: int
    runtime_min: int | None = None
    partition: str | None = None


def parse_time_limit(text: str) -> float | None:
    """SLURM time limit ([days-]hours:minutes:seconds, minutes:seconds, minutes, infinite) in minutes."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a"):
        return None
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise ValueError(f"sinfo: cannot read the time limit {text!r}")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if c is not None:                 # [d-]h:m:s
        hours, minutes, seconds = a, b, c
    elif b is not None:               # d-h:m or m:s
        hours, minutes, seconds = (a, b, 0) if days is not None else (0, a, b)
    else:                             # d-h or m
        hours, minutes, seconds = (a, 0, 0) if days is not None else (0, a, 0)
    return (days or 0) * 1440 + hours * 60 + minutes + seconds / 60


def _number(text: str, what: str, line_no: int) -> int:
    digits = text.rstrip("+")  # "128000+": grouped nodes of at least this size
    if not digits.isdigit():
        raise ValueError(f"sinfo output line {line_no}: expected {what} as a number, got {text!r}")
    return int(digits)


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from `sinfo -h -N -o '%P %c %m %l'` output (a trailing '*' marks the default partition)."""
    parts: dict[str, Partition] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) != 4:
            raise ValueError(f"sinfo output line {line_no}: expected 'PARTITION CPUS MEMORY TIMELIMIT', got {line!r}")
        name, cpus, mem, limit = cols
        default = name.endswith("*")
        name = name.rstrip("*")
        p = parts.setdefault(name, Partition(name))
        p.default = p.default or default
        p.nodes.append((_number(cpus, "CPUs", line_no), _number(mem, "memory (MB)", line_no)))
        p.time_limit_min = parse_time_limit(limit)
    return parts


def _gb(mb: float) -> str:
    return f"{mb / 1000:.1f} GB" if mb < 10_000 else f"{mb / 1000:.0f} GB"


def check(requests: list[Request], partitions: dict[str, Partition]) -> list[str]:
    """One message per rule whose jobs no node of their partition can run (empty: everything fits)."""
    if not partitions:
        return ["sinfo lists no partitions: is this a SLURM cluster (and slurmctld up)?"]
    default = next((p for p in partitions.values() if p.default), None)
    problems, seen = [], set()
    for r in requests:
        if r.partition is not None and r.partition not in partitions:
            msg = (f"{r.rule}: partition {r.partition} does not exist (sinfo lists {', '.join(sorted(partitions))}); "
                   f"set cluster.partition")
        elif r.partition is None and default is None:
            msg = (f"{r.rule}: no partition given and the cluster has no default one; set cluster.partition "
                   f"to one of {', '.join(sorted(partitions))}")
        else:
            p = partitions[r.partition] if r.partition else default
            if r.mem_mb > p.max_mem_mb:
                msg = f"{r.rule} needs {_gb(r.mem_mb)}, the largest node in partition {p.name} has {_gb(p.max_mem_mb)}"
            elif r.cpus > p.max_cpus:
                msg = (f"{r.rule} asks for {r.cpus} CPUs, the largest node in partition {p.name} has {p.max_cpus}; "
                       f"set cluster.cores to at most {p.max_cpus}")
            elif not any(c >= r.cpus and m >= r.mem_mb for c, m in p.nodes):
                msg = (f"{r.rule} asks for {r.cpus} CPUs and {_gb(r.mem_mb)} on one node; no node in partition "
                       f"{p.name} has both")
            elif r.runtime_min is not None and p.time_limit_min is not None and r.runtime_min > p.time_limit_min:
                msg = (f"{r.rule} asks for {r.runtime_min} min, partition {p.name} allows {p.time_limit_min:g} min; "
                       f"set cluster.runtime")
            else:
                continue
        if msg not in seen:
            seen.add(msg)
            problems.append(msg)
    return problems


def run_sinfo() -> str:
    if shutil.which("sinfo") is None:
        raise RuntimeError("sinfo not found: the SLURM client tools must be on PATH where Snakemake runs")
    r = subprocess.run(SINFO, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(SINFO)} failed: {r.stderr.strip() or r.returncode}")
    return r.stdout


def preflight(requests: list[Request], sinfo_output: str | None = None) -> None:
    """Raise RuntimeError listing every request the cluster cannot satisfy."""
    problems = check(requests, parse_sinfo(run_sinfo() if sinfo_output is None else sinfo_output))
    if problems:
        raise RuntimeError("SLURM preflight: " + "; ".join(problems))
