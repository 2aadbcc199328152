"""Synthetic data: seeded, Amazon-670K-shaped, label-sorted, learnable, fast."""
import time

import numpy as np
import pytest
import scipy.sparse as sp

from slide.data.prepare import majority_baseline
from slide.data.synthetic import SyntheticSpec, generate, write_synthetic
from slide.data.xmlrepo import read_xmlrepo

SMALL = SyntheticSpec(n_train=3000, n_test=1000, n_features=3000, n_labels=1500, seed=5)


def test_seeded_files(tmp_path):
    paths = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        spec = SyntheticSpec(**{**SMALL.__dict__, "n_train": 500, "n_test": 100, "seed": seed})
        write_synthetic(spec, tmp_path / f"{name}_train.txt", tmp_path / f"{name}_test.txt")
        paths[name] = (tmp_path / f"{name}_train.txt").read_bytes()
    assert paths["a"] == paths["b"] and paths["a"] != paths["c"]
    back = read_xmlrepo(tmp_path / "a_train.txt")
    assert back.n == 500 and (back.n_features, back.n_labels) == (3000, 1500)


def test_shape_like_amazon():
    train, test = generate(SMALL)
    assert (train.n, test.n) == (3000, 1000)
    nlab = np.diff(train.label_indptr)
    nnz = np.diff(train.indptr)
    assert nlab.min() >= 1 and 2.5 < nlab.mean() < 3.5
    assert 30 <= np.median(nnz) <= 80 and np.percentile(nnz, 5) >= 20 and nnz.max() <= SMALL.nnz_max
    assert np.all(train.data > 0) and np.allclose(np.add.reduceat(train.data ** 2, train.indptr[:-1]), 1, atol=1e-3)
    freq = np.bincount(train.labels, minlength=train.n_labels)
    present = freq[freq > 0]
    assert freq.max() > 20 * np.median(present)           # Zipf-like: a head and a long tail
    assert np.mean(present <= 5) > 0.5                     # most labels have few samples
    first = train.labels[train.label_indptr[:-1]]
    assert np.all(np.diff(first) >= 0)                     # sorted by label like the real file


def _nearest_centroid_p_at_1(train, test) -> float:
    X = sp.csr_matrix((train.data, train.indices, train.indptr), shape=(train.n, train.n_features))
    Y = sp.csr_matrix((np.ones(len(train.labels)), train.labels, train.label_indptr), shape=(train.n, train.n_labels))
    C = (Y.T @ X).tocsr()
    C = sp.diags(1 / np.maximum(np.sqrt(np.asarray(C.multiply(C).sum(1)).ravel()), 1e-12)) @ C
    Xt = sp.csr_matrix((test.data, test.indices, test.indptr), shape=(test.n, test.n_features))
    top = np.asarray((Xt @ C.T).argmax(axis=1)).ravel()
    return float(np.mean([top[i] in test.row_labels(i) for i in range(test.n)]))


def test_learnable_far_above_majority():
    train, test = generate(SMALL)
    p1 = _nearest_centroid_p_at_1(train, test)
    base = majority_baseline(train, test)["p_at_1"]
    assert p1 > 0.3 and p1 > 5 * base, (p1, base)


def test_spec_from_config_rejects_bad_keys_and_values():
    assert SyntheticSpec.from_config({"n_train": 10}).n_train == 10
    with pytest.raises(ValueError, match=r"dataset.synthetic: unknown keys \['n_trian'\]"):
        SyntheticSpec.from_config({"n_trian": 10})
    with pytest.raises(ValueError, match="1 <= nnz_min <= nnz_max"):
        SyntheticSpec.from_config({"nnz_min": 50, "nnz_max": 10})


@pytest.mark.slow
def test_benchmark_scale_is_fast():
    spec = SyntheticSpec(n_train=100_000, n_test=20_000, n_features=100_000, n_labels=200_000, seed=1)
    t0 = time.perf_counter()
    train, test = generate(spec)
    assert time.perf_counter() - t0 < 60
    assert train.n == 100_000 and test.n_labels == 200_000
