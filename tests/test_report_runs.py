"""Loading runs and side files for the report: grouping, aggregation, defensive key lookup, clear errors."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slide.report.runs import (Run, aggregate_curve, discover_runs, group_runs, host_label, load_run,
                               majority_p1, majority_pk, read_json, read_metrics, runs_in)

FIX = Path(__file__).parent / "data" / "report" / "results"
RUNS = FIX / "runs" / "fixture"


def run(system, p1, seconds, steps=None, threads=2, seed=0, final=True):
    steps = steps if steps is not None else [50 * i for i in range(len(p1))]
    m = pd.DataFrame({"system": system, "step": steps, "epoch": np.asarray(steps) / 100.0,
                      "train_seconds": seconds, "wall_seconds": np.asarray(seconds) + 1, "p_at_1": p1,
                      "p_at_3": p1, "p_at_5": p1, "eval_samples": 100, "loss": 1.0})
    f = ({"system": system, "p_at_1": p1[-1], "p_at_3": 0.2, "p_at_5": 0.1, "test_samples": 500,
          "steps": steps[-1], "epochs": steps[-1] / 100.0, "train_seconds": seconds[-1],
          "seconds_per_batch": seconds[-1] / max(steps[-1], 1), "peak_rss_bytes": 2 ** 30, "threads": threads,
          "config": {"seed": seed}} if final else None)
    return Run(system, Path(f"/nowhere/{system}/t{threads}s{seed}"), m, f)


def test_fixture_runs_load_in_config_order():
    runs = discover_runs(RUNS, ["tf_sampled", "slide", "tf_full"])
    assert [r.system for r in runs] == ["tf_sampled", "slide", "tf_full"]
    assert all(r.ok and r.threads == 2 and r.seed == 0 for r in runs)
    assert list(runs[1].metrics["p_at_1"])[:3] == [0, 0.05, 0.12]


def test_nested_sweep_runs_are_found_and_checkpoints_ignored(tmp_path):
    for sub in ("t1/s0", "t1/s1", "t2/s0"):
        shutil.copytree(RUNS / "slide", tmp_path / "slide" / sub)
    (tmp_path / "slide" / "t2/s0/checkpoint").mkdir()
    shutil.copy(RUNS / "slide" / "metrics.csv", tmp_path / "slide" / "t2/s0/checkpoint/metrics.csv")
    runs = runs_in([tmp_path / "slide", tmp_path / "tf_full"])  # tf_full: no directory -> no runs
    assert sorted(str(r.path.relative_to(tmp_path)) for r in runs) == ["slide/t1/s0", "slide/t1/s1", "slide/t2/s0"]
    assert {r.system for r in runs} == {"slide"}


def test_missing_final_json_is_a_run_without_final(tmp_path):
    shutil.copytree(RUNS / "tf_full", tmp_path / "tf_full")
    (tmp_path / "tf_full" / "final.json").unlink()
    (r,) = runs_in([tmp_path / "tf_full"])
    assert r.final is None and not r.ok and r.metrics is not None and r.threads is None


def test_bad_metrics_give_one_line_errors_naming_the_file(tmp_path):
    good = (RUNS / "slide" / "metrics.csv").read_text().splitlines()
    p = tmp_path / "metrics.csv"
    p.write_text("\n".join([good[0].replace(",loss", "")] + [l.rsplit(",", 1)[0] for l in good[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.csv: missing column\(s\) loss") as e:
        read_metrics(p)
    assert "\n" not in str(e.value)
    bad = good[:3] + [good[3].replace(",0.12,", ",abc,")] + good[4:]
    p.write_text("\n".join(bad) + "\n")
    with pytest.raises(ValueError, match=r"metrics.csv:4: column p_at_1 must be numeric, got 'abc'"):
        read_metrics(p)
    p.write_text(good[0] + "\n")
    with pytest.raises(ValueError, match="no evaluation rows"):
        read_metrics(p)


def test_bad_final_json_names_file_and_line(tmp_path):
    d = tmp_path / "slide"
    shutil.copytree(RUNS / "slide", d)
    (d / "final.json").write_text('{\n  "p_at_1": 0.3,\n  oops\n}\n')
    with pytest.raises(ValueError, match=r"final.json:3: invalid JSON"):
        load_run(d)
    (d / "final.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        read_json(d / "final.json")


def test_group_runs_splits_by_threads_only_when_several():
    seeds = [run("slide", [0, .2], [0, 1], seed=s) for s in (0, 1)] + [run("tf_full", [0, .3], [0, 5])]
    groups = group_runs(seeds)
    assert [(g.system, g.threads, len(g.runs)) for g in groups] == [("slide", None, 2), ("tf_full", None, 1)]
    mixed = seeds + [run("slide", [0, .2], [0, .6], threads=4)]
    groups = group_runs(mixed)
    assert [(g.system, g.threads, len(g.runs)) for g in groups] == [("slide", 2, 2), ("slide", 4, 1),
                                                                     ("tf_full", 2, 1)]
    assert groups[1].label == "SLIDE (4 threads)"


def test_aggregate_curve_mean_min_max_and_common_steps():
    a = run("slide", [0, .2, .4, .5], [0, 1, 2, 3])
    b = run("slide", [0, .1, .3], [0, 2, 4], seed=1)  # stopped one evaluation earlier
    c = aggregate_curve([a, b])
    assert list(c["step"]) == [0, 50, 100]
    assert np.allclose(c["x"], [0, 1.5, 3]) and np.allclose(c["mean"], [0, .15, .35])
    assert np.allclose(c["min"], [0, .1, .3]) and np.allclose(c["max"], [0, .2, .4])
    assert np.allclose(c["sd"], [0, np.std([.2, .1], ddof=1), np.std([.4, .3], ddof=1)])


@pytest.mark.parametrize("meta, want", [
    ({"majority_p_at_1": 0.043, "majority_label": 17, "majority_p_at_3": 0.5}, 0.043),
    ({"majority_label": 3, "majority_label_share": 0.2}, 0.2),
    ({"baselines": {"majority": {"train": 0.05, "test": 0.043}}}, 0.043),
    ({"majority_baseline": 0.1}, 0.1),
    ({"majority_baseline": {"label": 1, "train_share": 0.05, "p_at_1": 0.04, "p_at_3": 0.03}}, 0.04),  # prepare.py
    ({"majority_baseline": {"label": 0, "train_share": 0.05}}, 0.05),
    ({"n_train": 10, "seed": 0}, None),
    ({"majority_label": 1}, None),
    (None, None),
])
def test_majority_baseline_is_found_under_any_reasonable_key(meta, want):
    assert majority_p1(meta) == want


def test_majority_pk_reads_the_data_stage_meta():
    meta = json.loads((FIX / "data/fixture/meta.json").read_text())
    assert majority_pk(meta) == {"p_at_1": 0.043, "p_at_3": 0.031, "p_at_5": 0.024}
    assert majority_pk({"majority_p_at_1": 0.1}) == {"p_at_1": 0.1}
    assert majority_pk({"n": 1}) == {}


def test_host_label_reads_the_host_check():
    check = json.loads((FIX / "system" / "check.json").read_text())
    assert host_label(check) == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz, 1 core (2 hardware threads)"
    assert host_label({"cpu": {"model": "AMD EPYC", "physical_cores": 8, "logical_cores": 8}}) == "AMD EPYC, 8 cores"
    assert host_label({"cpu_model": "X", "logical_cpus": 4}) == "X, 4 logical CPUs"
    assert host_label(None) == "unknown CPU"
