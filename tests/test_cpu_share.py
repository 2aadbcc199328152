"""slide.cpu_share: a run notices other CPU-bound work and has OpenMP wait passively instead of spinning."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from slide import cpu_share

STAT = """cpu  100 0 100 800 0 0 0 0 0 0
cpu0 {u0} 0 0 {i0} 0 0 0 0 0 0
cpu1 {u1} 0 0 {i1} 0 0 0 0 0 0
intr 1 2 3
"""


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
