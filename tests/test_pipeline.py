"""The pipeline as users run it: dry-runs of every shipped config (one or several datasets), lint, and (slow) the
tiny configuration end to end with the HTML report, then a second, two-dataset configuration beside it, in a
scratch copy of the workflow."""
import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slide.training.protocol import METRICS_COLUMNS
from workflow_copy import ROOT, snakemake, workflow_copy

CONFIGS = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))
LOCAL = {"bibtex.yaml", "delicious.yaml", "mediamill.yaml", "eurlex4k.yaml", "wiki10-31k.yaml",
         "amazoncat13k.yaml", "delicious200k.yaml",
         "paper.yaml"}  # need the user's files (tests/test_own_data.py covers them; paper.yaml below)
RULES = ("check_system", "build_native", "train_slide", "train_tf", "figures", "summary", "provenance",
         "paper_figure", "combined_summary")


def planned(stdout: str) -> list[tuple[str, str]]:
    """(rule, output) of every job a dry-run plans."""
    jobs, rule = [], None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("output:") and rule:
            jobs += [(rule, o.strip()) for o in line.split(":", 1)[1].split(",")]
    return jobs


@pytest.mark.parametrize("config", [c for c in CONFIGS if c not in LOCAL])
def test_every_shipped_config_plans_the_whole_pipeline(config, tmp_path):
    r = snakemake(workflow_copy(tmp_path), "-n", "--cores", "2", "--configfile", f"config/{config}", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for rule in RULES:
        assert f"rule {rule}:" in r.stdout, (config, rule)


def test_the_default_config_plans_two_datasets_side_by_side(tmp_path):
    r = snakemake(workflow_copy(tmp_path), "-n", "--cores", "2", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    outputs = {o for _, o in planned(r.stdout)}
    for ds in ("synthetic10k", "synthetic100k"):
        for system in ("slide", "tf_full", "tf_sampled"):
            assert f"results/runs/{ds}/{system}/final.json" in outputs, (ds, system)
        assert {f"results/figures/{ds}/time_vs_p1.png", f"results/summary/{ds}/summary.csv",
                f"results/provenance/{ds}.json"} <= outputs, ds
    assert {"results/figures/paper_time_vs_p1.png", "results/summary.csv"} <= outputs


def test_paper_config_plans_delicious_and_amazon_with_their_own_settings(tmp_path):
    wd = workflow_copy(tmp_path)
    raw = wd / "resources/raw/delicious200k"  # the user's files: only their presence matters to a dry-run
    raw.mkdir(parents=True)
    for f in ("deliciousLarge_train.txt", "deliciousLarge_test.txt"):
        (raw / f).write_text("")
    r = snakemake(wd, "-n", "--cores", "2", "--configfile", "config/paper.yaml", "-p", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = planned(r.stdout)
    assert ("download", "resources/raw/amazon670k/train.txt") in jobs
    assert ("train_tf", "results/runs/delicious200k/tf_full/final.json") in jobs
    assert ("train_slide", "results/runs/amazon670k/slide/final.json") in jobs
    assert ("paper_figure", "results/figures/paper_time_vs_p1.png") in jobs


def test_parabel_is_wired_like_the_other_systems(tmp_path):
    wd = workflow_copy(tmp_path)
    script = wd / "workflow/scripts/train_parabel.py"
    if not script.exists():  # the trainer lives in its own change; a dry-run only needs the file to exist
        script.write_text("")
    (wd / "parabel.yaml").write_text(yaml.safe_dump({"systems": ["slide", "tf_full", "parabel"],
                                                     "parabel": {"trees": 2}}))
    r = snakemake(wd, "-n", "--cores", "2", "--configfile", "config/tiny.yaml", "parabel.yaml", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert ("train_parabel", "results/runs/tiny/parabel/final.json") in planned(r.stdout)
    assert "results/runs/tiny/tf_sampled" not in r.stdout


def test_dataset_names_must_be_unique(tmp_path):
    wd = workflow_copy(tmp_path)
    entry = {"name": "twice", "source": "synthetic", "synthetic": {"n_train": 50, "n_test": 10}}
    (wd / "two.yaml").write_text(yaml.safe_dump({"datasets": [entry, entry]}))
    r = snakemake(wd, "-n", "--cores", "1", "--configfile", "two.yaml", timeout=300)
    assert r.returncode != 0 and "datasets: name(s) twice used more than once" in r.stdout + r.stderr


@pytest.mark.parametrize("config", ["config.yaml", "tiny.yaml", "amazon670k.yaml"])
def test_lint_is_clean(config):
    r = snakemake(ROOT, "--lint", "--configfile", f"config/{config}", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def sha256s(root, paths):
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in paths}


def png_width(path) -> int:
    import matplotlib.pyplot as plt

    return plt.imread(path).shape[1]


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_with_report(tmp_path):
    wd = workflow_copy(tmp_path / "wf")
    r = snakemake(wd, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=1500)
    assert r.returncode == 0, r.stderr[-5000:]
    res = wd / "results"
    tiny_outputs = ["figures/tiny/time_vs_p1.png", "figures/tiny/time_vs_p1.pdf", "figures/tiny/steps_vs_p1.png",
                    "figures/tiny/steps_vs_p1.pdf", "summary/tiny/summary.csv", "summary/tiny/summary.md",
                    "summary/tiny/summary.html", "provenance/tiny.json"]
    for f in ("system/check.json", "build/build.json", "data/tiny/train.npz", "data/tiny/test.npz",
              "data/tiny/meta.json", "figures/paper_time_vs_p1.png", "summary.csv", "summary.md", *tiny_outputs):
        assert (res / f).stat().st_size > 0, f
    finals = {}
    for system in ("slide", "tf_full", "tf_sampled"):
        run = res / "runs" / "tiny" / system
        with open(run / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == METRICS_COLUMNS, system  # one schema for every system
        finals[system] = f = json.loads((run / "final.json").read_text())
        assert f["test_samples"] == 500 and int(rows[-1]["step"]) == f["steps"], system
        # trained to convergence on validation rows: the reported model is the best-validation one
        assert f["selected"] == "best_validation" and f["curve"] == "validation", system
        assert f["p_at_1"] == f["best"]["p_at_1"] and f["best"]["step"] <= f["last"]["step"] == f["steps"], system
        best_row = next(r for r in rows if int(r["step"]) == f["best"]["step"])
        assert float(best_row["p_at_1"]) == max(float(r["p_at_1"]) for r in rows), system
        assert not (run / "best").exists() and not (run / "checkpoint").exists(), system
    # same protocol: the same evaluation rows for every system (early stopping may end runs at different steps)
    assert len({json.loads((res / "runs/tiny" / s / "final.json").read_text())["validation_samples"]
                for s in finals}) == 1
    assert finals["slide"]["isa"] in ("avx512_bf16", "avx512", "avx2", "scalar")
    summary = (res / "summary/tiny/summary.md").read_text()
    assert "SLIDE" in summary and "TF full softmax" in summary and "majority" in summary
    table = list(csv.DictReader(open(res / "summary/tiny/summary.csv")))
    assert {r["threads"] for r in table if r["system"] != "majority_label"} == {str(finals["slide"]["threads"])}

    # nothing left to do, and the report renders offline from the finished run
    r = snakemake(wd, "-n", "--cores", "2", "--configfile", "config/tiny.yaml", timeout=300)
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]
    r = snakemake(wd, "--cores", "1", "--configfile", "config/tiny.yaml", "--report", "results/report.html",
                  timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    html = (res / "report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "time_vs_p1" in html and "mailto:" not in html

    # a second configuration, with a second dataset, runs beside the first: tiny's figures, summary and
    # provenance stay as they were, and the paper's figure gets one panel per dataset
    before, one_panel = sha256s(res, tiny_outputs), png_width(res / "figures/paper_time_vs_p1.png")
    tiny = yaml.safe_load((wd / "config/tiny.yaml").read_text())["dataset"]
    tiny2 = {"name": "tiny2", "source": "synthetic",
             "synthetic": {"n_train": 1200, "n_test": 300, "n_features": 1500, "n_labels": 3000, "seed": 2}}
    (wd / "two.yaml").write_text(yaml.safe_dump({"datasets": [tiny, tiny2]}))
    r = snakemake(wd, "--cores", "2", "--configfile", "config/tiny.yaml", "two.yaml", timeout=1500)
    assert r.returncode == 0, r.stderr[-5000:]
    assert sha256s(res, tiny_outputs) == before
    for f in ("runs/tiny2/slide/final.json", "figures/tiny2/time_vs_p1.png", "summary/tiny2/summary.md",
              "provenance/tiny2.json"):
        assert (res / f).stat().st_size > 0, f
    assert png_width(res / "figures/paper_time_vs_p1.png") > 1.6 * one_panel
    combined = list(csv.DictReader(open(res / "summary.csv")))
    assert [r["dataset"] for r in combined if r["system"] == "slide"] == ["tiny", "tiny2"]


def test_interpreter_paths_snakemake_cannot_run_scripts_with():
    from slide.pipeline import script_interpreter_error

    for ok in ("/home/me/slide/.venv/bin/python3", "/home/josé/x-1.0/.venv/bin/python", "/opt/a+b@c/bin/python"):
        assert script_interpreter_error(ok) is None, ok
    for bad, shown in (("/home/me/My Projects/slide/.venv/bin/python3", "a space"), ("/tmp/it's/python", '"\'"'),
                       ("/tmp/a$b/python", "'$'")):
        message = script_interpreter_error(bad)
        assert message.startswith(f"{bad}: the Python running Snakemake has {shown} in its path"), message


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs a virtual environment to place elsewhere")
def test_a_python_under_a_path_with_a_space_is_refused_up_front(tmp_path):
    """Snakemake starts script rules with its interpreter's path unquoted: from a clone in "My Projects" with the
    README's .venv inside, every job failed with exit status 127 after the DAG was built."""
    spaced = tmp_path / "My Projects"
    spaced.mkdir()
    (spaced / "venv").symlink_to(sys.prefix)  # the same environment, reached through a path with a space
    python = spaced / "venv" / "bin" / Path(sys.executable).name
    r = subprocess.run([str(python), "-m", "snakemake", "-n", "--cores", "2", "--configfile", "config/tiny.yaml"],
                       cwd=workflow_copy(tmp_path / "wf"), capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert f"{python}: the Python running Snakemake has a space in its path" in r.stdout + r.stderr
