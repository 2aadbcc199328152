"""hot_neurons: a short list of the output neurons that score highest on the mean hidden output, scored exactly for
every sample; its best quarter (at most an eighth of the budget) joins the active set before the tables fill the
rest."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slide.native import native

native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)

N_FEATURES, N_LABELS, ROWS, BATCH = 200, 2000, 512, 64
KMEANS = {"hash": "kmeans", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.05}
POPULAR = 16  # labels 0..15: one of them in every row, as the frequent labels of real data


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((ROWS, N_FEATURES)) < 0.05, rng.uniform(0.5, 1.5, (ROWS, N_FEATURES)), 0.0)
    y = [[int(rng.integers(POPULAR)), int(rng.integers(POPULAR, N_LABELS))] for _ in range(ROWS)]
    return sp.csr_matrix(dense.astype(np.float32)), y


def trained(hot: int, epochs: int = 2, threads: int = 2, **kw) -> tuple[Network, sp.csr_matrix, list]:
    x, y = data()
    opts = dict(hidden=[32], layers=[{"sparsity": 1.0}, KMEANS], min_active=100, threads=threads, seed=5,
                rehash=2 * BATCH)
    n = Network(N_FEATURES, N_LABELS, hot_neurons=hot, **{**opts, **kw})
    train(n, x, y, range(epochs * ROWS // BATCH))
    return n, x, y


def train(n: Network, x, y, batches: range) -> None:
    for b in batches:
        i = b % (ROWS // BATCH)
        n.train_batch(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH])


def scores(n: Network, x: sp.csr_matrix) -> np.ndarray:
    W0, b0 = n.native.weights(0).astype(np.float64), n.native.bias(0).astype(np.float64)
    W1, b1 = n.native.weights(1).astype(np.float64), n.native.bias(1).astype(np.float64)
    return np.maximum(x.toarray() @ W0 + b0, 0) @ W1.T + b1


def assert_same_parameters(a: Network, b: Network) -> None:
    for layer in (0, 1):
        np.testing.assert_array_equal(a.native.weights(layer), b.native.weights(layer))
        np.testing.assert_array_equal(a.native.bias(layer), b.native.bias(layer))


def test_a_list_of_every_neuron_puts_the_exact_top_first():
    """With every neuron on the list, the first eighth of the budget in each active set (no labels asked) is the
    sample's exact top by score, best first."""
    n2, x2, _ = trained(hot=N_LABELS, min_active=N_LABELS, random_share=0.0)  # an eighth: 250 join
    z = scores(n2, x2[:20])
    keep = N_LABELS // 8
    for row in range(20):
        got = n2.active_set(x2, row, pad=False)[:keep]
        order = np.sort(z[row])[::-1]
        # the chosen are the best `keep` up to float32 rounding near the boundary, in order
        assert z[row][got].min() >= order[keep - 1] - 1e-4
        assert np.all(np.diff(z[row][got]) <= 1e-4)


def test_the_tables_alone_miss_the_frequent_labels_the_list_finds():
    """Every row's best-scoring neurons are the few frequent labels, spread over many k-means cells: the list finds
    them for every row, the cells' order alone does not."""
    recall = {}
    big_cells = {**KMEANS, "range_pow": 3}  # 8 cells of ~250 neurons: the best cell alone fills the budget
    for hot in (0, 64):
        n, x, _ = trained(hot=hot, layers=[{"sparsity": 1.0}, big_cells])
        recall[hot] = n.lsh_stats(x[:200], k=5, budget=60)["recall"]
    assert recall[64] > 0.95, recall
    assert recall[0] < 0.8, recall


def test_results_do_not_depend_on_the_thread_count():
    a, _, _ = trained(hot=64, threads=1)
    b, _, _ = trained(hot=64, threads=2)
    assert_same_parameters(a, b)


