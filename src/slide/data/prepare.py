"""prepare: raw XMLRepository text -> validated CSR splits; shuffle: seeded permutation + meta.json.

Sources (dataset config):
- {train: path, test: path}: two XMLRepository files (synthetic, downloaded, or the user's own).
- {data: X_data.txt, train_split: x_trSplit.txt, test_split: x_tstSplit.txt, split_column: c}: one data
  file plus the Extreme Classification Repository's split files: 1-based row numbers (header not
  counted), one column per random split; `split_column` (1-based) picks the split.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..atomic import write_json
from .csr import Split, load_split, save_split
from ..atomic import sha256_file
from ..memory import dataset_bytes, require_memory
from .xmlrepo import parse_file

log = logging.getLogger(__name__)


def raw_sources(dataset_cfg: dict, dataset: str) -> dict[str, str]:
    """The raw files `prepare` reads for a `dataset` config section (used by workflow/rules/data.smk)."""
    if dataset_cfg["source"] != "local":
        return {"train": f"resources/raw/{dataset}/train.txt", "test": f"resources/raw/{dataset}/test.txt"}
    local = dataset_cfg.get("local") or {}
    keys = ("train", "test") if "train" in local else ("data", "train_split", "test_split")
    missing = [k for k in keys if not local.get(k)]
    if missing:
        raise ValueError(f"config dataset.local: missing {missing}; expected {{train, test}} "
                         f"or {{data, train_split, test_split, split_column}}")
    return {k: local[k] for k in keys}


def read_split_column(path: str | os.PathLike, column: int, n_rows: int) -> np.ndarray:
    """0-based row indices of split `column` (1-based) from a split file; validated against n_rows."""
    path = str(path)
    rows, width = [], None
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            parts = raw.split()
            if not parts:
                continue
            if width is None:
                width = len(parts)
                if not 1 <= column <= width:
                    raise ValueError(f"{path}:{line_no}: the split file has {width} column(s); "
                                     f"split_column={column} must be in 1..{width}")
            elif len(parts) != width:
                raise ValueError(f"{path}:{line_no}: expected {width} columns like line 1, found {len(parts)}")
            tok = parts[column - 1]
            if not tok.isdigit():
                raise ValueError(f"{path}:{line_no}: expected a 1-based row number in column {column}, "
                                 f"found {tok.decode('ascii', 'backslashreplace')!r}")
            v = int(tok)
            if not 1 <= v <= n_rows:
                raise ValueError(f"{path}:{line_no}: row number {v} outside 1..{n_rows} (the data file's N)")
            rows.append(v - 1)
    if not rows:
        raise ValueError(f"{path}:1: empty split file: expected lines of 1-based row numbers")
    idx = np.asarray(rows, dtype=np.int64)
    srt = np.sort(idx)
    dups = srt[1:][srt[1:] == srt[:-1]]
    if len(dups):
        line_no = int(np.flatnonzero(idx == dups[0])[1]) + 1  # counts non-empty lines, as written
        raise ValueError(f"{path}:{line_no}: row {dups[0] + 1} appears twice in column {column}; expected distinct rows")
    return idx


def _check_same_dims(a: Split, a_path: str, b: Split, b_path: str) -> None:
    if (a.n_features, a.n_labels) != (b.n_features, b.n_labels):
        raise ValueError(f"{b_path}:1: header declares D={b.n_features} L={b.n_labels} but {a_path} declares "
                         f"D={a.n_features} L={a.n_labels}; train and test must share dimensions")


def load_sources(sources: dict, n_features: int | None = None, n_labels: int | None = None,
                 split_column: int = 1) -> tuple[Split, Split, dict]:
    """Parse the configured raw files into (train, test, info); nothing is written."""
    # deterministic content only (no timings): an identical meta.json must not trigger retraining
    info: dict = {"sources": {}, "duplicate_labels_removed": 0}

    def parse(role: str, path: str) -> Split:
        split, p = parse_file(path, n_features, n_labels)
        require_memory(dataset_bytes(split.n_features, split.n_labels),
                       f"{path}:1: the header's D={split.n_features} features and L={split.n_labels} labels: a run on "
                       "them (the smallest network's weights and Adam moments, the per-label statistics)")
        info["sources"][role] = {"path": str(path), "bytes": p.bytes, "sha256": sha256_file(path)}
        info["duplicate_labels_removed"] += p.duplicate_labels
        if p.duplicate_labels:
            log.warning("%s: dropped %d repeated labels within rows (labels are a set)", path, p.duplicate_labels)
        log.info("%s: %d rows parsed in %.2f s (%.0f MB/s)", path, split.n, p.seconds, p.mb_per_s)
        return split

    if {"train", "test"} <= set(sources):
        train = parse("train", sources["train"])
        test = parse("test", sources["test"])
        _check_same_dims(train, sources["train"], test, sources["test"])
    elif {"data", "train_split", "test_split"} <= set(sources):
        data = parse("data", sources["data"])
        tr = read_split_column(sources["train_split"], split_column, data.n)
        te = read_split_column(sources["test_split"], split_column, data.n)
        for role in ("train_split", "test_split"):
            info["sources"][role] = {"path": str(sources[role]), "sha256": sha256_file(sources[role])}
        common = te[np.isin(te, tr)]
        if len(common):
            raise ValueError(f"{sources['test_split']}: row {int(common[0]) + 1} of column {split_column} is also "
                             f"in {sources['train_split']}; train and test rows must be disjoint")
        train, test = data.rows(tr), data.rows(te)
        info["split_column"] = split_column
    else:
        raise ValueError(f"dataset.local: expected {{train, test}} or {{data, train_split, test_split}}, "
                         f"got keys {sorted(sources)}")
    for role, split in (("train", train), ("test", test)):
        if split.n == 0:  # training would divide by zero; an empty test split would report P@k = 0
            source = sources.get(role) or sources[f"{role}_split"]
            raise ValueError(f"{source}:1: the {role} split has no data points (N=0); it needs at least one")
    return train, test, info


def prepare(sources: dict, out_train, out_test, out_info, *, n_features: int | None = None,
            n_labels: int | None = None, split_column: int = 1) -> None:
    """Parse, validate and save the unshuffled splits (+ info.json with sources and their sha256)."""
    train, test, info = load_sources(sources, n_features, n_labels, split_column)
    save_split(out_train, train)
    save_split(out_test, test)
    write_json(out_info, info)


def split_stats(s: Split) -> dict:
    nnz = np.diff(s.indptr)
    nlab = np.diff(s.label_indptr)
    freq = np.bincount(s.labels, minlength=s.n_labels)
    return {
        "n": s.n,
        "labels_per_sample": float(nlab.mean()) if s.n else 0.0,
        "nnz_per_sample": float(nnz.mean()) if s.n else 0.0,
        "nnz_per_sample_median": float(np.median(nnz)) if s.n else 0.0,
        "nnz_per_sample_min": int(nnz.min()) if s.n else 0,
        "nnz_per_sample_max": int(nnz.max()) if s.n else 0,
        "samples_without_labels": int((nlab == 0).sum()),
        "samples_without_features": int((nnz == 0).sum()),
        "distinct_labels": int((freq > 0).sum()),
        "max_label_frequency": int(freq.max()) if len(freq) else 0,
    }


def majority_baseline(train: Split, test: Split, ks=(1, 3, 5)) -> dict:
    """P@k of predicting the k most frequent training labels for every test sample.

    P@1 is the "majority label" baseline every report shows next to the systems' P@1.
    """
    freq = np.bincount(train.labels, minlength=train.n_labels)
    order = np.argsort(-freq, kind="stable")[: max(ks)]
    out = {"label": int(order[0]), "train_share": float(freq[order[0]] / max(train.n, 1))}
    rows = np.repeat(np.arange(test.n), np.diff(test.label_indptr))
    for k in ks:
        hit = np.isin(test.labels, order[:k])
        hits_per_row = np.bincount(rows[hit], minlength=test.n)
        out[f"p_at_{k}"] = float(hits_per_row.mean() / k) if test.n else 0.0
    return out


def shuffle(in_train, in_test, in_info, out_train, out_test, out_meta, *, seed: int, dataset: str) -> dict:
    """Apply a seeded permutation to both splits; write them and meta.json (sizes, sources, statistics)."""
    import json

    train, test = load_split(in_train), load_split(in_test)
    info = json.loads(Path(in_info).read_text())
    rng = np.random.default_rng(seed)
    train = train.rows(rng.permutation(train.n))
    test = test.rows(rng.permutation(test.n))
    meta = {
        "dataset": dataset,
        "n_train": train.n,
        "n_test": test.n,
        "n_features": train.n_features,
        "n_labels": train.n_labels,
        "shuffle_seed": seed,
        **info,
        "stats": {"train": split_stats(train), "test": split_stats(test)},
        "majority_baseline": majority_baseline(train, test),
    }
    save_split(out_train, train)
    save_split(out_test, test)
    write_json(out_meta, meta)
    return meta
