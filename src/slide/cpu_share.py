"""Sharing the cores: notice other CPU-bound work before training and stop SLIDE's threads fighting it.

OpenMP threads that reach a barrier first spin, waiting for the others. When other processes hold the same
cores, a spinning thread takes the time slice that the thread it waits for needs, and every barrier stalls for
a scheduler tick: on a 2-core machine with other jobs running, a batch of a Delicious-sized network took
15-43 ms with spinning waits and 1.06 ms with passive ones (1.0 ms quiet). Passive waits (the thread sleeps
at once) cost little on a quiet machine, where spinning is worth it only for very short parallel regions.

libgomp reads OMP_WAIT_POLICY once, when the native core loads it, so `share_cores` runs before the core
is imported: it measures how busy the cores this process may use are (/proc/stat over a short interval) and,
when fewer are free than threads were asked for, sets OMP_WAIT_POLICY=PASSIVE. A policy the user set is kept.
The thread count stays: results do not depend on it, and a run that outlives the other work gets its cores back.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ENV = "OMP_WAIT_POLICY"


def _cpu_times(stat: str, cpus: set[int]) -> tuple[float, float]:
    """(idle, total) jiffies summed over `cpus` from the text of /proc/stat."""
    idle = total = 0.0
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        v = [float(x) for x in rest.split()]
        idle += v[3] + (v[4] if len(v) > 4 else 0.0)  # idle + iowait
        total += sum(v[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return idle, total


def free_cores(seconds: float = 0.25, proc: str | os.PathLike = "/proc") -> float | None:
    """How many of this process's allowed CPUs were idle over `seconds` (None where /proc/stat is unreadable)."""
    cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    path = Path(proc) / "stat"
    try:
        i0, t0 = _cpu_times(path.read_text(), cpus)
        time.sleep(seconds)
        i1, t1 = _cpu_times(path.read_text(), cpus)
    except (OSError, ValueError):
        return None
    if t1 <= t0:
        return None
    return len(cpus) * (i1 - i0) / (t1 - t0)


def share_cores(threads: int, measure=None) -> dict:
    """Decide the OpenMP wait policy for a run of `threads` threads (before the native core loads) and apply it.

    Returns what was seen and decided, for the log and final.json."""
    if threads < 1:  # 0: OpenMP's default, every allowed core
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    free = (measure or free_cores)()
    seen = {"requested_threads": threads, "free_cores": None if free is None else round(free, 2)}
    if os.environ.get(ENV):
        return {**seen, "wait_policy": os.environ[ENV], "reason": f"{ENV} set by the user"}
    if free is None:
        return {**seen, "wait_policy": "default", "reason": "CPU load unknown (/proc/stat unreadable)"}
    if free >= threads - 0.5:
        return {**seen, "wait_policy": "default", "reason": f"{free:.1f} cores free for {threads} threads"}
    if "slide._native" in sys.modules:  # libgomp has read its settings already
        return {**seen, "wait_policy": "default",
                "reason": f"only {free:.1f} cores free for {threads} threads, but OpenMP had started: set {ENV}=PASSIVE "
                          f"before importing slide to wait passively"}
    os.environ[ENV] = "PASSIVE"
    return {**seen, "wait_policy": "PASSIVE",
            "reason": f"only {free:.1f} cores free for {threads} threads: other work shares the cores, so OpenMP "
                      f"threads wait passively instead of spinning"}
