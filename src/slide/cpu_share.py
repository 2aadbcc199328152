"""Sharing the cores: notice other CPU-bound work before training and stop SLIDE's threads fighting it.

OpenMP threads that reach a barrier first spin, waiting for the others, and a batch has several barriers.
When other processes hold the same cores, each barrier waits until the scheduler runs every thread of the
team again; spinning threads make it worse by burning the time slice the awaited thread needs. Measured on
2 cores (benchmarks/shared_cores.py, docs/performance.md): with 2 CPU-bound processes beside it, a batch of a
Delicious-sized network took 3.6x its quiet time with 2 spinning threads, 3.8x with 2 passive ones, and
less with 1 thread, which has no barriers to wait at.

So `share_cores`, run before the native core loads (libgomp reads OMP_WAIT_POLICY once, when it loads),
measures how busy the cores this process may use are (/proc/stat over a short interval). When fewer are free
than threads were asked for, the run trains with as many threads as cores are free (at least 1; results do
not depend on the thread count) and OMP_WAIT_POLICY=PASSIVE. A wait policy the user set is kept. The decision
holds for the whole run: a run that starts beside other work keeps its fewer threads after that work ends.

A thread sweep's run (`keep_threads`) is a measurement of that thread count, so it keeps the count and the wait
policy, and only records that the cores were busy.
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


def share_cores(threads: int, measure=None, keep_threads: bool = False) -> dict:
    """Decide the OpenMP wait policy for a run of `threads` threads (before the native core loads) and apply it.

    Returns what was seen and decided (`threads`: the count to train with), for the log and final.json.
    `keep_threads`: the count is what the run measures (a thread sweep); keep it and the wait policy."""
    if threads < 1:  # 0: OpenMP's default, every allowed core
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    free = (measure or free_cores)()
    seen = {"requested_threads": threads, "free_cores": None if free is None else round(free, 2)}
    if free is None:
        return {**seen, "threads": threads, "wait_policy": os.environ.get(ENV, "default"),
                "reason": "CPU load unknown (/proc/stat unreadable)"}
    if free >= threads - 0.5:
        return {**seen, "threads": threads, "wait_policy": os.environ.get(ENV, "default"),
                "reason": f"{free:.1f} cores free for {threads} threads"}
    if keep_threads:
        return {**seen, "threads": threads, "wait_policy": os.environ.get(ENV, "default"),
                "reason": f"only {free:.1f} cores free for {threads} threads: other work shares the cores; a thread "
                          f"sweep's run keeps its {threads} thread(s), so its times include that work"}
    fewer = max(1, min(threads, int(free + 0.5)))
    why = f"only {free:.1f} cores free for {threads} threads: other work shares the cores, so {fewer} thread(s)"
    if os.environ.get(ENV):
        return {**seen, "threads": fewer, "wait_policy": os.environ[ENV], "reason": f"{why}; {ENV} set by the user"}
    if "slide._native" in sys.modules:  # libgomp has read its settings already
        return {**seen, "threads": fewer, "wait_policy": "default",
                "reason": f"{why}; OpenMP had started, so its wait policy stays (set {ENV}=PASSIVE before importing "
                          f"slide to wait passively)"}
    os.environ[ENV] = "PASSIVE"
    return {**seen, "threads": fewer, "wait_policy": "PASSIVE", "reason": f"{why}, waiting passively"}
