"""Host check: can this machine run SLIDE the way the paper did (AVX-512, hugepages, THP)?

`check_host` reads /proc and /sys (under `proc_root`, so tests can point it at a fake tree) and returns
a JSON-able report: CPU, ISA flags, the best kernel level for the native core, memory, THP, hugepages,
versions, what config asked for, and a list of problems with the exact commands that fix them.
A missing or unreadable file becomes None ("unknown"), never a crash: containers and non-Linux hosts
just get a thinner report.

The report is rule check_system's output, an input of the native build: it must be identical for an
unchanged host (no timestamps), or every run would rebuild and retrain. Readings that change from run to
run (available memory, free and in-use hugepages) are therefore NOT in it; `volatile_readings` returns
them for the log and the CLI, and the report keeps only the decision taken from them ("enough_free").

CLI: python -m slide.system [--policy strict] [--hugepages-2mb N] [--hugepages-1gb N] [--proc-root DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path

from .cpu_share import cpu_quota

log = logging.getLogger(__name__)

# report key -> /proc/cpuinfo spellings (kernels before 4.x wrote "avx512vnni")
FLAGS = {
    "avx512f": ("avx512f",), "avx512bw": ("avx512bw",), "avx512vl": ("avx512vl",),
    "avx512dq": ("avx512dq",), "avx512cd": ("avx512cd",), "avx512_vnni": ("avx512_vnni", "avx512vnni"),
    "avx512_bf16": ("avx512_bf16",), "avx2": ("avx2",), "fma": ("fma",), "f16c": ("f16c",),
    "sse4_2": ("sse4_2",), "amx_bf16": ("amx_bf16",),
}
# what each kernel level of the native core is compiled for (best first)
ISA_NEEDS = {"avx512_bf16": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"),
             "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq"), "avx2": ("avx2", "fma")}
PAGE_SIZES = {"hugepages_2mb": (2048, "2 MB"), "hugepages_1gb": (1048576, "1 GB")}
HUGEPAGES_SYSFS = "/sys/kernel/mm/hugepages/hugepages-{kb}kB"
THP_SYSFS = "/sys/kernel/mm/transparent_hugepage"


class HostCheckError(RuntimeError):
    """policy strict and the host lacks something; the message lists each problem and its fix."""


class _Tree:
    """Reads files under a root; anything missing or unreadable is None."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def text(self, path: str) -> str | None:
        try:
            return (self.root / path.lstrip("/")).read_text(errors="replace")
        except (OSError, ValueError):
            return None

    def int(self, path: str) -> int | None:
        try:
            return int((self.text(path) or "").strip())
        except ValueError:
            return None

    def isdir(self, path: str) -> bool:
        return (self.root / path.lstrip("/")).is_dir()


