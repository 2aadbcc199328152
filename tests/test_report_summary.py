"""Summary numbers on hand-made metrics: time to target, never reached, missing systems, speedups."""
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from slide.report.make import make_summary
from slide.report.runs import discover_runs
from slide.report.summary import MAJORITY, summarize, time_to_target, to_markdown, write_summary

from test_report_runs import run  # noqa: E402  (in-memory Run builder shared by the report tests)

FIX = Path(__file__).parent / "data" / "report" / "results"
RUNS = FIX / "runs" / "fixture"
SYSTEMS = ["slide", "tf_full", "tf_sampled"]


def row(df, system):
    (r,) = df[df["system"] == system].to_dict("records")
    return r


def metrics(p1, seconds):
    return pd.DataFrame({"step": range(0, 50 * len(p1), 50), "train_seconds": seconds, "p_at_1": p1})


def test_time_to_target_interpolates_linearly_between_evaluations():
    m = metrics([0.0, 0.2, 0.4, 0.5], [0.0, 10.0, 20.0, 30.0])
    assert time_to_target(m, 0.3) == pytest.approx(15.0)
    assert time_to_target(m, 0.4) == pytest.approx(20.0)  # reached exactly at an evaluation
    assert time_to_target(m, 0.45) == pytest.approx(25.0)
    assert time_to_target(m, 0.0) == 0.0
    assert math.isnan(time_to_target(m, 0.51))


def test_time_to_target_uses_the_first_crossing_in_step_order():
    m = metrics([0.0, 0.4, 0.2, 0.5], [0.0, 4.0, 8.0, 12.0]).iloc[::-1]  # unsorted input, dip after crossing
    assert time_to_target(m, 0.3) == pytest.approx(3.0)


