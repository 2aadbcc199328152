"""XMLRepository BoW text <-> `Split`. The parsing and writing loops are C++ (slide._native).

Format: header `N D L`, then N lines `l1,l2,... f:v f:v ...`, 0-based; a point without labels has an
empty label field (its line starts with a space). Accepted because real files contain them: CRLF,
a UTF-8 BOM, trailing spaces, tabs, features in any order (sorted within the row), trailing blank lines,
duplicate rows. Repeated labels within a row are dropped (labels are a set; counted in ParseInfo).
Everything else is a ValueError `<file>:<line>: <what was expected>` — see native/src/xmlrepo_parse.hpp.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_path
from .csr import Split


@dataclass(frozen=True)
class ParseInfo:
    path: str
    bytes: int
    seconds: float
    duplicate_labels: int  # repeated labels dropped within rows

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / max(self.seconds, 1e-9)


def _native():
    try:
        from .. import _native
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("slide._native is not built: run `pip install -e .` in the repository root") from e
    return _native


def _to_split(arrays: dict) -> Split:
    return Split(arrays["indptr"], arrays["indices"], arrays["data"], arrays["label_indptr"], arrays["labels"],
                 int(arrays["n_features"]), int(arrays["n_labels"]))


def _expect(v: int | None) -> int:
    return -1 if v is None else int(v)


def parse_file(path: str | os.PathLike, n_features: int | None = None,
               n_labels: int | None = None) -> tuple[Split, ParseInfo]:
    """Parse an XMLRepository file; also return how long it took and what was normalised."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    t0 = time.perf_counter()
    arrays = _native().parse_xmlrepo(path, path, _expect(n_features), _expect(n_labels))
    seconds = time.perf_counter() - t0
    return _to_split(arrays), ParseInfo(path, int(arrays["bytes"]), seconds, int(arrays["duplicate_labels"]))


def read_xmlrepo(path: str | os.PathLike, n_features: int | None = None, n_labels: int | None = None) -> Split:
    """Parse an XMLRepository file into a Split. Dimensions come from the header; `n_features` /
    `n_labels`, when given (dataset.n_features / n_labels in the config), must match it."""
    return parse_file(path, n_features, n_labels)[0]


def parse_bytes(text: bytes, name: str = "<text>", n_features: int | None = None,
                n_labels: int | None = None) -> Split:
    """Parse in-memory XMLRepository text (errors name `name` as the file)."""
    return _to_split(_native().parse_xmlrepo_bytes(bytes(text), name, _expect(n_features), _expect(n_labels)))


def write_xmlrepo(path: str | os.PathLike, split: Split, decimals: int | None = None) -> None:
    """Write `split` as XMLRepository text, atomically.

    decimals=None writes the shortest text that reads back as the same float32 (exact round trip);
    an int writes fixed notation like the real files (`1.000000` with 6).
    """
    split.validate(str(path))
    with atomic_path(path) as tmp:
        _native().write_xmlrepo(str(tmp), split.indptr, split.indices, split.data, split.label_indptr,
                                split.labels, split.n_features, split.n_labels,
                                -1 if decimals is None else int(decimals))


def split_from_rows(rows: list[tuple[list[int], dict[int, float]]], n_features: int, n_labels: int) -> Split:
    """Build a Split from Python rows `(labels, {feature: value})` (tests and small fixtures)."""
    indptr, indices, data, label_indptr, labels = [0], [], [], [0], []
    for labs, feats in rows:
        for f in sorted(feats):
            indices.append(f)
            data.append(feats[f])
        labels.extend(labs)
        indptr.append(len(indices))
        label_indptr.append(len(labels))
    return Split(np.asarray(indptr, np.int64), np.asarray(indices, np.int32), np.asarray(data, np.float32),
                 np.asarray(label_indptr, np.int64), np.asarray(labels, np.int32), n_features, n_labels)

