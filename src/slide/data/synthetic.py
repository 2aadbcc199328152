"""Seeded synthetic extreme-classification data with Amazon-670K's statistical shape (at any scale).

Generative story (all vectorised numpy; 120k samples x 200k labels takes seconds):
- Label popularity is Zipf-like (rank^-label_zipf, ranks randomly assigned to label ids), so a few
  labels are frequent and most have a handful of samples.
- Labels live in latent clusters of co-occurring labels. A sample draws a primary label by popularity,
  then extra labels (1 + Poisson, mean `labels_per_sample`) mostly from the primary label's cluster.
- Words: each label has a few signature words, each cluster a set of topic words, plus background
  noise words with Zipf frequencies. A sample's tokens mix the three; features are tf-idf of its tokens,
  L2-normalised (like the XMLRepository BoW features). Labels are therefore learnable from features.
- Output is sorted by each sample's first label, like the real file, so that shuffling matters.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

import numpy as np

from .csr import Split
from .xmlrepo import write_xmlrepo


@dataclass(frozen=True)
class SyntheticSpec:
    n_train: int = 20_000
    n_test: int = 5_000
    n_features: int = 20_000
    n_labels: int = 10_000
    seed: int = 1
    labels_per_sample: float = 3.0  # mean; every sample has at least one
    nnz_min: int = 40               # tokens drawn per sample; repeats make ~30-80 distinct features
    nnz_max: int = 100
    label_zipf: float = 0.8         # label popularity ~ rank^-label_zipf
    word_zipf: float = 1.0          # background word frequency ~ rank^-word_zipf
    labels_per_cluster: int = 20
    same_cluster: float = 0.8       # chance that an extra label comes from the primary label's cluster
    words_per_label: int = 8
    words_per_cluster: int = 40
    label_words: float = 0.15       # share of tokens from the sample's labels' signature words
    cluster_words: float = 0.35     # ... from their clusters' topic words; the rest is noise
    decimals: int = 6               # feature values as written (real files: 6 decimals)

    @classmethod
    def from_config(cls, cfg: dict | None) -> "SyntheticSpec":
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"dataset.synthetic: unknown keys {unknown}; expected some of {sorted(known)}")
        spec = cls(**cfg)
        spec.check()
        return spec

    def check(self) -> None:
        problems = []
        if min(self.n_train, self.n_test) < 1 or min(self.n_features, self.n_labels) < 2:
            problems.append("n_train, n_test >= 1 and n_features, n_labels >= 2")
        if not 1 <= self.nnz_min <= self.nnz_max:
            problems.append("1 <= nnz_min <= nnz_max")
        if self.labels_per_sample < 1:
            problems.append("labels_per_sample >= 1")
        if not (0 <= self.label_words and 0 <= self.cluster_words and self.label_words + self.cluster_words <= 1):
            problems.append("label_words, cluster_words >= 0 with sum <= 1")
        if not 0 <= self.same_cluster <= 1 or min(self.labels_per_cluster, self.words_per_label,
                                                  self.words_per_cluster) < 1:
            problems.append("0 <= same_cluster <= 1 and labels_per_cluster, words_per_label, words_per_cluster >= 1")
        if problems:
            raise ValueError(f"dataset.synthetic: expected {'; '.join(problems)} (got {asdict(self)})")


def _zipf_cdf(n: int, exponent: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Zipf weights over n ids (ranks shuffled onto ids) as (ids in draw order, normalised cumsum)."""
    ids = rng.permutation(n)
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)
    return ids, cdf / cdf[-1]


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _csr_unique(rows: np.ndarray, cols: np.ndarray, width: int, n_rows: int):
    """Distinct (row, col) pairs of a ragged draw -> (indptr, cols sorted within rows, multiplicity)."""
    keys = np.sort(rows.astype(np.int64) * width + cols)  # np.unique is far slower on numpy 2.4
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(first, len(keys)))
    row, col = np.divmod(keys[first], width)
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
    return indptr, col.astype(np.int32), counts