def test_sustained_rule_ignores_an_early_spike():
    m = metrics([0.0, 0.4, 0.1, 0.2, 0.4, 0.5], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert time_to_target(m, 0.3) == pytest.approx(0.75)  # first: the transient spike at 1 s
    assert time_to_target(m, 0.3, rule="sustained") == pytest.approx(3.5)
    assert time_to_target(m, 0.0, rule="sustained") == 0.0
    assert math.isnan(time_to_target(metrics([0, .5, .2], [0, 1, 2]), 0.3, rule="sustained"))  # ends below
    with pytest.raises(ValueError, match="target rule must be one of"):
        time_to_target(m, 0.3, rule="last")


def test_fixture_summary_numbers():
    df = summarize(discover_runs(RUNS, SYSTEMS), SYSTEMS, 0.9, majority=0.043)
    assert list(df["system"]) == SYSTEMS + [MAJORITY]
    # one measure for target and curve: the best curve P@1 at a reported (here: the last) step, tf_full's 0.415
    # (its full-test P@1 is 0.42: the target is not taken from another set of rows than the curve it is checked on)
    target = 0.9 * 0.415
    assert df["target_p_at_1"].tolist() == pytest.approx([target] * 4)
    s, full, samp = row(df, "slide"), row(df, "tf_full"), row(df, "tf_sampled")
    # slide: 0.37 at 9 s, 0.38 at 10 s -> 9.35 s; tf_full: 0.37 at 30 s, 0.39 at 35 s -> 30.875 s
    assert s["time_to_target_s"] == pytest.approx(9.35) and full["time_to_target_s"] == pytest.approx(30.875)
    assert (s["target_reached"], full["target_reached"], samp["target_reached"]) == ("yes", "yes", "no")
    assert math.isnan(samp["time_to_target_s"]) and math.isnan(samp["slide_speedup_time_to_target"])
    assert full["slide_speedup_time_to_target"] == pytest.approx(30.875 / 9.35)
    assert full["slide_speedup_per_batch"] == pytest.approx(0.10 / 0.02)
    assert samp["slide_speedup_per_batch"] == pytest.approx(0.04 / 0.02)
    assert s["slide_speedup_per_batch"] == pytest.approx(1.0)
    assert (s["p_at_1"], s["p_at_3"], s["p_at_5"]) == (0.385, 0.21, 0.15)
    assert s["train_seconds"] == 10.0 and s["peak_rss_gib"] == pytest.approx(1.5) and s["status"] == "ok"
    maj = row(df, MAJORITY)
    assert maj["p_at_1"] == 0.043 and maj["status"] == "baseline" and math.isnan(maj["time_to_target_s"])
    md = to_markdown(df, "fixture", "Xeon, 1 core", 0.9)
    assert "| TF sampled softmax | ok | 0.245 |" in md and "not reached" in md
    assert "3.30× to reach the target" in md and "5.00× per batch" in md
    assert "at least 2.14× to reach the target" in md  # tf_sampled's 20 s of training bound it from below
    assert "| majority-label baseline | baseline | 0.043 |" in md


def test_missing_system_is_listed_not_dropped(tmp_path):
    for s in ("slide", "tf_full"):
        shutil.copytree(RUNS / s, tmp_path / s)
    df = make_summary([tmp_path / s for s in SYSTEMS], dataset="fixture", target_fraction=0.9,
                      csv_path=tmp_path / "summary.csv", md_path=tmp_path / "summary.md",
                      html_path=tmp_path / "summary.html", meta=FIX / "data/fixture/meta.json",
                      check=FIX / "system/check.json")
    r = row(df, "tf_sampled")
    assert r["status"] == "missing: no run" and math.isnan(r["p_at_1"])
    maj = row(df, MAJORITY)  # from the fixture meta.json, laid out as the data stage writes it
    assert (maj["p_at_1"], maj["p_at_3"], maj["p_at_5"]) == (0.043, 0.031, 0.024)
    assert row(df, "tf_full")["slide_speedup_time_to_target"] == pytest.approx(30.875 / 9.35)
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert list(csv["system"]) == SYSTEMS + [MAJORITY] and csv.loc[2, "status"] == "missing: no run"
    md = (tmp_path / "summary.md").read_text()
    assert "Missing or failed runs: TF sampled softmax (missing: no run)." in md
    assert "Host: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz, 1 core (2 hardware threads)" in md
    html = (tmp_path / "summary.html").read_text()
    assert "<table>" in html and "missing: no run" in html


def test_failed_run_without_final_json_is_listed_as_failed(tmp_path):
    for s in SYSTEMS:
        shutil.copytree(RUNS / s, tmp_path / s)
    (tmp_path / "tf_full" / "final.json").unlink()
    df = summarize(discover_runs(tmp_path, SYSTEMS), SYSTEMS, 0.9)
    assert row(df, "tf_full")["status"] == "failed: no final.json (metrics.csv present)"
    assert row(df, "tf_sampled")["status"] == "ok"
    # the best curve P@1 is now SLIDE's: target 0.9 * 0.38
    assert row(df, "slide")["target_p_at_1"] == pytest.approx(0.342)
    assert MAJORITY not in set(df["system"])  # no meta -> no baseline row


def test_without_slide_there_are_no_speedups_but_no_crash():
    runs = [r for r in discover_runs(RUNS, SYSTEMS) if r.system != "slide"]
    df = summarize(runs, SYSTEMS, 0.9)
    assert row(df, "slide")["status"] == "missing: no run"
    assert df["slide_speedup_per_batch"].isna().all()
    md = to_markdown(df, "fixture", "h", 0.9)
    assert "SLIDE vs" not in md and "Missing or failed runs: SLIDE (missing: no run)." in md


def test_nothing_finished_gives_an_all_missing_table():
    df = summarize([], SYSTEMS, 0.9, majority=0.1)
    assert list(df["status"]) == ["missing: no run"] * 3 + ["baseline"]
    assert "Missing or failed runs" in to_markdown(df, "d", "h", 0.9)


def test_several_seeds_are_averaged_and_partial_reach_is_reported():
    runs = [run("slide", [0, .2, .4], [0, 1, 2], seed=0), run("slide", [0, .3, .4], [0, 1, 2], seed=1),
            run("tf_full", [0, .2, .4], [0, 5, 10], seed=0), run("tf_full", [0, .1, .15], [0, 5, 10], seed=1)]
    df = summarize(runs, ["slide", "tf_full"], 0.5)  # best final P@1 0.4 (mean of slide) -> target 0.2
    s, f = row(df, "slide"), row(df, "tf_full")
    assert s["runs"] == 2 and s["p_at_1"] == pytest.approx(0.4) and s["target_reached"] == "2/2 runs"
    assert s["time_to_target_s"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert f["target_reached"] == "1/2 runs" and math.isnan(f["time_to_target_s"])
    assert f["slide_speedup_per_batch"] == pytest.approx((10 / 100) / (2 / 100))
    assert "not reached by all (1/2 runs)" in to_markdown(df, "d", "h", 0.5)


def test_thread_counts_get_rows_and_speedups_compare_equal_threads():
    runs = [run("slide", [0, .4], [0, 2], threads=1), run("slide", [0, .4], [0, 1], threads=4),
            run("tf_full", [0, .4], [0, 8], threads=1), run("tf_full", [0, .4], [0, 3], threads=4)]
    df = summarize(runs, ["slide", "tf_full"], 0.5)
    assert list(zip(df["system"], df["threads"])) == [("slide", 1), ("slide", 4), ("tf_full", 1), ("tf_full", 4)]
    assert list(df["slide_speedup_per_batch"]) == pytest.approx([1, 1, 4, 3])
    assert "SLIDE (1 thread)" in to_markdown(df, "d", "h", 0.5)


def test_bad_target_fraction_is_rejected():
    with pytest.raises(ValueError, match="target_fraction must be in"):
        summarize([], SYSTEMS, 1.5)


def test_write_summary_leaves_no_partial_files(tmp_path):
    df = summarize(discover_runs(RUNS, SYSTEMS), SYSTEMS, 0.9, majority=0.043)
    write_summary(df, tmp_path / "s.csv", tmp_path / "s.md", dataset="d", host="h", target_fraction=0.9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.md"]
    back = pd.read_csv(tmp_path / "s.csv")
    assert back.loc[1, "slide_speedup_time_to_target"] == pytest.approx(30.875 / 9.35, rel=1e-5)


def test_sparse_and_dense_inference_are_reported_for_slide_only():
    slide = run("slide", [0.1, 0.3], [1.0, 2.0])
    slide.final["inference_modes"] = {"dense": {"p_at_1": 0.30, "ms_per_row": 0.5},
                                      "sparse": {"p_at_1": 0.29, "ms_per_row": 0.02}}
    df = summarize([slide, run("tf_full", [0.1, 0.3], [5.0, 9.0])], ["slide", "tf_full"], 0.9)
    s, t = row(df, "slide"), row(df, "tf_full")
    assert (s["sparse_p_at_1"], s["dense_ms_per_row"], s["sparse_ms_per_row"]) == (0.29, 0.5, 0.02)
    assert math.isnan(t["sparse_p_at_1"]) and math.isnan(t["sparse_ms_per_row"])
    md = to_markdown(df, "x", "host", 0.9)
    assert "P@1 sparse inference" in md and "| 0.290 |" in md


def test_target_and_time_to_target_use_one_measure():
    # SLIDE's curve (evaluation rows) ends at 0.2789, its full-test P@1 is 0.282; TF full's are 0.305 / 0.31.
    # The target comes from the curves too (0.9 x 0.305 = 0.2745), so SLIDE, whose curve passed it, reached it.
    slide, full = run("slide", [0, .2, .2789], [0, 10, 20]), run("tf_full", [0, .2, .305], [0, 100, 400])
    slide.final["p_at_1"], full.final["p_at_1"] = 0.282, 0.31
    df = summarize([slide, full], ["slide", "tf_full"], 0.9)
    assert row(df, "slide")["target_p_at_1"] == pytest.approx(0.9 * 0.305)
    assert row(df, "slide")["target_reached"] == "yes" and row(df, "tf_full")["target_reached"] == "yes"


def test_best_validation_and_last_step_are_both_reported_with_threads():
    # the curve peaks at step 100 (the validation-picked step), training went on to step 200
    r = run("slide", [0, .5, .4], [0, 10, 20], steps=[0, 100, 200], threads=2)
    r.final.update(p_at_1=0.61, p_at_3=.5, p_at_5=.4, selected="best_validation", stopped="patience", curve="validation",
                   best={"step": 100, "train_seconds": 10, "p_at_1": 0.61, "p_at_3": .5, "p_at_5": .4},
                   last={"step": 200, "train_seconds": 20, "p_at_1": 0.52, "p_at_3": .45, "p_at_5": .35})
    df = summarize([r, run("tf_full", [0, .1, .2], [0, 50, 100])], ["slide", "tf_full"], 0.9)
    s = row(df, "slide")
    assert (s["p_at_1"], s["reported_step"], s["reported_seconds"]) == (0.61, 100, 10)
    assert (s["last_p_at_1"], s["steps"], s["stopped"], s["threads"]) == (0.52, 200, "patience", 2)
    # the target is 0.9 x the curve at the reported step (0.5), not at the last one (0.4)
    assert s["target_p_at_1"] == pytest.approx(0.45) and s["curve_p_at_1"] == 0.5
    md = to_markdown(df, "d", "h", 0.9)
    assert "| SLIDE | ok | 0.610 | 0.500 | 0.400 | 100 | 10 | 0.520 |" in md
    assert "validation subset" in md


def test_a_system_with_one_point_reaches_the_target_at_its_training_time():
    para = run("parabel", [0.6], [7.5], steps=[0])
    df = summarize([run("slide", [0, .3, .5], [0, 1, 2]), para], ["slide", "parabel"], 0.9)
    assert row(df, "parabel")["time_to_target_s"] == 7.5 and row(df, "parabel")["label"] == "Parabel (omikuji)"
    # the trained systems' curves define the target (0.9 x 0.5), not the reference point's 0.6
    assert row(df, "slide")["target_p_at_1"] == pytest.approx(0.45)
    assert "(0.500, SLIDE) = 0.450" in to_markdown(df, "d", "h", 0.9)
    alone = summarize([para], ["parabel"], 0.9)
    assert row(alone, "parabel")["target_p_at_1"] == pytest.approx(0.54)
