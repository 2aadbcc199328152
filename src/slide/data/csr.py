"""The prepared-split contract: CSR features + CSR labels in one `.npz`.

Arrays: indptr int64, indices int32, data float32 (features);
        label_indptr int64, labels int32 (labels); plus scalars n_features, n_labels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_path


@dataclass(frozen=True)
class Split:
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    label_indptr: np.ndarray
    labels: np.ndarray
    n_features: int
    n_labels: int

    def __post_init__(self):
        self.validate()

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def __len__(self) -> int:
        return self.n

    def validate(self, name: str = "split") -> None:
        """Check dtypes, monotone pointers and index ranges; raise ValueError naming what is wrong."""
        want = {"indptr": np.int64, "indices": np.int32, "data": np.float32,
                "label_indptr": np.int64, "labels": np.int32}
        for field, dt in want.items():
            arr = getattr(self, field)
            if not isinstance(arr, np.ndarray) or arr.dtype != dt or arr.ndim != 1:
                raise ValueError(f"{name}: {field} must be a 1-D {np.dtype(dt).name} array")
        for ptr, vals, what in ((self.indptr, self.indices, "indptr"), (self.label_indptr, self.labels, "label_indptr")):
            if len(ptr) == 0 or ptr[0] != 0 or ptr[-1] != len(vals) or np.any(np.diff(ptr) < 0):
                raise ValueError(f"{name}: {what} must start at 0, be non-decreasing and end at len={len(vals)}")
        if len(self.label_indptr) != len(self.indptr):
            raise ValueError(f"{name}: {len(self.indptr) - 1} feature rows but {len(self.label_indptr) - 1} label rows")
        if len(self.data) != len(self.indices):
            raise ValueError(f"{name}: {len(self.indices)} feature indices but {len(self.data)} values")
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= self.n_features):
            raise ValueError(f"{name}: feature index outside [0, {self.n_features})")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= self.n_labels):
            raise ValueError(f"{name}: label outside [0, {self.n_labels})")
        if not np.all(np.isfinite(self.data)):
            raise ValueError(f"{name}: feature values must be finite")

    def rows(self, idx: np.ndarray) -> "Split":
        """A new Split holding rows `idx` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        f_ptr, f_sel = _gather(self.indptr, idx)
        l_ptr, l_sel = _gather(self.label_indptr, idx)
        return Split(f_ptr, self.indices[f_sel], self.data[f_sel], l_ptr, self.labels[l_sel],
                     self.n_features, self.n_labels)

    def row_labels(self, i: int) -> np.ndarray:
        return self.labels[self.label_indptr[i]:self.label_indptr[i + 1]]


class RowView:
    """Rows `sel` of a split, not copied: `.n` and `.rows(idx)` give what `base.rows(sel)` would (the training
    loop needs no more), and `.split()` builds that Split. Holding out validation rows this way keeps one copy
    of the training data in memory instead of two."""

    def __init__(self, base: Split, sel: np.ndarray):
        self.base, self.sel = base, np.asarray(sel, dtype=np.int64)
        self.n_features, self.n_labels = base.n_features, base.n_labels

    @property
    def n(self) -> int:
        return int(self.sel.size)

    def __len__(self) -> int:
        return self.n

    def rows(self, idx: np.ndarray) -> Split:
        return self.base.rows(self.sel[np.asarray(idx, dtype=np.int64)])

    def split(self) -> Split:
        if self.n == self.base.n and np.array_equal(self.sel, np.arange(self.n)):
            return self.base
        return self.base.rows(self.sel)


def _gather(indptr: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR row gather: new indptr and the flat positions of the selected rows' entries."""
    lengths = indptr[idx + 1] - indptr[idx]
    new_ptr = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_ptr[1:])
    # position of each output entry = start of its source row + offset within the row
    starts = np.repeat(indptr[idx] - new_ptr[:-1], lengths)
    sel = starts + np.arange(new_ptr[-1], dtype=np.int64)
    return new_ptr, sel


def save_split(path: str | os.PathLike, split: Split) -> None:
    split.validate(str(path))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, indptr=split.indptr, indices=split.indices, data=split.data,
                 label_indptr=split.label_indptr, labels=split.labels,
                 n_features=np.int64(split.n_features), n_labels=np.int64(split.n_labels))


def load_split(path: str | os.PathLike) -> Split:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("indptr", "indices", "data", "label_indptr", "labels")}
            n_features, n_labels = int(z["n_features"]), int(z["n_labels"])
    except KeyError as e:
        raise ValueError(f"{path}: not a prepared split (missing array {e})") from None
    try:
        return Split(**arrays, n_features=n_features, n_labels=n_labels)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
