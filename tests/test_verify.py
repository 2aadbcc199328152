"""slide.verify: re-checking dataset and result files against the provenance manifest."""
import json
import shutil
from pathlib import Path

import pytest

from slide.report.provenance import collect
from slide.report.runs import runs_in
from slide.verify import VerificationError, main, manifest_checks, verify

FIX = Path(__file__).parent / "data" / "report" / "results"
MANIFEST = "results/provenance/fixture.json"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A results/ tree (fixture runs + dataset) and the manifest the provenance rule would write for it."""
    shutil.copytree(FIX, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    runs = runs_in([Path("results/runs/fixture") / s for s in ("slide", "tf_full", "tf_sampled")])
    prov = collect({"dataset": {"name": "fixture"}}, meta_path="results/data/fixture/meta.json",
                   data_files=["results/data/fixture/train.npz", "results/data/fixture/test.npz"], runs=runs)
    Path("results/provenance").mkdir()
    Path(MANIFEST).write_text(json.dumps(prov))
    return tmp_path


def test_untouched_files_pass(tree):
    lines = verify(MANIFEST)
    assert sum(line.startswith("ok") for line in lines) == 3 + 3 * 2  # two splits, meta.json, three runs x two files
    assert main([MANIFEST]) == 0
    assert verify() == lines and main([]) == 0  # the default: every manifest in results/provenance/


@pytest.mark.parametrize("victim", ["results/runs/fixture/slide/final.json", "results/runs/fixture/tf_full/metrics.csv",
                                    "results/data/fixture/test.npz"])
def test_one_changed_byte_fails_naming_the_file(tree, victim, capsys):
    p = Path(victim)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as e:
        verify(MANIFEST)
    first, *rest = str(e.value).splitlines()
    assert first.startswith("verify FAILED: 1 of 11 file(s) differ")
    assert rest == [rest[0]] and rest[0].startswith(f"{victim}: SHA256 MISMATCH")
    assert main([MANIFEST]) == 1
    assert victim in capsys.readouterr().err


def test_missing_and_appended_files_are_all_listed(tree):
    Path("results/runs/fixture/tf_sampled/final.json").unlink()
    with open("results/runs/fixture/slide/metrics.csv", "a") as f:
        f.write("slide,999,9,1,1,0.9,0.9,0.9,10,0.1\n")
    with pytest.raises(VerificationError) as e:
        verify(MANIFEST)
    msg = str(e.value)
    assert "2 of 11" in msg  # 9 dataset + run files, 2 raw sources (absent: not required)
    assert "results/runs/fixture/tf_sampled/final.json: MISSING" in msg
    assert "results/runs/fixture/slide/metrics.csv: SHA256 MISMATCH" in msg and "bytes" in msg


def test_a_removed_raw_source_is_not_a_failure_but_a_changed_one_is(tree):
    prov = json.loads(Path(MANIFEST).read_text())
    raw = Path("raw.txt")
    raw.write_text("1,2 3:1\n")
    from slide.report.provenance import file_record
    prov["dataset"]["meta"] = {"sources": {"train": file_record(raw)}}
    Path(MANIFEST).write_text(json.dumps(prov))
    assert any("raw.txt" in line for line in verify(MANIFEST))
    raw.write_text("1,2 3:2\n")
    with pytest.raises(VerificationError, match="raw.txt: SHA256 MISMATCH"):
        verify(MANIFEST)
    raw.unlink()
    assert any(line.startswith("--  raw.txt") for line in verify(MANIFEST))


def test_bad_manifests_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="no provenance manifest"):
        verify(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"runs": \n')
    with pytest.raises(ValueError, match=r"bad.json:2: invalid JSON"):
        verify(bad)
    bad.write_text(json.dumps({"dataset": {"files": []}, "runs": {}}))
    with pytest.raises(ValueError, match="no dataset or run file records"):
        verify(bad)
    with pytest.raises(ValueError, match="malformed file record"):
        manifest_checks({"dataset": {"files": [{"path": "x"}]}})


def _second_dataset(outputs, when: str, name: str = "other") -> dict:
    """A manifest of another dataset's run: its own split file, the shared figure/summary paths."""
    from slide.report.provenance import file_record

    d = Path(f"results/data/{name}")
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.npz").write_bytes(b"other split")
    prov = collect({"dataset": {"name": name}}, data_files=[d / "train.npz"], outputs=outputs)
    prov["generated_at"] = when
    Path(f"results/provenance/{name}.json").write_text(json.dumps(prov))
    assert prov["outputs"] == [file_record(f) for f in outputs]
    return prov


