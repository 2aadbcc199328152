"""figures.smk: captions exist, targets are complete; slow: the rules and `snakemake --report` on fixtures."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules"
SMK = (RULES / "figures.smk").read_text()
FIX = Path(__file__).parent / "data" / "report" / "results"


def test_every_caption_and_the_report_text_exist():
    captions = re.findall(r'caption="([^"]+)"', SMK)
    assert len(captions) >= 5
    for c in captions:
        assert (RULES / c).is_file(), f"caption {c} referenced in figures.smk does not exist"
    (text,) = re.findall(r'^report:\s*"([^"]+)"', SMK, flags=re.M)
    assert (RULES / text).is_file()


def test_figure_targets_cover_the_end_products():
    block = SMK[SMK.index("FIGURE_TARGETS = ["):]
    block = block[:block.index("\n]")]
    targets = set(re.findall(r'"(results/[^"]+)"', block))
    # over every dataset: the paper's figure and the combined summary
    assert {"results/figures/paper_time_vs_p1.png", "results/figures/paper_time_vs_p1.pdf", "results/summary.csv",
            "results/summary.md", "results/summary.html"} <= targets
    # per dataset: figures, summaries, one provenance manifest, the environment page
    for per_dataset in ("figure_files(ds)", "summary_files(ds)", 'f"results/provenance/{ds}.json"',
                        'f"results/report/{ds}/environment.html"'):
        assert per_dataset in block, per_dataset


def test_captions_render_without_mail_links():
    """docutils turns "P@1/3/5" into a mailto: link unless the @ is escaped."""
    from docutils.core import publish_string

    for rst in (ROOT / "workflow" / "report").glob("*.rst"):
        html = publish_string(rst.read_text(), writer="html").decode()
        assert "mailto:" not in html, rst.name


def test_figures_config_validates_against_the_schema():
    import jsonschema

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    sub = schema["properties"]["figures"]
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())["figures"]
    jsonschema.validate(cfg, sub)
    for bad in ({"target_fraction": 0}, {"target_fraction": 0.9, "band": "iqr"}, {"band": "sd"},
                {"target_fraction": 0.9, "target_rul": "first"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, sub)


def _workdir(tmp_path: Path) -> Path:
    """A copy of the figures part of the workflow over fixture results (no data/train rules needed)."""
    wd = tmp_path / "wf"
    (wd / "workflow" / "rules").mkdir(parents=True)
    for d in ("scripts", "report", "schemas"):
        shutil.copytree(ROOT / "workflow" / d, wd / "workflow" / d)
    for f in ("common.smk", "figures.smk"):
        shutil.copy(RULES / f, wd / "workflow" / "rules" / f)
    shutil.copytree(ROOT / "envs", wd / "envs")
    shutil.copytree(FIX, wd / "results")
    unshuffled = wd / "results/data/fixture/unshuffled"  # prepare's outputs, which the manifest records too
    unshuffled.mkdir()
    for f in ("train.npz", "test.npz"):
        shutil.copy(FIX / "data/fixture" / f, unshuffled / f)
    (unshuffled / "info.json").write_text("{}\n")
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["datasets"] = [{**cfg["datasets"][0], "name": "fixture"}]
    (wd / "config").mkdir()
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (wd / "Snakefile").write_text('configfile: "config/config.yaml"\n\n\ninclude: "workflow/rules/common.smk"\n'
                                  'include: "workflow/rules/figures.smk"\n\n\nrule all:\n    default_target: True\n'
                                  '    input:\n        FIGURE_TARGETS,\n')
    return wd


@pytest.mark.slow
def test_rules_and_html_report_on_fixture_results(tmp_path):
    wd = _workdir(tmp_path)
    def run(*args):
        r = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=wd, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return r

    run("--lint")
    run("--cores", "1")
    for t in ("figures/fixture/time_vs_p1.png", "figures/fixture/time_vs_p1.pdf", "figures/fixture/steps_vs_p1.png",
              "figures/fixture/steps_vs_p1.pdf", "summary/fixture/summary.csv", "summary/fixture/summary.md",
              "summary/fixture/summary.html", "provenance/fixture.json", "report/fixture/environment.html",
              "figures/paper_time_vs_p1.png", "summary.csv", "summary.md", "summary.html"):
        assert (wd / "results" / t).stat().st_size > 0, t
    assert "3.30× to reach the target" in (wd / "results/summary/fixture/summary.md").read_text()
    assert (wd / "results/summary.csv").read_text().startswith("dataset,system,")
    run("--report", "results/report.html")
    html = (wd / "results/report.html").read_text()
    for name in ("time_vs_p1.png", "steps_vs_p1.png", "paper_time_vs_p1.png", "summary.html", "environment.html",
                 "fixture.json"):
        assert name in html
    assert "mailto:" not in html