def _cpuinfo(tree: _Tree) -> list[dict[str, str]]:
    """One dict per processor block of /proc/cpuinfo (empty if unreadable)."""
    blocks, cur = [], {}
    for line in (tree.text("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            cur[key.strip()] = value.strip()
        elif not line.strip() and cur:
            blocks.append(cur)
            cur = {}
    return blocks + [cur] if cur else blocks


def _meminfo_kb(tree: _Tree) -> dict[str, int]:
    out = {}
    for line in (tree.text("/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if value.split() and value.split()[0].isdigit():
            out[key.strip()] = int(value.split()[0])
    return out


def _bracketed(text: str | None) -> str | None:
    """'always [madvise] never' -> 'madvise'."""
    for word in (text or "").split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


def read_cpu(tree: _Tree) -> dict:
    blocks = _cpuinfo(tree)
    first = blocks[0] if blocks else {}
    flag_lists = [set(b["flags"].split()) for b in blocks if "flags" in b]
    if flag_lists:  # flags every logical CPU has (hybrid or odd VMs may differ per core)
        have = set.intersection(*flag_lists)
        flags = {k: any(s in have for s in spellings) for k, spellings in FLAGS.items()}
    elif any("Features" in b for b in blocks):  # non-x86 (e.g. aarch64): none of these exist
        flags = dict.fromkeys(FLAGS, False)
    else:
        flags = dict.fromkeys(FLAGS)
    cores = {(b.get("physical id"), b["core id"]) for b in blocks if "core id" in b}
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": first.get("model name") or first.get("Model") or first.get("Hardware"),
        "vendor": first.get("vendor_id") or first.get("CPU implementer"),
        "logical_cores": logical,  # usable by this process (affinity / cpuset), not the whole machine
        # the cores a CPU quota (container --cpus, cgroup cpu.max) lets it use in time; None: no quota
        "quota_cores": cpu_quota(tree.root / "proc", tree.root / "sys/fs/cgroup"),
        "physical_cores": len(cores) or None,
        "flags": flags,
    }


def best_isa(flags: dict[str, bool | None]) -> str:
    """Best kernel level of the native core this CPU runs; unknown flags count as absent."""
    for isa, needs in ISA_NEEDS.items():
        if all(flags.get(f) for f in needs):
            return isa
    return "scalar"


def _hugepage_pools(tree: _Tree) -> dict[str, dict]:
    pools = {}
    for kb, _ in PAGE_SIZES.values():
        d = HUGEPAGES_SYSFS.format(kb=kb)
        pools[f"{kb}kB"] = {"supported": tree.isdir(d), "total": tree.int(f"{d}/nr_hugepages"),
                            "free": tree.int(f"{d}/free_hugepages"), "reserved": tree.int(f"{d}/resv_hugepages")}
    return pools


def volatile_readings(proc_root: str | os.PathLike = "/") -> dict:
    """Readings that change between runs and so stay out of check.json (logged instead)."""
    tree = _Tree(proc_root)
    avail = _meminfo_kb(tree).get("MemAvailable")
    return {"memory_available_bytes": avail * 1024 if avail is not None else None,
            "hugepages": {size: {"free": p["free"], "reserved": p["reserved"]}
                          for size, p in _hugepage_pools(tree).items()}}


def _problem(what: str, why: str, fix: list[str]) -> dict:
    return {"what": what, "why": why, "fix": fix}


def _avx512_problem(flags: dict, isa: str) -> dict | None:
    missing = [f for f in ISA_NEEDS["avx512"] if not flags[f]]
    if not missing:
        return None
    seen = "could not read the CPU flags" if flags["avx512f"] is None else f"the CPU lacks {' '.join(missing)}"
    return _problem(
        "AVX-512 (avx512f avx512bw avx512vl avx512dq)",
        f"{seen}: the original SLIDE is compiled with -mavx512f and cannot run here; our native core "
        f"still runs, with its {isa} kernels (slower than the paper's AVX-512 setup)",
        ["# no command fixes this: use a CPU with AVX-512 (Intel Xeon Skylake-SP or newer, AMD Zen 4 or newer)",
         "# in a VM, pass the host CPU through (QEMU: -cpu host; libvirt: <cpu mode='host-passthrough'/>)"])


def _hugepage_problem(key: str, want: int, pool: dict, default_kb: int | None) -> dict | None:
    kb, label = PAGE_SIZES[key]
    if want <= 0 or (pool["free"] or 0) >= want:
        return None
    total = pool["total"] or 0
    # pages in use by others stay in use: grow the pool by what we need (free count left out: volatile)
    target = want if total < want else total + want
    sysfs = f"{HUGEPAGES_SYSFS.format(kb=kb)}/nr_hugepages"
    if kb == default_kb:
        fix = [f"sudo sysctl -w vm.nr_hugepages={target}",
               f"# keep it after reboots: echo 'vm.nr_hugepages = {target}' | sudo tee /etc/sysctl.d/80-hugepages.conf"]
    else:
        fix = [f"echo {target} | sudo tee {sysfs}"]
    if kb == 1048576:
        fix.append(f"# 1 GB pages often cannot be reserved once memory is fragmented: boot with the kernel "
                   f"command line 'hugepagesz=1G hugepages={target}' (GRUB_CMDLINE_LINUX in /etc/default/grub, "
                   f"then sudo update-grub and reboot)")
    if not pool["supported"]:
        why = (f"the kernel offers no {label} pages ({HUGEPAGES_SYSFS.format(kb=kb)} missing: no hugetlbfs, "
               f"a CPU without that page size, or /sys hidden in a container; containers use the host's pool)")
    elif pool["free"] is None:
        why = f"cannot read {HUGEPAGES_SYSFS.format(kb=kb)}/free_hugepages"
    else:
        why = f"fewer than {want} of them are free (the pool has {total})"
    return _problem(f"{want} free {label} hugepages (config system.{key})",
                    f"{why}; the native core falls back to THP, then plain pages", fix)


def _thp_problem(enabled: str | None) -> dict | None:
    if enabled in ("always", "madvise"):
        return None
    why = ("transparent hugepages are disabled" if enabled == "never" else
           f"cannot read {THP_SYSFS}/enabled (kernel without THP, or /sys hidden in a container)")
    return _problem("transparent hugepages (madvise or always)",
                    f"{why}: without reserved hugepages the core falls back to plain 4 KB pages (more TLB misses)",
                    [f"echo madvise | sudo tee {THP_SYSFS}/enabled"])


def check_host(policy: str = "warn", hugepages_2mb: int = 0, hugepages_1gb: int = 0, *,
               proc_root: str | os.PathLike = "/") -> dict:
    """The host report (deterministic for an unchanged host). policy 'strict' raises HostCheckError
    when there are problems; 'warn' logs them as warnings and returns."""
    if policy not in ("warn", "strict"):
        raise ValueError(f"system.policy: expected 'warn' or 'strict', got {policy!r}")
    tree = _Tree(proc_root)
    cpu = read_cpu(tree)
    isa = best_isa(cpu["flags"])
    mem = _meminfo_kb(tree)
    default_kb = mem.get("Hugepagesize")
    pools = _hugepage_pools(tree)
    thp = {"enabled": _bracketed(tree.text(f"{THP_SYSFS}/enabled")),
           "defrag": _bracketed(tree.text(f"{THP_SYSFS}/defrag"))}
    required = {"policy": policy, "hugepages_2mb": hugepages_2mb, "hugepages_1gb": hugepages_1gb}

    problems = [_avx512_problem(cpu["flags"], isa), _thp_problem(thp["enabled"])]
    hugepages: dict = {"default_size_kb": default_kb}
    for key, (kb, _) in PAGE_SIZES.items():
        pool = pools[f"{kb}kB"]
        problem = _hugepage_problem(key, required[key], pool, default_kb)
        problems.append(problem)
        hugepages[f"{kb}kB"] = {"supported": pool["supported"], "total": pool["total"],
                                "enough_free": problem is None}
    problems = [p for p in problems if p]

    report = {
        "cpu": cpu, "isa": isa,
        "memory": {"total_bytes": mem["MemTotal"] * 1024 if "MemTotal" in mem else None},
        "thp": thp, "hugepages": hugepages,
        "os": {"system": platform.system(), "kernel": platform.release(), "machine": platform.machine(),
               "distro": _os_release(tree)},
        "python": platform.python_version(),
        "required": required, "problems": problems, "status": "warn" if problems else "ok",
    }
    if problems and policy == "strict":
        raise HostCheckError(f"host check failed (system.policy: strict), {len(problems)} problem(s):\n"
                             + format_problems(problems)
                             + "\nFix them, or set system.policy: warn to run anyway.")
    for p in problems:
        log.warning("host check: %s", format_problems([p]))
    return report


def _os_release(tree: _Tree) -> str | None:
    for line in (tree.text("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"') or None
    return None


def format_problems(problems: list[dict]) -> str:
    lines = []
    for p in problems:
        lines.append(f"- missing {p['what']}: {p['why']}")
        lines += [f"    {cmd}" for cmd in p["fix"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slide.system", description=__doc__.splitlines()[0])
    ap.add_argument("--policy", choices=["warn", "strict"], default="warn")
    ap.add_argument("--hugepages-2mb", type=int, default=0, metavar="N", help="2 MB pages the run needs")
    ap.add_argument("--hugepages-1gb", type=int, default=0, metavar="N", help="1 GB pages the run needs")
    ap.add_argument("--proc-root", default="/", help="read /proc and /sys under this directory")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        report = check_host(args.policy, args.hugepages_2mb, args.hugepages_1gb, proc_root=args.proc_root)
    except HostCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report["volatile"] = volatile_readings(args.proc_root)  # printed only; never part of check.json
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
