"""Sweeps (config `sweep:`, slide.sweep): variant names, per-variant config, the DAG they expand into, and
(slow) a 2 seeds x 2 thread counts sweep on tiny data end to end, then `verify` on its results."""
import json
import shutil
from pathlib import Path

import pytest
from workflow_copy import snakemake, workflow_copy
import yaml

from slide.sweep import Variant, group_key, is_active, load_runs, parse_variant, run_config, run_location, variants

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "data" / "report" / "results"
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_the_default_config_has_an_empty_sweep():
    assert not is_active(CONFIG["sweep"])
    assert variants(CONFIG["sweep"], "slide") == []


def test_seeds_times_threads_in_config_order():
    names = [v.name for v in variants({"seeds": [0, 1], "threads": [1, 2]}, "tf_full")]
    assert names == ["seed0-t1", "seed0-t2", "seed1-t1", "seed1-t2"]


def test_hash_settings_vary_slide_only():
    sweep = {"threads": [4], "slide_hash": [{"K": 6, "L": 50, "sparsity": 0.005},
                                            {"K": 3, "L": 8, "sparsity": 5e-05, "range_pow": 12}]}
    assert [v.name for v in variants(sweep, "slide")] == ["K6-L50-s0.005-t4", "K3-L8-s0.00005-r12-t4"]
    assert [v.name for v in variants(sweep, "tf_sampled")] == ["t4"]
    # a hash-only sweep leaves TF with its default run
    assert variants({"slide_hash": sweep["slide_hash"]}, "tf_full") == []


@pytest.mark.parametrize("name", ["seed1-t2", "t16", "seed0", "K6-L50-s0.005", "K6-L50-s1-r18-seed3-t1",
                                  "K3-L8-s0.00005-t2"])
def test_names_round_trip(name):
    assert parse_variant(name).name == name


@pytest.mark.parametrize("name", ["slide", "model", "checkpoint-1", "t2-seed1", "seed1-seed2", "K6-s0.1",
                                  "seed01", "", "t"])
def test_other_directory_names_are_not_variants(name):
    with pytest.raises(ValueError, match="sweep variant|hash setting"):
        parse_variant(name)


def test_bad_sweep_entries_are_clear_errors():
    with pytest.raises(ValueError, match="needs K, L, sparsity.*missing sparsity"):
        variants({"slide_hash": [{"K": 1, "L": 2}]}, "slide")
    with pytest.raises(ValueError, match="duplicate variant"):
        variants({"seeds": [1], "slide_hash": [{"K": 1, "L": 2, "sparsity": 0.1}] * 2}, "slide")


def test_run_config_overrides_seed_and_output_layer_only():
    v = Variant(seed=7, threads=2, hash=(("K", 4), ("L", 10), ("sparsity", 0.02)))
    cfg = run_config(CONFIG, v)
    assert cfg["train"]["seed"] == 7 and cfg["train"]["epochs"] == CONFIG["train"]["epochs"]
    assert cfg["slide"]["layers"][0] == CONFIG["slide"]["layers"][0]
    assert cfg["slide"]["layers"][-1] == {**CONFIG["slide"]["layers"][-1], "K": 4, "L": 10, "sparsity": 0.02}
    assert CONFIG["slide"]["layers"][-1]["K"] == "auto" and CONFIG["train"]["seed"] == 0  # config untouched


def test_a_hash_family_can_be_swept_and_names_round_trip():
    (v,) = variants({"slide_hash": [{"hash": "srp", "K": 8, "L": 32, "sparsity": 0.005}]}, "slide")
    assert v.name == "srp-K8-L32-s0.005" and parse_variant(v.name) == v
    assert run_config(CONFIG, v)["slide"]["layers"][-1]["hash"] == "srp"
    with pytest.raises(ValueError, match="hash must be one of dwta, srp, kmeans"):
        variants({"slide_hash": [{"hash": "minhash", "K": 1, "L": 2, "sparsity": 0.1}]}, "slide")


def test_runs_are_grouped_per_system_and_hash_setting(tmp_path):
    src = FIX / "runs" / "fixture" / "slide"
    for d in ("slide/seed0-t1", "slide/seed1-t1", "slide/K4-L8-s0.1-seed0-t1", "tf_full"):
        shutil.copytree(src, tmp_path / d)
    shutil.copytree(src, tmp_path / "slide" / "seed9-t1" / "stale")  # not listed: must not be loaded
    finals = [tmp_path / d / "final.json" for d in ("slide/seed0-t1", "slide/seed1-t1", "slide/K4-L8-s0.1-seed0-t1",
                                                     "tf_full")]
    runs = load_runs(finals)
    assert [r.system for r in runs] == ["slide", "slide", "slide[K4-L8-s0.1]", "tf_full"]
    assert [r.path.name for r in runs] == ["seed0-t1", "seed1-t1", "K4-L8-s0.1-seed0-t1", "tf_full"]
    assert run_location(tmp_path / "slide" / "final.json") == ("slide", None)
    assert group_key("slide", parse_variant("seed1-t2")) == "slide"