def test_save_and_load_resume_exactly(tmp_path):
    """The list and the running mean of the hidden outputs are saved: a resumed run continues bit for bit."""
    x, y = data()
    a, _, _ = trained(hot=64, epochs=1)
    # mid-interval: the running mean holds a batch that the next choice needs
    train(a, x, y, range(8, 9))
    a.save(tmp_path / "m.slide")
    b = Network.load(tmp_path / "m.slide")
    train(a, x, y, range(9, 20))
    train(b, x, y, range(9, 20))
    assert_same_parameters(a, b)


def shifted():
    """The same rows, but each row's frequent label is now one of POPULAR..2*POPULAR-1."""
    x, y = data()
    return x, [[r[0] + POPULAR, r[1]] for r in y]


def test_inference_uses_a_list_chosen_again_on_the_current_weights():
    """Training chooses its list at a rehash; if the frequent labels change before the next one, that list is stale.
    Sparse inference's list is chosen again on the current weights and the mean hidden output since the rehash;
    training's stays as it was."""
    x, y = data()
    n = Network(N_FEATURES, N_LABELS, hidden=[32], layers=[{"sparsity": 1.0}, KMEANS], min_active=100, threads=2,
                seed=5, hot_neurons=POPULAR, lr=3e-2, rehash=8 * BATCH, schedule="fixed", adam_catchup=False)
    train(n, x, y, range(8))  # the rehash at the end of batch 8 chooses the list
    first = n.hot_neurons()
    assert set(first) == set(range(POPULAR))
    np.testing.assert_array_equal(n.hot_neurons(inference=True), first)  # nothing trained since: the same list
    x2, y2 = shifted()
    h = []  # each batch's hidden output as its forward pass computes it (adam_catchup off: the weights as stored)
    for b in range(7):  # no rehash (the next is after 16 batches): training's list stays
        W0, b0 = n.native.weights(0).astype(np.float64), n.native.bias(0).astype(np.float64)
        h.append(np.maximum(x2[b * BATCH:(b + 1) * BATCH].toarray() @ W0 + b0, 0))
        train(n, x2, y2, range(b, b + 1))
    np.testing.assert_array_equal(n.hot_neurons(), first)
    fresh = n.hot_neurons(inference=True)
    assert len(fresh) == POPULAR
    assert len(set(fresh) - set(first)) >= 4, fresh  # the new frequent labels begin to rise; others move too
    # exactly what the current weights rank best on the mean of those hidden outputs
    W1, b1 = n.native.weights(1).astype(np.float64), n.native.bias(1).astype(np.float64)
    best = np.argsort(-(W1 @ np.concatenate(h).mean(0) + b1))[:POPULAR]
    np.testing.assert_array_equal(fresh, best)


def test_evaluating_does_not_change_training():
    """Sparse inference and lsh_stats choose their own list; training's list, and so training, stay the same."""
    x, y = data()
    a, _, _ = trained(hot=64, epochs=1)
    b, _, _ = trained(hot=64, epochs=1)
    for batch in range(8, 20):
        train(a, x, y, range(batch, batch + 1))
        train(b, x, y, range(batch, batch + 1))
        b.predict_topk(x[:50], k=3, sparse=True)
        b.lsh_stats(x[:50], k=5)
    np.testing.assert_array_equal(a.hot_neurons(), b.hot_neurons())
    assert_same_parameters(a, b)


def test_a_loaded_network_infers_as_the_saved_one(tmp_path):
    """The inference list is chosen again after a load, from the saved weights and running mean: same predictions."""
    x, y = data()
    a, _, _ = trained(hot=64, epochs=1)
    train(a, x, y, range(8, 9))  # mid-interval: the inference list differs from training's
    a.save(tmp_path / "m.slide")
    b = Network.load(tmp_path / "m.slide")
    np.testing.assert_array_equal(a.hot_neurons(inference=True), b.hot_neurons(inference=True))
    for got, want in zip(b.predict_topk(x[:100], k=5, sparse=True), a.predict_topk(x[:100], k=5, sparse=True)):
        np.testing.assert_array_equal(got, want)


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError, match="hot_neurons"):
        Network(N_FEATURES, N_LABELS, hot_neurons=-1)
