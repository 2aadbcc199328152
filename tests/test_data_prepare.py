"""prepare + shuffle: sources (train/test files, data + split files), meta.json, seeded shuffle, and the
real Bibtex files of shared/data/bibtex (read in place, never written)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from slide.data.csr import load_split
from slide.data.prepare import majority_baseline, prepare, read_split_column, shuffle
from slide.data.xmlrepo import split_from_rows

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
BIBTEX = REPO / ".." / "shared" / "data" / "bibtex"


def signature(split, i):
    f = slice(split.indptr[i], split.indptr[i + 1])
    return (tuple(sorted(split.row_labels(i).tolist())), tuple(split.indices[f].tolist()),
            tuple(np.round(split.data[f], 6).tolist()))


def run(tmp_path, sources, seed=0, **kw):
    u, o = tmp_path / "unshuffled", tmp_path / "out"
    prepare(sources, u / "train.npz", u / "test.npz", u / "info.json", **kw)
    meta = shuffle(u / "train.npz", u / "test.npz", u / "info.json", o / "train.npz", o / "test.npz",
                   o / "meta.json", seed=seed, dataset="t")
    return u, o, meta


def test_prepare_and_shuffle_train_test_files(tmp_path):
    train_txt, test_txt = DATA / "xmlrepo_train.txt", DATA / "xmlrepo_test.txt"
    u, o, meta = run(tmp_path, {"train": str(train_txt), "test": str(test_txt)}, seed=7, n_features=8, n_labels=4)
    assert json.loads((o / "meta.json").read_text()) == json.loads(json.dumps(meta))
    assert (meta["n_train"], meta["n_test"], meta["n_features"], meta["n_labels"]) == (5, 2, 8, 4)
    assert meta["shuffle_seed"] == 7 and meta["duplicate_labels_removed"] == 1
    assert meta["sources"]["train"]["sha256"] == hashlib.sha256(train_txt.read_bytes()).hexdigest()
    assert meta["stats"]["train"]["samples_without_labels"] == 1
    assert meta["stats"]["train"]["labels_per_sample"] == pytest.approx(7 / 5)
    # the shuffled split holds the same rows as the unshuffled one, in the seeded order
    a, b = load_split(u / "train.npz"), load_split(o / "train.npz")
    perm = np.random.default_rng(7).permutation(a.n)
    assert [signature(b, i) for i in range(b.n)] == [signature(a, j) for j in perm]


def test_shuffle_is_seeded(tmp_path):
    from slide.data.synthetic import SyntheticSpec, write_synthetic
    spec = SyntheticSpec(n_train=400, n_test=100, n_features=300, n_labels=200, seed=3)
    write_synthetic(spec, tmp_path / "train.txt", tmp_path / "test.txt")
    src = {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt")}
    orders = []
    for k, seed in enumerate((0, 0, 1)):
        _, o, _ = run(tmp_path / str(k), src, seed=seed)
        orders.append(load_split(o / "train.npz").labels)
    assert np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], orders[2])


def test_majority_baseline():
    train = split_from_rows([([1], {}), ([1, 2], {}), ([2, 3], {}), ([1], {})], 2, 5)  # freq: 1 x3, 2 x2, 3 x1
    test = split_from_rows([([1], {}), ([0], {}), ([2, 1], {}), ([3], {})], 2, 5)
    mb = majority_baseline(train, test)
    assert mb["label"] == 1 and mb["train_share"] == 0.75
    assert mb["p_at_1"] == 0.5                       # rows 0 and 2 hold label 1
    assert mb["p_at_3"] == pytest.approx((1 + 0 + 2 + 1) / 3 / 4)


def test_train_test_dimensions_must_agree(tmp_path):
    other = tmp_path / "test.txt"
    other.write_bytes(b"1 9 4\n1 2:1\n")
    with pytest.raises(ValueError, match=rf"{other}:1: header declares D=9 L=4 but .*D=8 L=4"):
        run(tmp_path, {"train": str(DATA / "xmlrepo_train.txt"), "test": str(other)})
    assert not (tmp_path / "unshuffled").exists()


def test_local_config_needs_known_keys(tmp_path):
    with pytest.raises(ValueError, match=r"dataset.local: expected \{train, test\} or \{data, train_split"):
        run(tmp_path, {"data": "x"})


# ---- data file + split files ----------------------------------------------------------------------

DATA_TXT = b"4 5 3\n0 0:1\n1 1:1\n2 2:1\n0,1 3:1\n"


@pytest.fixture
def split_files(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "data.txt").write_bytes(DATA_TXT)
    (d / "tr.txt").write_bytes(b"1 4\n3 2\n")
    (d / "ts.txt").write_bytes(b"2 1\n4 3\n")
    return d


def test_split_files_select_rows(tmp_path, split_files):
    d = split_files
    for col, want_train, want_test in ((1, [0, 2], [1, 3]), (2, [3, 1], [0, 2])):
        u, _, meta = run(tmp_path / f"c{col}", {"data": str(d / "data.txt"), "train_split": str(d / "tr.txt"),
                                               "test_split": str(d / "ts.txt")}, split_column=col)
        tr, te = load_split(u / "train.npz"), load_split(u / "test.npz")
        assert tr.indices.tolist() == want_train and te.indices.tolist() == want_test  # row r has feature r
        assert meta["split_column"] == col and set(meta["sources"]) == {"data", "train_split", "test_split"}


SPLIT_ERRORS = [
    ("column_out_of_range", b"1 4\n3 2\n", 3, "tr.txt:1: the split file has 2 column(s); split_column=3 must be in 1..2"),
    ("row_zero", b"0 4\n3 2\n", 1, "tr.txt:1: row number 0 outside 1..4"),
    ("row_too_big", b"1 4\n5 2\n", 1, "tr.txt:2: row number 5 outside 1..4"),
    ("not_a_number", b"1 4\nx 2\n", 1, "tr.txt:2: expected a 1-based row number in column 1, found 'x'"),
    ("ragged", b"1 4\n3\n", 1, "tr.txt:2: expected 2 columns like line 1, found 1"),
    ("duplicate_row", b"1 4\n1 2\n", 1, "tr.txt:2: row 1 appears twice in column 1"),
    ("overlap", b"1 4\n2 2\n", 1, "ts.txt: row 2 of column 1 is also in"),
    ("empty", b"", 1, "tr.txt:1: empty split file"),
]


@pytest.mark.parametrize("text,col,msg", [e[1:] for e in SPLIT_ERRORS], ids=[e[0] for e in SPLIT_ERRORS])
def test_split_file_errors(tmp_path, split_files, text, col, msg):
    d = split_files
    (d / "tr.txt").write_bytes(text)
    with pytest.raises(ValueError) as err:
        run(tmp_path, {"data": str(d / "data.txt"), "train_split": str(d / "tr.txt"),
                       "test_split": str(d / "ts.txt")}, split_column=col)
    assert msg in str(err.value) and str(err.value).startswith(str(d))
    assert not (tmp_path / "unshuffled").exists()


def test_read_split_column_is_zero_based(split_files):
    assert read_split_column(split_files / "tr.txt", 2, 4).tolist() == [3, 1]


# ---- the real Bibtex files ------------------------------------------------------------------------

def _reference_rows(path: Path) -> list[tuple[tuple, dict]]:
    """Independent, slow, plain-Python reading of the data lines (labels, {feature: value})."""
    lines = path.read_text().splitlines()[1:]
    out = []
    for ln in lines:
        if not ln.strip():
            continue
        labels_field, _, rest = ln.partition(" ")
        labels = tuple(int(x) for x in labels_field.split(",")) if labels_field else ()
        feats = {int(f): float(v) for f, v in (tok.split(":") for tok in rest.split())}
        out.append((labels, feats))
    return out


@pytest.mark.skipif(not BIBTEX.is_dir(), reason="shared/data/bibtex is not beside this checkout")
@pytest.mark.parametrize("column", [1, 7])
def test_bibtex_rows_match_the_split(tmp_path, column):
    src = {"data": str(BIBTEX / "Bibtex_data.txt"), "train_split": str(BIBTEX / "bibtex_trSplit.txt"),
           "test_split": str(BIBTEX / "bibtex_tstSplit.txt")}
    u, o, meta = run(tmp_path, src, split_column=column, n_features=1836, n_labels=159)
    ref = _reference_rows(BIBTEX / "Bibtex_data.txt")
    assert len(ref) == 7395
    for split_file, npz, n in (("bibtex_trSplit.txt", "train.npz", 4880), ("bibtex_tstSplit.txt", "test.npz", 2515)):
        rows = [int(line.split()[column - 1]) - 1 for line in (BIBTEX / split_file).read_text().splitlines()]
        s = load_split(u / npz)
        assert s.n == n == len(rows)
        for i, r in enumerate(rows):
            labels, feats = ref[r]
            f = slice(s.indptr[i], s.indptr[i + 1])
            assert tuple(s.row_labels(i).tolist()) == labels
            assert dict(zip(s.indices[f].tolist(), s.data[f].tolist())) == feats
    assert meta["sources"]["data"]["sha256"] == "9768a851d74823f125c5344d17eb2b1741f1615c926ba8b8387f5e76dfd53d24"
    assert meta["n_train"] == 4880 and meta["n_test"] == 2515 and meta["duplicate_labels_removed"] == 0
    assert 0.05 < meta["majority_baseline"]["p_at_1"] < 0.3