def _snakemake(cwd, *args, timeout=120):
    return snakemake(cwd, *args, timeout=timeout)


def test_a_sweep_config_expands_into_separate_jobs_and_keeps_lint_clean(tmp_path):
    extra = tmp_path / "sweep.yaml"
    extra.write_text(yaml.safe_dump({"sweep": {"seeds": [0, 1], "threads": [1, 2],
                                               "slide_hash": [{"K": 4, "L": 16, "sparsity": 0.05}]}}))
    args = ["--configfile", "config/tiny.yaml", str(extra)]
    r = _snakemake(ROOT, "-n", "--cores", "2", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    for rule, n in (("train_slide_sweep", 4), ("train_tf_sweep", 8), ("thread_scaling", 1)):
        assert any(line.split()[:2] == [rule, str(n)] for line in out.splitlines()), (rule, out[-2000:])
    assert "results/runs/tiny/slide/K4-L16-s0.05-seed1-t2/final.json" in out
    assert "results/runs/tiny/tf_full/seed0-t1/final.json" in out
    assert "results/runs/tiny/slide/final.json" not in out  # the default run is not part of a sweep
    r = _snakemake(ROOT, "--lint", *args)
    assert r.returncode == 0, r.stdout[-3000:]


def test_a_bad_sweep_is_rejected_by_the_schema(tmp_path):
    extra = tmp_path / "bad.yaml"
    extra.write_text(yaml.safe_dump({"sweep": {"threads": [0]}}))
    r = _snakemake(ROOT, "-n", "--cores", "1", "--configfile", "config/tiny.yaml", str(extra))
    assert r.returncode != 0 and "sweep" in r.stdout + r.stderr


@pytest.mark.slow
def test_two_seeds_by_two_thread_counts_end_to_end_then_verify(tmp_path):
    """Tiny data, SLIDE only, a few steps per run, in a copy of the workflow (the repo's results/ untouched)."""
    workflow_copy(tmp_path)
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(
        {"systems": ["slide"], "train": {"max_steps": 16}, "sweep": {"seeds": [0, 1], "threads": [1, 2]}}))
    r = _snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml", "sweep.yaml", timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]

    runs = tmp_path / "results" / "runs" / "tiny" / "slide"
    assert sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name != "model") == [
        "seed0-t1", "seed0-t2", "seed1-t1", "seed1-t2"]
    for name in ("seed0-t1", "seed0-t2", "seed1-t1", "seed1-t2"):
        final = json.loads((runs / name / "final.json").read_text())
        v = parse_variant(name)
        assert final["threads"] == v.threads and final["config"]["seed"] == v.seed, name
        assert (tmp_path / "results" / "benchmarks" / "train_slide" / "tiny" / f"{name}.tsv").is_file()
    # the thread-split summary: one row per thread count, each the mean of 2 seeds
    summary = (tmp_path / "results" / "summary" / "tiny" / "summary.csv").read_text().splitlines()
    rows = [line for line in summary[1:] if line.startswith("slide,")]
    assert len(rows) == 2, summary
    for f in ("figures/tiny/time_vs_p1.png", "figures/tiny/thread_scaling.png", "job_records.csv",
              "report/job_records.html"):
        assert (tmp_path / "results" / f).stat().st_size > 0, f
    bench = (tmp_path / "results" / "job_records.csv").read_text()
    assert "train_slide,tiny/seed1-t2" in bench

    prov = json.loads((tmp_path / "results" / "provenance" / "tiny.json").read_text())
    assert sorted(Path(e["path"]).name for e in prov["runs"]["slide"]) == ["seed0-t1", "seed0-t2", "seed1-t1",
                                                                          "seed1-t2"]
    r = _snakemake(tmp_path, "verify", "--cores", "1", "--configfile", "config/tiny.yaml", "sweep.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "verify passed" in (tmp_path / "results" / "logs" / "verify" / "verify.log").read_text()

    victim = runs / "seed1-t2" / "metrics.csv"
    victim.write_text(victim.read_text() + "slide,9999,9,1,1,1,1,1,1,0\n")  # an invented evaluation row
    r = _snakemake(tmp_path, "verify", "--cores", "1", "--configfile", "config/tiny.yaml", "sweep.yaml")
    assert r.returncode != 0
    assert "results/runs/tiny/slide/seed1-t2/metrics.csv: SHA256 MISMATCH" in r.stderr