def generate(spec: SyntheticSpec) -> tuple[Split, Split]:
    """(train, test), each sorted by its samples' first label."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    n, L, D = spec.n_train + spec.n_test, spec.n_labels, spec.n_features

    # Labels, grouped by cluster: position p in `by_cluster` belongs to cluster p // labels_per_cluster.
    by_cluster = rng.permutation(L)
    popularity = np.arange(1, L + 1, dtype=np.float64) ** -spec.label_zipf
    pop_cdf = np.cumsum(rng.permutation(popularity))  # popularity of the label at each position
    pop_cdf /= pop_cdf[-1]
    k = spec.labels_per_cluster
    n_clusters = -(-L // k)

    primary = _draw(pop_cdf, rng.random(n))
    n_extra = rng.poisson(spec.labels_per_sample - 1, size=n)
    rows = np.repeat(np.arange(n), n_extra)
    c = primary[rows] // k
    u = rng.random(len(rows))
    same = rng.random(len(rows)) < spec.same_cluster
    # same cluster: uniform over its labels (fewer repeats of the primary); otherwise by popularity
    size = np.minimum((c + 1) * k, L) - c * k
    extra = np.where(same, c * k + (u * size).astype(np.int64), _draw(pop_cdf, u))
    lab_rows = np.concatenate((np.arange(n), rows))
    lab_ids = by_cluster[np.concatenate((primary, extra))]
    label_indptr, labels, _ = _csr_unique(lab_rows, lab_ids, L, n)  # label ids sorted within each row
    cluster_of = np.empty(L, np.int64)
    cluster_of[by_cluster] = np.arange(L) // k

    # Words of each label and cluster; background words Zipf-distributed.
    signature = rng.integers(0, D, size=(L, spec.words_per_label))
    topic = rng.integers(0, D, size=(n_clusters, spec.words_per_cluster))
    word_ids, word_cdf = _zipf_cdf(D, spec.word_zipf, rng)

    n_tok = rng.integers(spec.nnz_min, spec.nnz_max + 1, size=n)
    tok_rows = np.repeat(np.arange(n), n_tok)
    kind = rng.random(len(tok_rows))
    n_lab_row = np.diff(label_indptr)
    # a random label of the token's sample (by its position in the flat label array)
    which = label_indptr[tok_rows] + (rng.random(len(tok_rows)) * n_lab_row[tok_rows]).astype(np.int64)
    words = np.where(
        kind < spec.label_words,
        signature[labels[which], rng.integers(0, spec.words_per_label, len(tok_rows))],
        np.where(kind < spec.label_words + spec.cluster_words,
                 topic[cluster_of[labels[which]], rng.integers(0, spec.words_per_cluster, len(tok_rows))],
                 word_ids[_draw(word_cdf, rng.random(len(tok_rows)))]))
    indptr, indices, tf = _csr_unique(tok_rows, words, D, n)

    # tf-idf, L2-normalised per sample
    df = np.bincount(indices, minlength=D)
    idf = np.log((1 + n) / (1 + df)) + 1.0
    vals = (1.0 + np.log(tf)) * idf[indices]
    row_of = np.repeat(np.arange(n), np.diff(indptr))
    norms = np.sqrt(np.bincount(row_of, weights=vals * vals, minlength=n))
    vals = vals / norms[row_of]
    if spec.decimals is not None:
        # what the text file will hold; values that would print as 0 are kept at the smallest step
        step = 10.0 ** -spec.decimals
        vals = np.maximum(np.round(vals, spec.decimals), step)
    full = Split(indptr, indices, vals.astype(np.float32), label_indptr, labels, D, L)

    train_idx = np.arange(spec.n_train)
    test_idx = np.arange(spec.n_train, n)
    return tuple(full.rows(_label_sorted(full, idx)) for idx in (train_idx, test_idx))


def _label_sorted(split: Split, idx: np.ndarray) -> np.ndarray:
    """`idx` reordered by each row's smallest label (the real files are sorted by label)."""
    first = split.labels[split.label_indptr[idx]]  # every generated row has >= 1 label, sorted ascending
    return idx[np.argsort(first, kind="stable")]


def write_synthetic(spec: SyntheticSpec, train_path: str | os.PathLike, test_path: str | os.PathLike) -> None:
    train, test = generate(spec)
    write_xmlrepo(train_path, train, decimals=spec.decimals)
    write_xmlrepo(test_path, test, decimals=spec.decimals)
