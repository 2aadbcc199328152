"""slide.verify: re-checking dataset and result files against the provenance manifest."""
import json
import shutil
from pathlib import Path

import pytest

from slide.report.provenance import collect
from slide.report.runs import runs_in
from slide.verify import VerificationError, main, manifest_checks, verify

FIX = Path(__file__).parent / "data" / "report" / "results"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A results/ tree (fixture runs + dataset) and the manifest the provenance rule would write for it."""
    shutil.copytree(FIX, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    runs = runs_in([Path("results/runs/fixture") / s for s in ("slide", "tf_full", "tf_sampled")])
    prov = collect({"dataset": {"name": "fixture"}}, meta_path="results/data/fixture/meta.json",
                   data_files=["results/data/fixture/train.npz", "results/data/fixture/test.npz"], runs=runs)
    Path("results/provenance.json").write_text(json.dumps(prov))
    return tmp_path


def test_untouched_files_pass(tree):
    lines = verify("results/provenance.json")
    assert sum(line.startswith("ok") for line in lines) == 2 + 3 * 2  # two splits, three runs x two files
    assert main(["results/provenance.json"]) == 0


@pytest.mark.parametrize("victim", ["results/runs/fixture/slide/final.json", "results/runs/fixture/tf_full/metrics.csv",
                                    "results/data/fixture/test.npz"])
def test_one_changed_byte_fails_naming_the_file(tree, victim, capsys):
    p = Path(victim)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as e:
        verify("results/provenance.json")
    first, *rest = str(e.value).splitlines()
    assert first.startswith("verify FAILED: 1 of 10 file(s) differ")
    assert rest == [rest[0]] and rest[0].startswith(f"{victim}: SHA256 MISMATCH")
    assert main(["results/provenance.json"]) == 1
    assert victim in capsys.readouterr().err


def test_missing_and_appended_files_are_all_listed(tree):
    Path("results/runs/fixture/tf_sampled/final.json").unlink()
    with open("results/runs/fixture/slide/metrics.csv", "a") as f:
        f.write("slide,999,9,1,1,0.9,0.9,0.9,10,0.1\n")
    with pytest.raises(VerificationError) as e:
        verify("results/provenance.json")
    msg = str(e.value)
    assert "2 of 10" in msg  # 8 dataset + run files, 2 raw sources (absent: not required)
    assert "results/runs/fixture/tf_sampled/final.json: MISSING" in msg
    assert "results/runs/fixture/slide/metrics.csv: SHA256 MISMATCH" in msg and "bytes" in msg


def test_a_removed_raw_source_is_not_a_failure_but_a_changed_one_is(tree):
    prov = json.loads(Path("results/provenance.json").read_text())
    raw = Path("raw.txt")
    raw.write_text("1,2 3:1\n")
    from slide.report.provenance import file_record
    prov["dataset"]["meta"] = {"sources": {"train": file_record(raw)}}
    Path("results/provenance.json").write_text(json.dumps(prov))
    assert any("raw.txt" in line for line in verify("results/provenance.json"))
    raw.write_text("1,2 3:2\n")
    with pytest.raises(VerificationError, match="raw.txt: SHA256 MISMATCH"):
        verify("results/provenance.json")
    raw.unlink()
    assert any(line.startswith("--  raw.txt") for line in verify("results/provenance.json"))


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
