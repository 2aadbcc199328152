"""Figures render from small fixed metrics: axes, scales, curves, and plotted values equal to the inputs."""
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from slide.report.figures import plot_p1_curves, plot_thread_scaling, save_figure
from slide.report.make import make_figures
from slide.report.runs import discover_runs, read_metrics

from test_report_runs import run  # noqa: E402  (in-memory Run builder shared by the report tests)

FIX = Path(__file__).parent / "data" / "report" / "results"
RUNS = FIX / "runs" / "fixture"
SYSTEMS = ["slide", "tf_full", "tf_sampled"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def curves(ax):
    return {l.get_gid(): l for l in ax.get_lines() if (l.get_gid() or "").startswith("curve:")}


def test_time_figure_plots_the_metrics_on_a_log_axis():
    runs = discover_runs(RUNS, SYSTEMS)
    fig = plot_p1_curves(runs, "train_seconds", title="fixture: P@1 vs training time\nXeon, 1 core", majority=0.043)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert "training time" in ax.get_xlabel() and "(s" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("P@1")
    assert "fixture" in ax.get_title() and "Xeon" in ax.get_title()
    lines = curves(ax)
    assert sorted(lines) == ["curve:slide:None", "curve:tf_full:None", "curve:tf_sampled:None"]
    for s in SYSTEMS:
        m = read_metrics(RUNS / s / "metrics.csv")
        m = m[m["train_seconds"] > 0]  # the 0 s point has no place on a log axis
        x, y = lines[f"curve:{s}:None"].get_data()
        assert np.allclose(x, m["train_seconds"]) and np.allclose(y, m["p_at_1"])
    (base,) = [l for l in ax.get_lines() if l.get_gid() == "majority"]
    assert np.allclose(base.get_ydata(), 0.043) and base.get_linestyle() == "--"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["SLIDE", "TF full softmax", "TF sampled softmax", "majority-label baseline (P@1 = 0.043)"]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]  # one run each: no band


def test_steps_figure_is_linear_and_keeps_step_zero():
    runs = discover_runs(RUNS, SYSTEMS)
    ax = plot_p1_curves(runs, "step").axes[0]
    assert ax.get_xscale() == "linear" and "iterations" in ax.get_xlabel()
    x, y = curves(ax)["curve:tf_full:None"].get_data()
    m = read_metrics(RUNS / "tf_full" / "metrics.csv")
    assert np.array_equal(x, m["step"]) and np.allclose(y, m["p_at_1"])
    assert not [l for l in ax.get_lines() if l.get_gid() == "majority"]  # no baseline given: no line


@pytest.mark.parametrize("band", ["minmax", "sd"])
def test_several_seeds_draw_mean_and_band(band):
    runs = [run("slide", [0, .2, .4], [0, 1, 2], seed=0), run("slide", [0, .1, .3], [0, 3, 4], seed=1),
            run("tf_full", [0, .3, .5], [0, 5, 10])]
    ax = plot_p1_curves(runs, "train_seconds", band=band).axes[0]
    lines = curves(ax)
    assert sorted(lines) == ["curve:slide:None", "curve:tf_full:None"]
    x, y = lines["curve:slide:None"].get_data()
    assert np.allclose(x, [2, 3]) and np.allclose(y, [.15, .35])
    assert "mean of 2 runs" in lines["curve:slide:None"].get_label()
    (poly,) = [c for c in ax.collections if c.get_gid() == "band:slide:None"]
    ys = poly.get_paths()[0].vertices[:, 1]
    lo, hi = ((np.array([.1, .3]), np.array([.2, .4])) if band == "minmax"
              else (np.array([.15, .35]) - np.std([.2, .1], ddof=1), np.array([.15, .35]) + np.std([.2, .1], ddof=1)))
    assert np.isclose(ys.min(), lo.min()) and np.isclose(ys.max(), hi.max())
    assert not [c for c in ax.collections if c.get_gid() == "band:tf_full:None"]


def test_several_thread_counts_get_one_curve_each():
    runs = [run(s, [0, .2], [0, sec], threads=t) for s in ("slide", "tf_full") for t, sec in ((1, 4), (4, 1))]
    ax = plot_p1_curves(runs, "step").axes[0]
    assert sorted(curves(ax)) == ["curve:slide:1", "curve:slide:4", "curve:tf_full:1", "curve:tf_full:4"]


def test_thread_scaling_plots_mean_seconds_per_epoch():
    runs = [run("slide", [0, .2], [0, sec], steps=[0, 200], threads=t, seed=s)
            for t, secs in ((1, (8, 10)), (2, (5, 5)), (4, (3, 4))) for s, sec in enumerate(secs)]
    runs.append(run("tf_full", [0, .2], [0, 20], steps=[0, 200], threads=1))
    runs.append(run("tf_full", [0, .2], [0, 12], steps=[0, 200], threads=4))
    ax = plot_thread_scaling(runs, title="scaling").axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "threads" and "per epoch" in ax.get_ylabel()
    lines = {l.get_gid(): l for l in ax.get_lines() if l.get_gid()}
    x, y = lines["scaling:slide"].get_data()  # epochs = 200 / 100 = 2
    assert np.array_equal(x, [1, 2, 4]) and np.allclose(y, [9 / 2, 5 / 2, 3.5 / 2])
    x, y = lines["scaling:tf_full"].get_data()
    assert np.array_equal(x, [1, 4]) and np.allclose(y, [10, 6])
    assert [int(t) for t in ax.get_xticks()] == [1, 2, 4]


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="x must be one of"):
        plot_p1_curves([], "wall")
    with pytest.raises(ValueError, match="band must be"):
        plot_p1_curves([], "step", band="iqr")


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig = plot_p1_curves(discover_runs(RUNS, SYSTEMS), "step")
    save_figure(fig, [tmp_path / "f.png", tmp_path / "f.pdf"], dpi=60)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]  # no temp files left


