"""provenance.json holds code, packages, config, data hashes, host, build, seeds; the report's host page."""
import hashlib
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slide.report.make import make_environment, make_provenance
from slide.report.provenance import environment_html, git_info, package_versions

FIX = Path(__file__).parent / "data" / "report" / "results"
RUNS = FIX / "runs" / "fixture"
SYSTEMS = ["slide", "tf_full", "tf_sampled"]
CONFIG = {"dataset": {"name": "fixture", "source": "synthetic", "shuffle_seed": 3, "synthetic": {"seed": 7}},
          "systems": SYSTEMS, "train": {"seed": 11}, "figures": {"target_fraction": 0.9}}


def test_provenance_has_every_record(tmp_path):
    data = [FIX / "data/fixture/train.npz", FIX / "data/fixture/test.npz"]
    prov = make_provenance(CONFIG, tmp_path / "provenance.json", system_dirs=[RUNS / s for s in SYSTEMS],
                           meta=FIX / "data/fixture/meta.json", data_files=data, check=FIX / "system/check.json",
                           build=FIX / "build/build.json", root=tmp_path)
    assert json.loads((tmp_path / "provenance.json").read_text()) == json.loads(json.dumps(prov))
    assert {"git", "packages", "config", "dataset", "host", "build", "seeds", "runs", "python",
            "generated_at"} <= set(prov)
    assert prov["git"] is None  # tmp_path is not a git checkout
    assert prov["packages"]["numpy"] == md.version("numpy")
    assert prov["config"] == CONFIG
    files = {Path(f["path"]).name: f for f in prov["dataset"]["files"]}
    for p in data:
        assert files[p.name]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert prov["dataset"]["meta"]["sources"]["train"]["sha256"] == "a" * 64
    assert prov["host"]["cpu"]["model"].startswith("Intel(R) Xeon(R)")
    assert prov["build"]["compiler"] == "GNU 12.2.0"
    assert prov["seeds"] == {"train": 11, "shuffle": 3, "synthetic": 7, "meta": {"shuffle_seed": 0}, "runs": [0]}
    (slide_run,) = prov["runs"]["slide"]
    assert slide_run["finished"] and slide_run["threads"] == 2
    assert slide_run["final.json"]["sha256"] == hashlib.sha256((RUNS / "slide/final.json").read_bytes()).hexdigest()
    assert slide_run["info"]["versions"] == {"numpy": "2.4.6"}


def test_missing_side_files_become_null(tmp_path):
    prov = make_provenance(CONFIG, tmp_path / "p.json", system_dirs=[tmp_path / "none"], root=tmp_path)
    assert prov["host"] is None and prov["build"] is None and prov["dataset"]["meta"] is None
    assert prov["runs"] == {} and prov["dataset"]["files"] == []


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_commit_and_dirty_flag(tmp_path):
    def git(*a):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *a],
                       check=True, capture_output=True)

    git("init", "-q")
    assert git_info(tmp_path) == {"commit": None, "dirty": False, "changed_files": 0}
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-q", "-m", "x")
    info = git_info(tmp_path)
    assert len(info["commit"]) == 40 and info["dirty"] is False
    (tmp_path / "a.txt").write_text("2")
    assert git_info(tmp_path)["dirty"] is True


def test_versions_do_not_import_tensorflow():
    code = ("import sys; from slide.report.provenance import package_versions; package_versions(); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert package_versions(["surely-not-a-package-xyz"]) == {"surely-not-a-package-xyz": None}


def test_environment_page(tmp_path):
    check = json.loads((FIX / "system/check.json").read_text())
    build = json.loads((FIX / "build/build.json").read_text())
    html = environment_html(check, build)
    assert "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz, 1 core (2 hardware threads); best ISA: avx512" in html
    assert "cpu.flags.avx512f" in html and "thp.enabled" in html and "-O3 -march=native" in html
    assert "not available" in environment_html(check, None)
    make_environment(tmp_path / "env.html", check=FIX / "system/check.json", build=None, provenance=None)
    assert "<table>" in (tmp_path / "env.html").read_text()
