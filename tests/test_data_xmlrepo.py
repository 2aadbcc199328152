"""XMLRepository parser (C++ core via slide.data.xmlrepo): accepted real-file quirks, one test per
rejected input (file, line and rule in the message, nothing written), round trips and fuzzing."""
from pathlib import Path

import re

import numpy as np
import pytest

from slide.data.csr import Split
from slide.data.prepare import prepare
from slide.data.xmlrepo import parse_bytes, parse_file, read_xmlrepo, split_from_rows, write_xmlrepo

DATA = Path(__file__).parent / "data"


def rows_of(split):
    """[(labels list, {feature: value})] for comparisons."""
    out = []
    for i in range(split.n):
        f = slice(split.indptr[i], split.indptr[i + 1])
        out.append((split.row_labels(i).tolist(),
                    dict(zip(split.indices[f].tolist(), split.data[f].tolist()))))
    return out


def test_real_file_quirks_fixture():
    # CRLF, trailing spaces, a tab, an empty label field, unsorted features, a repeated label,
    # a duplicate row and a trailing blank line
    s = read_xmlrepo(DATA / "xmlrepo_train.txt")
    assert (s.n, s.n_features, s.n_labels) == (5, 8, 4)
    assert rows_of(s) == [
        ([0, 2], {1: 1.0, 3: 0.5}),
        ([], {0: 1.0, 7: 0.25}),
        ([3], {2: 1.0, 5: 2.5}),
        ([1, 0], {4: 0.125}),          # "1,1,0": the repeat is dropped, file order kept
        ([0, 2], {1: 1.0, 3: 0.5}),    # duplicate rows are data, kept
    ]
    assert s.indices.tolist()[:2] == [1, 3]  # sorted within the row
    _, info = parse_file(DATA / "xmlrepo_train.txt")
    assert info.duplicate_labels == 1 and info.bytes == (DATA / "xmlrepo_train.txt").stat().st_size


def test_bom_tabs_and_blank_tail():
    s = parse_bytes(b"\xef\xbb\xbf2 4 3 \n1\t0:1\t\t3:2 \n \n\n  \n", "x.txt")
    assert rows_of(s) == [([1], {0: 1.0, 3: 2.0}), ([], {})]


def test_labels_without_features_and_values_formats():
    s = parse_bytes(b"3 5 5\n4\n0 1:1e-3 2:-0.5 3:7\n2,1 4:.25\n", "x.txt")
    assert rows_of(s) == [([4], {}), ([0], {1: np.float32(1e-3), 2: -0.5, 3: 7.0}), ([2, 1], {4: 0.25})]


def test_empty_split():
    s = parse_bytes(b"0 3 2\n", "x.txt")
    assert s.n == 0 and s.n_features == 3


@pytest.mark.parametrize("decimals", [None, 6])
def test_round_trip_random(tmp_path, decimals):
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(300):
        labs = rng.choice(50, size=rng.integers(0, 5), replace=False).tolist()
        feats = {int(f): float(np.float32(rng.standard_normal() * 10))
                 for f in rng.choice(1000, size=rng.integers(0, 30), replace=False)}
        rows.append((labs, feats))
    split = split_from_rows(rows, 1000, 50)
    path = tmp_path / "rt.txt"
    write_xmlrepo(path, split, decimals=decimals)
    back = read_xmlrepo(path)
    assert back.n_features == 1000 and back.n_labels == 50
    assert np.array_equal(back.indptr, split.indptr) and np.array_equal(back.indices, split.indices)
    assert np.array_equal(back.label_indptr, split.label_indptr) and np.array_equal(back.labels, split.labels)
    if decimals is None:
        assert np.array_equal(back.data, split.data)  # shortest repr is exact
    else:
        assert np.allclose(back.data, split.data, atol=1e-6, rtol=0)
    assert list(tmp_path.iterdir()) == [path]  # atomic write left no temp file


def test_file_reader_matches_buffer_across_blocks_and_long_lines(tmp_path):
    # > 4 MiB so lines straddle the reader's block boundary, plus one line longer than a block
    rng = np.random.default_rng(0)
    n, d = 30_000, 700_000
    nnz = rng.integers(0, 40, n)
    nnz[n // 2] = 600_000
    indptr = np.concatenate(([0], np.cumsum(nnz))).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(d, k, replace=False)) for k in nnz]).astype(np.int32)
    data = rng.random(len(indices), dtype=np.float32)
    labels = rng.integers(0, 9, n).astype(np.int32)
    split = Split(indptr, indices, data, np.arange(n + 1, dtype=np.int64), labels, d, 9)
    path = tmp_path / "big.txt"
    write_xmlrepo(path, split)
    assert path.stat().st_size > 3 * (1 << 22)
    a = read_xmlrepo(path)
    b = parse_bytes(path.read_bytes(), str(path))
    for x, y, want in ((a.indptr, b.indptr, indptr), (a.indices, b.indices, indices), (a.data, b.data, data)):
        assert np.array_equal(x, y) and np.array_equal(x, want)


def test_config_dimensions_checked(tmp_path):
    path = DATA / "xmlrepo_train.txt"
    assert read_xmlrepo(path, n_features=8, n_labels=4).n == 5
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:1: header declares D=8 features but n_features=9 was expected"):
        read_xmlrepo(path, n_features=9)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:1: header declares L=4 labels but n_labels=5 was expected"):
        read_xmlrepo(path, n_labels=5)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt: no such file"):
        read_xmlrepo(tmp_path / "nope.txt")


