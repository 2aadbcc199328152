"""Host check (slide.system) against fake /proc + /sys trees and against this machine."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from slide.system import HostCheckError, best_isa, check_host, main, volatile_readings

AVX512_FLAGS = ("fpu sse sse2 ssse3 sse4_1 sse4_2 fma f16c avx avx2 avx512f avx512dq avx512cd avx512bw "
                "avx512vl avx512_vnni avx512_bf16 amx_bf16 pdpe1gb")
AVX2_FLAGS = "fpu sse sse2 ssse3 sse4_1 sse4_2 fma f16c avx avx2 pdpe1gb"
THP = "/sys/kernel/mm/transparent_hugepage"
HP = "/sys/kernel/mm/hugepages/hugepages-{}kB"


def make_tree(root: Path, *, flags=AVX512_FLAGS, model="Intel(R) Xeon(R) Platinum 8480+", sockets=2, cores=2,
              thp="always [madvise] never", pools=None, default_kb=2048, mem_available_kb=20_000_000) -> Path:
    """A fake host: `pools` maps page size in kB -> (total, free, reserved); None leaves a file out."""
    blocks = []
    for cpu in range(sockets * cores):
        blocks.append(f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\n"
                      f"physical id\t: {cpu // cores}\ncore id\t\t: {cpu % cores}\nflags\t\t: {flags}\n")
    files = {
        "/proc/cpuinfo": "\n".join(blocks) + "\n",
        "/proc/meminfo": f"MemTotal:       32000000 kB\nMemAvailable:   {mem_available_kb} kB\n"
                         f"HugePages_Total:       0\nHugepagesize:       {default_kb} kB\n",
        f"{THP}/enabled": thp and thp + "\n",
        f"{THP}/defrag": thp and "always defer defer+madvise [madvise] never\n",
        "/etc/os-release": 'NAME="Test"\nPRETTY_NAME="Test Linux 1"\n',
    }
    for kb, (total, free, resv) in (pools if pools is not None else {2048: (0, 0, 0), 1048576: (0, 0, 0)}).items():
        (root / HP.format(kb).lstrip("/")).mkdir(parents=True, exist_ok=True)
        files |= {f"{HP.format(kb)}/nr_hugepages": total, f"{HP.format(kb)}/free_hugepages": free,
                  f"{HP.format(kb)}/resv_hugepages": resv}
    for path, text in files.items():
        if text is not None:
            (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (root / path.lstrip("/")).write_text(f"{text}\n" if isinstance(text, int) else text)
    return root


def whats(report):
    return [p["what"] for p in report["problems"]]


def test_avx512_host_with_enough_hugepages_is_ok(tmp_path):
    root = make_tree(tmp_path, pools={2048: (1000, 1000, 0), 1048576: (10, 10, 0)})
    r = check_host("strict", 900, 10, proc_root=root)
    assert r["status"] == "ok" and r["problems"] == []
    assert r["isa"] == "avx512_bf16"  # the fixture CPU has avx512_bf16 too
    assert all(r["cpu"]["flags"].values())
    assert r["cpu"]["model"] == "Intel(R) Xeon(R) Platinum 8480+" and r["cpu"]["vendor"] == "GenuineIntel"
    assert r["cpu"]["physical_cores"] == 4 and r["cpu"]["logical_cores"] >= 1
    assert r["cpu"]["quota_cores"] is None  # the fake tree has no cgroup
    assert r["memory"] == {"total_bytes": 32000000 * 1024}
    assert r["thp"] == {"enabled": "madvise", "defrag": "madvise"}
    assert r["hugepages"] == {"default_size_kb": 2048,
                              "2048kB": {"supported": True, "total": 1000, "enough_free": True},
                              "1048576kB": {"supported": True, "total": 10, "enough_free": True}}
    assert r["os"]["distro"] == "Test Linux 1"
    assert r["required"] == {"policy": "strict", "hugepages_2mb": 900, "hugepages_1gb": 10}
    json.dumps(r)


def test_a_cpu_quota_is_reported(tmp_path):
    """A container started with --cpus 1.5: every core of the host is visible, 1.5 of them usable in time."""
    root = make_tree(tmp_path)
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text("0::/\n")
    (root / "sys/fs/cgroup").mkdir(parents=True)
    (root / "sys/fs/cgroup/cpu.max").write_text("150000 100000\n")
    assert check_host(proc_root=root)["cpu"]["quota_cores"] == 1.5


def test_avx2_host_warns_that_the_core_uses_avx2_kernels(tmp_path, caplog):
    r = check_host(proc_root=make_tree(tmp_path, flags=AVX2_FLAGS))
    assert r["isa"] == "avx2" and r["status"] == "warn"
    assert r["cpu"]["flags"]["avx2"] and not r["cpu"]["flags"]["avx512f"]
    [p] = r["problems"]
    assert "AVX-512" in p["what"] and "-mavx512f" in p["why"] and "avx2 kernels" in p["why"]
    assert "AVX-512" in caplog.text  # warn prints (logs) the problem


@pytest.mark.parametrize("flags, isa", [
    ({"avx512f": True, "avx512bw": True, "avx512vl": True, "avx512dq": True, "avx2": True, "fma": True}, "avx512"),
    ({"avx512f": True, "avx512bw": True, "avx512vl": True, "avx512dq": True, "avx512_bf16": True}, "avx512_bf16"),
    ({"avx512f": False, "avx512bw": True, "avx512vl": True, "avx512dq": True, "avx512_bf16": True, "avx2": True,
      "fma": True}, "avx2"),
    ({"avx512f": True, "avx512bw": False, "avx512vl": True, "avx512dq": True, "avx2": True, "fma": True}, "avx2"),
    ({"avx2": True, "fma": False}, "scalar"),
    ({"avx2": None, "fma": None}, "scalar"),
])
def test_best_isa(flags, isa):
    assert best_isa(flags) == isa


def test_old_vnni_spelling_and_flags_common_to_all_cpus(tmp_path):
    old = AVX512_FLAGS.replace("avx512_vnni", "avx512vnni")
    root = make_tree(tmp_path, flags=old)
    cpuinfo = root / "proc/cpuinfo"  # one CPU without avx512bw: the whole host cannot use AVX-512
    cpuinfo.write_text(cpuinfo.read_text() + f"\nprocessor\t: 9\nflags\t\t: {old.replace('avx512bw', '')}\n")
    r = check_host(proc_root=root)
    assert r["cpu"]["flags"]["avx512_vnni"] is True
    assert r["cpu"]["flags"]["avx512bw"] is False and r["isa"] == "avx2"


def test_empty_tree_is_unknown_not_a_crash(tmp_path):
    r = check_host("warn", 900, 10, proc_root=tmp_path)  # no /proc, no /sys at all
    assert r["cpu"]["model"] is None and r["cpu"]["physical_cores"] is None
    assert set(r["cpu"]["flags"].values()) == {None} and r["isa"] == "scalar"
    assert r["memory"]["total_bytes"] is None and r["thp"] == {"enabled": None, "defrag": None}
    assert r["hugepages"]["2048kB"] == {"supported": False, "total": None, "enough_free": False}
    assert len(r["problems"]) == 4  # AVX-512 unknown, THP unknown, both hugepage sizes
    assert "could not read the CPU flags" in r["problems"][0]["why"]
    assert volatile_readings(tmp_path) == {"memory_available_bytes": None, "hugepages": {
        "2048kB": {"free": None, "reserved": None}, "1048576kB": {"free": None, "reserved": None}}}
    json.dumps(r)


def test_no_hugepage_dirs_and_garbage_files(tmp_path):
    root = make_tree(tmp_path, pools={})
    (root / "proc/meminfo").write_text("MemTotal: lots\nnonsense line\n")
    r = check_host("warn", 0, 0, proc_root=root)
    assert r["status"] == "ok"  # nothing requested, so missing pools are not a problem
    assert r["hugepages"]["2048kB"]["supported"] is False and r["memory"]["total_bytes"] is None
    r = check_host("warn", 16, 0, proc_root=root)
    [p] = r["problems"]
    assert "hugepages-2048kB missing" in p["why"]
    # meminfo unreadable -> default size unknown -> the explicit sysfs command
    assert p["fix"] == ["echo 16 | sudo tee /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"]


def test_thp_never_is_a_problem(tmp_path):
    r = check_host(proc_root=make_tree(tmp_path, thp="always madvise [never]"))
    assert r["thp"]["enabled"] == "never"
    [p] = [p for p in r["problems"] if "transparent" in p["what"]]
    assert p["fix"] == ["echo madvise | sudo tee /sys/kernel/mm/transparent_hugepage/enabled"]


def test_strict_fails_with_the_fix_commands(tmp_path):
    root = make_tree(tmp_path, flags=AVX2_FLAGS, thp="always madvise [never]")
    with pytest.raises(HostCheckError) as e:
        check_host("strict", 900, 10, proc_root=root)
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for expected in ("AVX-512", "sudo sysctl -w vm.nr_hugepages=900",
                     "echo 10 | sudo tee /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
                     "hugepagesz=1G hugepages=10",
                     "echo madvise | sudo tee /sys/kernel/mm/transparent_hugepage/enabled"):
        assert expected in msg


def test_warn_passes_and_records_the_same_problems(tmp_path, caplog):
    root = make_tree(tmp_path, flags=AVX2_FLAGS, thp="always madvise [never]")
    with caplog.at_level(logging.WARNING):
        r = check_host("warn", 900, 10, proc_root=root)
    assert r["status"] == "warn" and len(r["problems"]) == 4
    assert caplog.text.count("host check:") == 4


def test_pool_in_use_by_others_grows_by_what_we_need(tmp_path):
    root = make_tree(tmp_path, pools={2048: (1000, 100, 50), 1048576: (0, 0, 0)}, default_kb=1048576)
    [p] = check_host("warn", 900, proc_root=root)["problems"]
    assert "the pool has 1000" in p["why"]
    # 2 MB is not the default size here, so vm.nr_hugepages would set the wrong pool
    assert p["fix"] == ["echo 1900 | sudo tee /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"]


def test_report_ignores_volatile_readings(tmp_path):
    a = check_host("warn", 100, proc_root=make_tree(tmp_path / "a", pools={2048: (500, 400, 3), 1048576: (0, 0, 0)}))
    b = check_host("warn", 100, proc_root=make_tree(tmp_path / "b", pools={2048: (500, 120, 80), 1048576: (0, 0, 0)},
                                                    mem_available_kb=1_000))
    assert a == b  # free memory and free/reserved hugepages moved; the decision did not
    assert "free" not in json.dumps(a["hugepages"]).replace("enough_free", "")
    v = volatile_readings(tmp_path / "b")
    assert v["memory_available_bytes"] == 1_024_000 and v["hugepages"]["2048kB"] == {"free": 120, "reserved": 80}


def test_aarch64_cpuinfo_has_none_of_the_x86_flags(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd sve\nCPU implementer\t: 0x41\n")
    r = check_host(proc_root=tmp_path)
    assert set(r["cpu"]["flags"].values()) == {False} and r["isa"] == "scalar"
    assert r["cpu"]["vendor"] == "0x41"


def test_bad_policy():
    with pytest.raises(ValueError, match="system.policy"):
        check_host("lenient")


def test_cli_prints_json_and_strict_exits_nonzero(tmp_path, capsys):
    root = make_tree(tmp_path, flags=AVX2_FLAGS)
    assert main(["--proc-root", str(root), "--hugepages-2mb", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["isa"] == "avx2" and out["volatile"]["hugepages"]["2048kB"]["free"] == 0
    assert main(["--proc-root", str(root), "--policy", "strict", "--hugepages-2mb", "4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: host check failed") and "sudo sysctl -w vm.nr_hugepages=4" in err


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs a Linux /proc")
def test_real_host_matches_its_own_files():
    r = check_host()
    json.dumps(r)
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
    assert r["cpu"]["flags"]["avx2"] == ("avx2" in flags)
    assert r["cpu"]["flags"]["avx512f"] == ("avx512f" in flags)
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
    want = ("avx512_bf16" if avx512 and "avx512_bf16" in flags else "avx512") if avx512 else (
        "avx2" if {"avx2", "fma"} <= flags else "scalar")
    assert r["isa"] == want
    assert ("avx512f" in flags) == all("AVX-512" not in w for w in whats(r))
    thp = Path(f"{THP}/enabled")
    if thp.exists():
        assert f"[{r['thp']['enabled']}]" in thp.read_text()
    assert r["memory"]["total_bytes"] > 0
    assert r == check_host()  # deterministic for an unchanged host
