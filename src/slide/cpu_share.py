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

A CPU quota counts the same way (a container started with `--cpus 2`, a Kubernetes CPU limit, a systemd
CPUQuota): the process may see every core of the host idle and still be throttled to the quota, where threads
beyond it only wait on each other. Measured in a cgroup limited to one core on the 2-core machine: a
Delicious-sized batch took 2.0-2.9 ms with 2 spinning threads against 1.3-1.5 ms with 1, a 200k-label one
24-25 ms against 17-20 ms. So the cores the quota allows cap the free cores.

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


def cpu_quota(proc: str | os.PathLike = "/proc", cgroup: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """The cores this process's CPU quota allows (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
    the smallest along its cgroup's path up to the hierarchy's root; None where there is no quota or none is readable.

    In a container the hierarchy mounted at /sys/fs/cgroup is often the container's own, with /proc/self/cgroup
    naming a path that does not exist there: the directories that exist on the way up are read."""
    try:
        lines = (Path(proc) / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: one unified hierarchy
            bases, v2 = [Path(cgroup)], True
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own hierarchy
            bases, v2 = [Path(cgroup) / controllers, Path(cgroup) / "cpu"], False
        else:
            continue
        base = next((b for b in bases if b.is_dir()), None)
        if base is None:
            continue
        parts = [p for p in path.strip().split("/") if p]
        for depth in range(len(parts), -1, -1):
            limit = _quota_cores(base.joinpath(*parts[:depth]), v2)
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def _quota_cores(d: Path, v2: bool) -> float | None:
    try:
        if v2:
            quota, period = (d / "cpu.max").read_text().split()[:2]
        else:
            quota, period = (d / "cpu.cfs_quota_us").read_text(), (d / "cpu.cfs_period_us").read_text()
        quota, period = quota.strip(), float(period)
    except (OSError, ValueError):
        return None
    if quota in ("max", "-1") or period <= 0:
        return None
    return float(quota) / period


def share_cores(threads: int, measure=None, keep_threads: bool = False, quota=None) -> dict:
    """Decide the OpenMP wait policy for a run of `threads` threads (before the native core loads) and apply it.

    Returns what was seen and decided (`threads`: the count to train with), for the log and final.json.
    `keep_threads`: the count is what the run measures (a thread sweep); keep it and the wait policy.
    `measure` and `quota` stand in for `free_cores` and `cpu_quota` (tests)."""
    if threads < 1:  # 0: OpenMP's default, every allowed core
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    idle, limit = (measure or free_cores)(), (quota or cpu_quota)()
    seen = {"requested_threads": threads, "free_cores": None if idle is None else round(idle, 2),
            "cpu_quota_cores": None if limit is None else round(limit, 2)}
    by_quota = limit is not None and (idle is None or limit < idle)
    free = limit if by_quota else idle
    if free is None:
        return {**seen, "threads": threads, "wait_policy": os.environ.get(ENV, "default"),
                "reason": "CPU load unknown (/proc/stat unreadable)"}
    if free >= threads - 0.5:
        return {**seen, "threads": threads, "wait_policy": os.environ.get(ENV, "default"),
                "reason": f"{free:.1f} cores free for {threads} threads"}
    short = (f"the CPU quota allows {free:.1f} cores for {threads} threads" if by_quota else
             f"only {free:.1f} cores free for {threads} threads: other work shares the cores")
    if keep_threads:
        return {**seen, "threads": threads, "wait_policy": os.environ.get(ENV, "default"),
                "reason": f"{short}; a thread sweep's run keeps its {threads} thread(s), so its times include "
                          f"{'the throttling' if by_quota else 'that work'}"}
    fewer = max(1, min(threads, int(free + 0.5)))
    why = f"{short}, so {fewer} thread(s)"
    if os.environ.get(ENV):
        return {**seen, "threads": fewer, "wait_policy": os.environ[ENV], "reason": f"{why}; {ENV} set by the user"}
    if "slide._native" in sys.modules:  # libgomp has read its settings already
        return {**seen, "threads": fewer, "wait_policy": "default",
                "reason": f"{why}; OpenMP had started, so its wait policy stays (set {ENV}=PASSIVE before importing "
                          f"slide to wait passively)"}
    os.environ[ENV] = "PASSIVE"
    return {**seen, "threads": fewer, "wait_policy": "PASSIVE", "reason": f"{why}, waiting passively"}
