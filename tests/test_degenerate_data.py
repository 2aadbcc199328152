"""Degenerate data is refused by `prepare` with the file, the line and what was expected: empty splits,
headers whose dimensions cannot fit in memory, numbers beyond any range (quoted as written)."""
import pytest

import slide.memory
from slide.data.prepare import prepare
from slide.data.xmlrepo import parse_bytes
from slide.memory import dataset_bytes, gib, network_bytes

ROWS = "3 5 4\n0,1 0:1.0 2:0.5\n2 1:1.0\n3 4:2.0\n"


def run_prepare(tmp_path, train: str, test: str):
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(test)
    out = tmp_path / "out"
    prepare({"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt")}, out / "train.npz",
            out / "test.npz", out / "info.json")
    return out


@pytest.mark.parametrize("role", ["train", "test"])
def test_empty_split_is_refused(tmp_path, role):
    files = {"train": ROWS, "test": ROWS, role: "0 5 4\n"}
    with pytest.raises(ValueError, match=rf"{role}\.txt:1: the {role} split has no data points \(N=0\); it needs "
                                         "at least one"):
        run_prepare(tmp_path, files["train"], files["test"])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing half-written


def test_header_too_large_for_memory_says_what_it_would_need(tmp_path, monkeypatch):
    monkeypatch.setattr(slide.memory, "total_memory", lambda: 16 * 2 ** 30)
    huge = "2 2000000000 2000000000\n0 1:1.0\n1 0:1.0\n"
    need = dataset_bytes(2_000_000_000, 2_000_000_000)
    with pytest.raises(ValueError, match=rf"train\.txt:1: the header's D=2000000000 features and L=2000000000 labels: "
                                         rf".* needs {gib(need)}, more than this machine's 16\.0 GiB of memory"):
        run_prepare(tmp_path, huge, ROWS)


def test_dimensions_that_fit_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(slide.memory, "total_memory", lambda: 16 * 2 ** 30)
    out = run_prepare(tmp_path, ROWS, ROWS)
    assert (out / "train.npz").exists() and (out / "test.npz").exists()


def test_header_number_beyond_range_is_quoted_in_full():
    with pytest.raises(ValueError, match=r"^x\.txt:1: header declares D=99999999999999999999 features; expected "
                                         r"1\.\.2\^31-1$"):
        parse_bytes(b"1 99999999999999999999 5\n0 1:1\n", "x.txt")
    with pytest.raises(ValueError, match=r"header declares L=123456789012345678901234567890 labels"):
        parse_bytes(b"1 5 123456789012345678901234567890\n0 1:1\n", "x.txt")


def test_trainer_refuses_a_network_that_cannot_fit(tmp_path, monkeypatch):
    from slide.atomic import write_json
    from slide.data.csr import save_split
    from slide.training.protocol import load_prepared

    split = parse_bytes(ROWS.encode(), "rows.txt")
    save_split(tmp_path / "train.npz", split)
    save_split(tmp_path / "test.npz", split)
    write_json(tmp_path / "meta.json", {})
    monkeypatch.setattr(slide.memory, "total_memory", lambda: 1000)
    need = network_bytes(5, 4, [128])
    with pytest.raises(ValueError, match=rf"train\.npz: a network 5 -> 128 -> 4 \(weights and Adam moments\) needs "
                                         rf"{gib(need)}, more than this machine's"):
        load_prepared(tmp_path / "train.npz", tmp_path / "test.npz", tmp_path / "meta.json", hidden=[128])
    monkeypatch.setattr(slide.memory, "total_memory", lambda: 2 ** 30)
    assert load_prepared(tmp_path / "train.npz", tmp_path / "test.npz", tmp_path / "meta.json", hidden=[128])[0].n == 3


def test_network_bytes_counts_weights_biases_and_two_adam_moments():
    assert network_bytes(10, 3, [4]) == 12 * (10 * 4 + 4 + 4 * 3 + 3)
