"""The pipeline as users run it: dry-runs of every shipped config, lint, and (slow) the tiny configuration end
to end with the HTML report, in a scratch copy of the workflow."""
import csv
import json

import pytest

from slide.training.protocol import METRICS_COLUMNS
from workflow_copy import ROOT, snakemake, workflow_copy

CONFIGS = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))
LOCAL = {"bibtex.yaml", "delicious.yaml", "mediamill.yaml", "eurlex4k.yaml", "wiki10-31k.yaml",
         "amazoncat13k.yaml", "delicious200k.yaml"}  # need the user's files (tests/test_own_data.py covers them)


@pytest.mark.parametrize("config", [c for c in CONFIGS if c not in LOCAL])
def test_every_shipped_config_plans_the_whole_pipeline(config, tmp_path):
    r = snakemake(workflow_copy(tmp_path), "-n", "--cores", "2", "--configfile", f"config/{config}", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for rule in ("check_system", "build_native", "train_slide", "train_tf_full", "train_tf_sampled", "figures",
                 "summary", "provenance"):
        assert f"rule {rule}:" in r.stdout, (config, rule)


@pytest.mark.parametrize("config", ["config.yaml", "tiny.yaml", "amazon670k.yaml"])
def test_lint_is_clean(config):
    r = snakemake(ROOT, "--lint", "--configfile", f"config/{config}", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_with_report(tmp_path):
    wd = workflow_copy(tmp_path / "wf")
    r = snakemake(wd, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=1500)
    assert r.returncode == 0, r.stderr[-5000:]
    res = wd / "results"
    for f in ("system/check.json", "build/build.json", "data/tiny/train.npz", "data/tiny/test.npz",
              "data/tiny/meta.json", "figures/time_vs_p1.png", "figures/time_vs_p1.pdf", "figures/steps_vs_p1.png",
              "figures/steps_vs_p1.pdf", "summary.csv", "summary.md", "provenance/tiny.json"):
        assert (res / f).stat().st_size > 0, f
    finals = {}
    for system in ("slide", "tf_full", "tf_sampled"):
        run = res / "runs" / "tiny" / system
        with open(run / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == METRICS_COLUMNS, system  # one schema for every system
        finals[system] = json.loads((run / "final.json").read_text())
        assert finals[system]["test_samples"] == 500 and int(rows[-1]["step"]) == finals[system]["steps"], system
    # same protocol: the same evaluation steps and sample count for every system
    steps = {s: [r["step"] for r in csv.DictReader(open(res / "runs" / "tiny" / s / "metrics.csv"))] for s in finals}
    assert steps["slide"] == steps["tf_full"] == steps["tf_sampled"]
    assert finals["slide"]["isa"] in ("avx512_bf16", "avx512", "avx2", "scalar")
    summary = (res / "summary.md").read_text()
    assert "SLIDE" in summary and "TF full softmax" in summary and "majority" in summary

    # nothing left to do, and the report renders offline from the finished run
    r = snakemake(wd, "-n", "--cores", "2", "--configfile", "config/tiny.yaml", timeout=300)
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]
    r = snakemake(wd, "--cores", "1", "--configfile", "config/tiny.yaml", "--report", "results/report.html",
                  timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    html = (res / "report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "time_vs_p1" in html