def test_every_dataset_manifest_is_checked(tree):
    _second_dataset([], "2030-01-01T00:00:00+00:00")
    lines = verify()
    assert any(line.startswith("ok  results/data/other/train.npz (other: dataset)") for line in lines)
    assert any(line.startswith("ok  results/data/fixture/train.npz (fixture: dataset)") for line in lines)
    Path("results/data/other/train.npz").write_bytes(b"changed")
    with pytest.raises(VerificationError, match=r"other: results/data/other/train.npz: SHA256 MISMATCH"):
        verify()
    with pytest.raises(VerificationError, match=r"1 of 12 file\(s\) differ"):
        verify("results/provenance")  # a directory: all of its manifests


def test_models_figures_summaries_and_unshuffled_data_are_covered(tree):
    """A run's model (file or directory), the figures and summaries, meta.json and the unshuffled splits."""
    run = Path("results/runs/fixture/slide")
    (run / "model").write_bytes(b"model bytes")
    tf_model = Path("results/runs/fixture/tf_full/model")
    tf_model.mkdir()
    (tf_model / "model.json").write_text("{}")
    (tf_model / "ckpt.index").write_bytes(b"index")
    unshuffled = Path("results/data/fixture/unshuffled")
    unshuffled.mkdir()
    (unshuffled / "train.npz").write_bytes(b"unshuffled")
    figure, summary = Path("results/figures/time_vs_p1.png"), Path("results/summary.md")
    figure.parent.mkdir()
    figure.write_bytes(b"png")
    summary.write_text("| system |\n")
    prov = collect({"dataset": {"name": "fixture"}}, meta_path="results/data/fixture/meta.json",
                   data_files=["results/data/fixture/train.npz", unshuffled / "train.npz"],
                   runs=runs_in([Path("results/runs/fixture") / s for s in ("slide", "tf_full", "tf_sampled")]),
                   outputs=[figure, summary])
    Path(MANIFEST).write_text(json.dumps(prov))
    paths = {line.split()[1] for line in verify() if line.startswith("ok")}
    victims = [str(run / "model"), str(tf_model / "ckpt.index"), str(tf_model / "model.json"), str(figure),
               str(summary), "results/data/fixture/meta.json", str(unshuffled / "train.npz")]
    assert set(victims) <= paths
    for victim in victims:
        p = Path(victim)
        good = p.read_bytes()
        p.write_bytes(good + b"!")
        with pytest.raises(VerificationError, match=rf"{victim}: SHA256 MISMATCH"):
            verify()
        p.write_bytes(good)


def test_shared_figures_are_checked_against_the_newest_manifest(tree):
    figure = Path("results/figures/time_vs_p1.png")
    figure.parent.mkdir()
    figure.write_bytes(b"figure of the fixture run")
    prov = json.loads(Path(MANIFEST).read_text())
    prov["outputs"] = collect({}, outputs=[figure])["outputs"]
    prov["generated_at"] = "2030-01-01T00:00:00+00:00"
    Path(MANIFEST).write_text(json.dumps(prov))
    figure.write_bytes(b"figure of the other dataset's later run")
    _second_dataset([figure], "2030-02-01T00:00:00+00:00")
    lines = verify()  # the fixture's record of the figure is superseded, not a failure
    assert f"--  {figure} (fixture: figure or summary; superseded by the other run)" in lines
    assert f"ok  {figure} (other: figure or summary)" in lines
    figure.write_bytes(b"changed afterwards")
    with pytest.raises(VerificationError, match=rf"1 of 13 file\(s\) differ.*\nother: {figure}: SHA256 MISMATCH"):
        verify()


def test_the_single_manifest_of_earlier_versions_is_still_read(tree):
    Path(MANIFEST).rename("results/provenance.json")
    Path("results/provenance").rmdir()
    assert sum(line.startswith("ok") for line in verify()) == 9
    Path("results/provenance.json").unlink()
    with pytest.raises(ValueError, match="no provenance manifests"):
        verify()
