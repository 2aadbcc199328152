"""slide.cpu_share: a run notices other CPU-bound work and has OpenMP wait passively instead of spinning."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from slide import cpu_share

CPU_QUOTA = cpu_share.cpu_quota  # the real one: a fixture below stands in for it in the other tests

STAT = """cpu  100 0 100 800 0 0 0 0 0 0
cpu0 {u0} 0 0 {i0} 0 0 0 0 0 0
cpu1 {u1} 0 0 {i1} 0 0 0 0 0 0
intr 1 2 3
"""


@pytest.fixture(autouse=True)
def no_quota(monkeypatch):
    """The tests below say what the cores look like; a quota on the machine running them must not add to it."""
    monkeypatch.setattr(cpu_share, "cpu_quota", lambda *a, **k: None)


def test_free_cores_counts_idle_time_of_the_allowed_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    stat = tmp_path / "stat"
    snapshots = iter([STAT.format(u0=0, i0=0, u1=0, i1=0), STAT.format(u0=100, i0=0, u1=25, i1=75)])
    real_read = type(stat).read_text
    monkeypatch.setattr(type(stat), "read_text", lambda self, *a, **k: next(snapshots) if self == stat else real_read(self))
    # cpu0 fully busy, cpu1 75% idle: 0.75 cores free
    assert cpu_share.free_cores(seconds=0, proc=tmp_path) == pytest.approx(0.75)


def test_free_cores_ignores_cpus_outside_the_affinity_mask(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1})
    stat = tmp_path / "stat"
    snapshots = iter([STAT.format(u0=0, i0=0, u1=0, i1=0), STAT.format(u0=100, i0=0, u1=0, i1=100)])
    real_read = type(stat).read_text
    monkeypatch.setattr(type(stat), "read_text", lambda self, *a, **k: next(snapshots) if self == stat else real_read(self))
    assert cpu_share.free_cores(seconds=0, proc=tmp_path) == pytest.approx(1.0)


def test_unreadable_proc_gives_none(tmp_path):
    assert cpu_share.free_cores(seconds=0, proc=tmp_path / "missing") is None


@pytest.mark.parametrize("free, policy, threads", [(2.0, "default", 2), (1.6, "default", 2), (1.2, "PASSIVE", 1),
                                                   (0.1, "PASSIVE", 1), (None, "default", 2)])
def test_policy_follows_the_free_cores(monkeypatch, free, policy, threads):
    monkeypatch.delenv(cpu_share.ENV, raising=False)
    monkeypatch.delitem(sys.modules, "slide._native", raising=False)
    got = cpu_share.share_cores(2, measure=lambda: free)
    assert got["wait_policy"] == policy and got["requested_threads"] == 2 and got["threads"] == threads
    assert os.environ.get(cpu_share.ENV) == ("PASSIVE" if policy == "PASSIVE" else None)
    assert got["reason"]


def test_a_policy_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv(cpu_share.ENV, "ACTIVE")
    got = cpu_share.share_cores(2, measure=lambda: 0.0)
    assert got["wait_policy"] == "ACTIVE" and "user" in got["reason"] and got["threads"] == 1
    assert os.environ[cpu_share.ENV] == "ACTIVE"


def test_a_thread_sweep_keeps_its_count_and_policy_on_busy_cores(monkeypatch):
    """A sweep's thread count is what it measures: fewer threads would mislabel the run."""
    monkeypatch.delenv(cpu_share.ENV, raising=False)
    monkeypatch.delitem(sys.modules, "slide._native", raising=False)
    got = cpu_share.share_cores(2, measure=lambda: 0.1, keep_threads=True)
    assert got["threads"] == 2 and got["wait_policy"] == "default" and got["free_cores"] == 0.1
    assert "keeps its 2 thread(s)" in got["reason"]
    assert cpu_share.ENV not in os.environ


def test_too_late_once_openmp_has_started(monkeypatch):
    monkeypatch.delenv(cpu_share.ENV, raising=False)
    monkeypatch.setitem(sys.modules, "slide._native", object())
    got = cpu_share.share_cores(2, measure=lambda: 0.0)
    assert got["wait_policy"] == "default" and "OpenMP had started" in got["reason"] and got["threads"] == 1
    assert cpu_share.ENV not in os.environ