def test_make_figures_writes_scaling_only_with_several_thread_counts(tmp_path):
    out = tmp_path / "out"
    kw = dict(dataset="fixture", meta=FIX / "data/fixture/meta.json", check=FIX / "system/check.json",
              time_paths=[out / "t.png"], steps_paths=[out / "s.png"], scaling_paths=[out / "sc.png"], dpi=50)
    written = make_figures([RUNS / s for s in SYSTEMS], **kw)
    assert sorted(Path(p).name for p in written) == ["s.png", "t.png"] and not (out / "sc.png").exists()
    for t in (1, 2):
        shutil.copytree(RUNS / "slide", tmp_path / "sweep" / "slide" / f"t{t}")
        f = tmp_path / "sweep" / "slide" / f"t{t}" / "final.json"
        f.write_text(f.read_text().replace('"threads": 2', f'"threads": {t}'))
    written = make_figures([tmp_path / "sweep" / "slide"], **kw)
    assert (out / "sc.png").exists() and len(written) == 3
    with pytest.raises(ValueError, match="no metrics.csv in any of"):
        make_figures([tmp_path / "nothing"], **kw)


def test_the_thread_scaling_rule_says_why_it_has_no_figure(tmp_path):
    """The rule asks for the figure: runs that all trained with one thread count get an error naming the counts,
    not a figure silently left out (which Snakemake reports only as a missing output)."""
    out = tmp_path / "out"
    for t in (1, 2):
        shutil.copytree(RUNS / "slide", tmp_path / "sweep" / "slide" / f"t{t}")  # both ran with 2 threads
    with pytest.raises(ValueError, match=r"at least two thread counts; these ran with \[2\]"):
        make_figures([tmp_path / "sweep" / "slide"], dataset="fixture", scaling_paths=[out / "sc.png"], dpi=50,
                     scaling_required=True)
    assert not (out / "sc.png").exists()


def test_cli_writes_figures_and_summary_for_a_sweep(tmp_path):
    from slide.report.__main__ import main

    for t in (1, 2):
        for s in ("slide", "tf_full"):
            shutil.copytree(RUNS / s, tmp_path / "runs" / s / f"t{t}")
            f = tmp_path / "runs" / s / f"t{t}" / "final.json"
            f.write_text(f.read_text().replace('"threads": 2', f'"threads": {t}'))
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out), "--systems", "slide", "tf_full"]) == 0
    assert {p.name for p in out.iterdir()} >= {"time_vs_p1.png", "steps_vs_p1.pdf", "thread_scaling.png",
                                              "summary.csv", "summary.md"}
    assert "SLIDE (1 thread)" in (out / "summary.md").read_text()
    assert main([str(tmp_path / "nothing"), "--out", str(out)]) == 1


def test_paper_figure_has_one_panel_per_dataset_with_baseline_target_and_points(tmp_path):
    from slide.report.figures import plot_paper_figure

    small = [run("slide", [0, .2, .4], [0, 1, 2]), run("tf_full", [0, .3, .4], [0, 3, 6])]
    large = [run("slide", [0, .1, .2], [0, 2, 4]), run("tf_full", [0, .05, .1], [0, 30, 60]),
             run("parabel", [0.25], [9.0], steps=[0])]
    fig = plot_paper_figure([("small", small, 0.05, 0.36), ("large", large, 0.02, 0.225)], "Figure 5")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["small", "large"]
    for ax, target in zip(axes, (0.36, 0.225)):
        assert ax.get_xscale() == "log"
        gids = {l.get_gid(): l for l in ax.get_lines()}
        assert gids["target"].get_ydata()[0] == target and "majority" in gids
    (point,) = [l for l in axes[1].get_lines() if l.get_gid() == "point:parabel:None"]
    assert list(point.get_xdata()) == [9.0] and list(point.get_ydata()) == [0.25]
    # the legend names each system once, below both panels
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == sorted(
        ["SLIDE", "TF full softmax", "Parabel (omikuji)", "majority-label baseline", "target P@1"])


def test_one_point_systems_stay_off_the_iterations_figure():
    runs = [run("slide", [0, .2, .4], [0, 1, 2]), run("parabel", [0.25], [9.0], steps=[0])]
    steps = plot_p1_curves(runs, "step").axes[0]
    assert not any((l.get_gid() or "").startswith("point:") for l in steps.get_lines())
    time = plot_p1_curves(runs, "train_seconds", target=0.3).axes[0]
    assert any(l.get_gid() == "point:parabel:None" for l in time.get_lines())
    assert any(l.get_gid() == "target" for l in time.get_lines())
