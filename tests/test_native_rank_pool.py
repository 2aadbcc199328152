"""rank_pool: with k-means cells and select: topk, the retrieved part of the active set is the best-scoring share
of a pool gathered from the best cells."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slide.native import native

native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)

N_FEATURES, N_LABELS, ROWS = 200, 2000, 256
KMEANS = {"hash": "kmeans", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.05}


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((ROWS, N_FEATURES)) < 0.05, rng.uniform(0.5, 1.5, (ROWS, N_FEATURES)), 0.0)
    y = [[int(l) for l in rng.choice(N_LABELS, size=rng.integers(1, 4), replace=False)] for _ in range(ROWS)]
    return sp.csr_matrix(dense.astype(np.float32)), y


def trained(rank_pool: float) -> tuple[Network, sp.csr_matrix]:
    x, y = data()
    n = Network(N_FEATURES, N_LABELS, hidden=[32], layers=[{"sparsity": 1.0}, KMEANS], min_active=60,
                random_share=0.0, rank_pool=rank_pool, threads=2, seed=5)
    for e in range(3):
        for b in range(ROWS // 64):
            n.train_batch(x[b * 64:(b + 1) * 64], y[b * 64:(b + 1) * 64])
    return n, x


def scores(n: Network, x: sp.csr_matrix) -> np.ndarray:
    W0, b0 = n.native.weights(0).astype(np.float64), n.native.bias(0).astype(np.float64)
    W1, b1 = n.native.weights(1).astype(np.float64), n.native.bias(1).astype(np.float64)
    return np.maximum(x.toarray() @ W0 + b0, 0) @ W1.T + b1


def test_a_pool_of_every_neuron_retrieves_the_exact_top():
    """When the pool holds every neuron, the retrieved neurons are exactly the highest-scoring ones (here the
    cells' order alone finds 0.6% of them: the network is barely trained)."""
    n, x = trained(rank_pool=N_LABELS / 60 + 1)
    z = scores(n, x[:20])
    for row in range(20):
        got = np.sort(n.active_set(x, row, pad=False))
        want = np.sort(np.argsort(-z[row], kind="stable")[:60])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", [0.5, 0])
def test_below_one_is_refused(bad):
    with pytest.raises(ValueError, match="rank_pool"):
        Network(N_FEATURES, N_LABELS, rank_pool=bad)