GOOD = b"1 0:1.0 2:0.5\n"
# (case id, file text, line of the error, text the message must contain)
BAD = [
    ("header_two_fields", b"3 10\n", 1, "malformed header '3 10': expected 'N D L'"),
    ("header_words", b"n d l\n", 1, "malformed header"),
    ("header_extra", b"1 10 5 7\n" + GOOD, 1, "expected exactly 'N D L'"),
    ("header_negative", b"-1 10 5\n", 1, "malformed header"),
    ("header_zero_features", b"1 0 5\n" + GOOD, 1, "D=0 features"),
    ("empty_file", b"", 1, "empty file: expected a header"),
    ("too_few_lines", b"3 10 5\n" + GOOD + GOOD, 4, "declares N=3 data lines but the file ends after 2"),
    ("too_many_lines", b"1 10 5\n" + GOOD + GOOD, 3, "more data lines than the N=1 the header declares"),
    ("feature_out_of_range", b"2 10 5\n" + GOOD + b"1 10:1.0\n", 3, "feature index '10' out of range: the header declares D=10"),
    ("feature_huge", b"2 10 5\n" + GOOD + b"1 99999999999999999999:1\n", 3, "out of range"),
    ("label_out_of_range", b"2 10 5\n" + GOOD + b"5 1:1.0\n", 3, "label '5' out of range: the header declares L=5"),
    ("negative_label", b"2 10 5\n" + GOOD + b"-1 1:1.0\n", 3, "negative label '-1'"),
    ("negative_feature", b"2 10 5\n" + GOOD + b"1 -1:1.0\n", 3, "negative feature index in '-1:1.0'"),
    ("feature_no_colon", b"2 10 5\n" + GOOD + b"1 3\n", 3, "malformed feature '3': expected 'index:value'"),
    ("feature_no_value", b"2 10 5\n" + GOOD + b"1 3:\n", 3, "malformed feature '3:'"),
    ("feature_no_index", b"2 10 5\n" + GOOD + b"1 :1.0\n", 3, "malformed feature ':1.0'"),
    ("feature_two_colons", b"2 10 5\n" + GOOD + b"1 3:1:2\n", 3, "malformed feature '3:1:2'"),
    ("value_garbage", b"2 10 5\n" + GOOD + b"1 3:1.0x\n", 3, "malformed feature '3:1.0x'"),
    ("value_nan", b"2 10 5\n" + GOOD + b"1 3:nan\n", 3, "non-finite value 'nan' of feature 3"),
    ("value_inf", b"2 10 5\n" + GOOD + b"1 3:-inf\n", 3, "non-finite value '-inf'"),
    ("value_overflow", b"2 10 5\n" + GOOD + b"1 3:1e60\n", 3, "out of float32 range"),
    ("duplicate_feature", b"2 10 5\n" + GOOD + b"1 3:1 4:1 3:2\n", 3, "duplicate feature index 3 in the row"),
    ("trailing_garbage", b"2 10 5\n" + GOOD + b"1 3:1.0 junk\n", 3, "malformed feature 'junk'"),
    ("empty_line_inside", b"3 10 5\n" + GOOD + b"\n" + GOOD, 3, "empty line: expected 'labels features'"),
    ("empty_label", b"2 10 5\n" + GOOD + b"1,,2 3:1\n", 3, "empty label in label list '1,,2'"),
    ("label_trailing_comma", b"2 10 5\n" + GOOD + b"1,2, 3:1\n", 3, "ends with ','"),
    ("label_not_int", b"2 10 5\n" + GOOD + b"1.5 3:1\n", 3, "malformed label '1.5'"),
    ("features_without_label_space", b"2 10 5\n" + GOOD + b"3:1.0 4:1.0\n", 3,
     "a point without labels is a line starting with a space"),
    ("binary_garbage", b"2 10 5\n" + GOOD + b"\x00\xff\xfe\n", 3, "malformed label '\\x00\\xff\\xfe'"),
]


@pytest.mark.parametrize("text,line,rule", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(tmp_path, text, line, rule):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(text)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        prepare({"train": str(bad), "test": str(DATA / "xmlrepo_test.txt")},
                out / "train.npz", out / "test.npz", out / "info.json")
    msg = str(err.value)
    assert msg.startswith(f"{bad}:{line}: "), msg
    assert rule in msg, msg
    assert "\n" not in msg
    assert not out.exists() or not any(out.iterdir())  # nothing written, no temp files
    # the in-memory parser agrees
    with pytest.raises(ValueError, match=f"^bad.txt:{line}: "):
        parse_bytes(text, "bad.txt")


def test_fuzz_never_crashes():
    rng = np.random.default_rng(12345)
    valid = (DATA / "xmlrepo_train.txt").read_bytes()
    alphabet = np.frombuffer(b"0123456789:,. \t\r\n-+eE", dtype=np.uint8)
    outcomes = {"ok": 0, "error": 0}
    for i in range(3000):
        kind = i % 3
        if kind == 0:  # random bytes
            text = rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8).tobytes()
        elif kind == 1:  # random bytes from the format's own alphabet, behind a plausible header
            text = b"3 20 10\n" + rng.choice(alphabet, rng.integers(0, 120)).tobytes()
        else:  # a valid file with a few bytes flipped, inserted or removed
            buf = bytearray(valid)
            for _ in range(rng.integers(1, 4)):
                pos = int(rng.integers(0, len(buf)))
                op = rng.integers(0, 3)
                if op == 0:
                    buf[pos] = int(rng.integers(0, 256))
                elif op == 1:
                    buf.insert(pos, int(rng.choice(alphabet)))
                else:
                    del buf[pos]
            text = bytes(buf)
        try:
            s = parse_bytes(text, "fuzz.txt")
            s.validate()
            outcomes["ok"] += 1
        except ValueError as e:
            assert str(e).startswith("fuzz.txt:") and "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0