def test_training_records_the_decision_in_final_json(tmp_path):
    """A real run in a fresh process (OpenMP not loaded yet) that finds the cores busy: it waits passively, says
    so on stderr and in final.json."""
    from slide.atomic import write_json
    from slide.data.csr import save_split
    from slide.data.synthetic import SyntheticSpec, generate

    train, test = generate(SyntheticSpec(n_train=600, n_test=200, n_features=300, n_labels=100, seed=2))
    save_split(tmp_path / "train.npz", train)
    save_split(tmp_path / "test.npz", test)
    write_json(tmp_path / "meta.json", {"dataset": "busy"})
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        import slide.cpu_share as cs
        from slide.training.slide_model import train_slide
        cs.free_cores = lambda seconds=0.25, proc="/proc": 0.3  # as if other work held the cores
        cs.cpu_quota = lambda *a, **k: None
        d = Path({str(tmp_path)!r})
        cfg = {{"model": {{"hidden": [16], "init_std": 0.05}},
               "train": {{"lr": 0.001, "epochs": 1, "eval_every": 5, "eval_samples": 50, "batch_size": 64}},
               "slide": {{"layers": [{{"sparsity": 1.0}}, {{"sparsity": 1.0}}]}}}}
        final = train_slide(d / "train.npz", d / "test.npz", d / "meta.json", d / "run", cfg, threads=2, progress=False)
        print(json.dumps(final["cpu_share"]))
    """)
    env = {k: v for k, v in os.environ.items() if k != cpu_share.ENV}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["wait_policy"] == "PASSIVE" and got["free_cores"] == 0.3 and got["requested_threads"] == 2
    assert got["threads"] == 1
    assert "OpenMP wait policy: PASSIVE" in r.stderr
    saved = json.loads((tmp_path / "run" / "final.json").read_text())
    assert saved["cpu_share"] == got and saved["threads"] == 1


# ---- CPU quotas (cgroups) ----------------------------------------------------------------------

def _tree(tmp_path, cgroup_line: str, files: dict[str, str]):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup_line)
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return proc, root


def test_cpu_quota_of_cgroup_v2_is_the_smallest_on_the_way_up(tmp_path):
    proc, root = _tree(tmp_path, "0::/user.slice/job\n", {
        "cpu.max": "max 100000\n", "user.slice/cpu.max": "300000 100000\n", "user.slice/job/cpu.max": "max 100000\n"})
    assert CPU_QUOTA(proc, root) == pytest.approx(3.0)
    (root / "user.slice" / "job" / "cpu.max").write_text("150000 100000\n")
    assert CPU_QUOTA(proc, root) == pytest.approx(1.5)


def test_cpu_quota_of_cgroup_v1_and_of_a_container_own_hierarchy(tmp_path):
    # the container's hierarchy is mounted as the root: /proc/self/cgroup names a path that does not exist there
    proc, root = _tree(tmp_path, "4:cpu,cpuacct:/docker/abc\n2:memory:/docker/abc\n", {
        "cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert CPU_QUOTA(proc, root) == pytest.approx(2.0)
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    assert CPU_QUOTA(proc, root) is None


def test_no_quota_or_nothing_readable_gives_none(tmp_path):
    proc, root = _tree(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert CPU_QUOTA(proc, root) is None
    assert CPU_QUOTA(tmp_path / "missing", root) is None


@pytest.mark.parametrize("idle, quota, threads, policy", [(2.0, 1.0, 1, "PASSIVE"), (2.0, 2.0, 2, "default"),
                                                          (None, 1.0, 1, "PASSIVE"), (0.2, 1.0, 1, "PASSIVE")])
def test_a_cpu_quota_caps_the_free_cores(monkeypatch, idle, quota, threads, policy):
    """A container limited to one core sees the host's idle cores; its second thread would only wait."""
    monkeypatch.delenv(cpu_share.ENV, raising=False)
    monkeypatch.delitem(sys.modules, "slide._native", raising=False)
    got = cpu_share.share_cores(2, measure=lambda: idle, quota=lambda: quota)
    assert got["threads"] == threads and got["wait_policy"] == policy and got["cpu_quota_cores"] == quota
    if quota < (idle if idle is not None else 99) and threads < 2:
        assert got["reason"].startswith(f"the CPU quota allows {quota:.1f} cores for 2 threads, so 1 thread(s)")
    elif threads < 2:
        assert got["reason"].startswith("only 0.2 cores free")


def test_a_cpu_quota_is_seen_from_a_real_cgroup():
    """Where this machine lets a test make a cgroup with a quota (root, cgroup v1 or v2 with the cpu controller)."""
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    base = v1 if (v1 / "cpu.cfs_quota_us").exists() else v2 if (v2 / "cgroup.subtree_control").exists() else None
    if base is None or not os.access(base, os.W_OK):
        pytest.skip("no writable cgroup hierarchy with the cpu controller")
    d = base / f"slide-test-{os.getpid()}"
    try:
        d.mkdir()
        if base == v1:
            (d / "cpu.cfs_quota_us").write_text("50000")  # half a core of the 100 ms period
        else:
            (d / "cpu.max").write_text("50000 100000")
    except OSError as e:
        pytest.skip(f"cannot make a cgroup with a quota here: {e}")
    try:
        code = "from slide.cpu_share import cpu_quota, share_cores; import json; print(json.dumps([cpu_quota(), share_cores(2)]))"
        r = subprocess.run(["sh", "-c", f'echo $$ > "{d}/cgroup.procs" && exec "$0" -c "$1"', sys.executable, code],
                           capture_output=True, text=True, timeout=120, env={k: v for k, v in os.environ.items()
                                                                               if k != cpu_share.ENV})
        assert r.returncode == 0, r.stderr[-2000:]
        quota, decision = json.loads(r.stdout.strip().splitlines()[-1])
        assert quota == pytest.approx(0.5)
        assert decision["threads"] == 1 and decision["wait_policy"] == "PASSIVE" and decision["cpu_quota_cores"] == 0.5
    finally:
        d.rmdir()
