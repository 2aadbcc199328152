"""The output layer's active-set selection: the MIPS transform, k-means cells, select: topk with its budget and
random share, 'auto' LSH sizes, and the blocked rehash kernels, against planted data and numpy references.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slide.native import native

N = native()
from slide.data.csr import Split  # noqa: E402
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)
from slide.training.protocol import read_csv  # noqa: E402
from slide.training.slide_model import LSH_COLUMNS  # noqa: E402

from kernel_paths import SUPPORTED  # noqa: E402
DENSE = {"sparsity": 1.0}
KMEANS_AUTO = {"hash": "kmeans", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.05}
SRP_AUTO = {"hash": "srp", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.05}
ORIGINAL = {"select": "union", "mips": False, "random_share": 0.0}  # the shipped code's selection
ORIGINAL_OUT = {"hash": "dwta", "K": 6, "L": 50, "range_pow": 18, "sparsity": 0.05}  # and its Amazon tables


# ---- helpers ------------------------------------------------------------------------------------

def random_csr(rows: int, n_features: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((rows, n_features)) < density, rng.uniform(0.5, 1.5, (rows, n_features)), 0.0)
    return sp.csr_matrix(dense.astype(np.float32))


def random_labels(rows: int, n_labels: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(l) for l in rng.choice(n_labels, size=rng.integers(1, 4), replace=False)] for _ in range(rows)]


def hidden(net: Network, x: sp.csr_matrix) -> np.ndarray:
    """Last hidden activations in float64 (one hidden layer)."""
    W0, b0 = net.native.weights(0).astype(np.float64), net.native.bias(0).astype(np.float64)
    return np.maximum(x.toarray().astype(np.float64) @ W0 + b0, 0)


def logits(net: Network, x: sp.csr_matrix) -> np.ndarray:
    W, b = net.native.weights(1).astype(np.float64), net.native.bias(1).astype(np.float64)
    return hidden(net, x) @ W.T + b


def mips_transform(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The documented neuron transform: [w - mean(w), b, sqrt(M^2 - |w - mean|^2 - b^2)] / M, M the largest norm."""
    Wc = W - W.mean(axis=0)
    n2 = (Wc ** 2).sum(axis=1) + b ** 2
    M = np.sqrt(n2.max())
    return np.c_[Wc, b, np.sqrt(np.maximum(M ** 2 - n2, 0))] / M


def mips_query(h: np.ndarray) -> np.ndarray:
    return np.c_[h, np.ones(len(h)), np.zeros(len(h))]


def _csr(x):
    return x.indptr.astype(np.int64), x.indices.astype(np.int32), x.data.astype(np.float32)


def all_params(net: Network) -> list[np.ndarray]:
    n = net.native
    return [a for l in range(2) for a in (n.weights(l), n.bias(l))]


# ---- 1. planted recall ---------------------------------------------------------------------------

# 2000 labels in 64 groups; a group's samples share 3 group features, each label adds 2 of its group's 8 fine
# features. After a little training the high scorers of a sample are labels of its group: neurons that cluster.
P_FEATURES, P_LABELS, P_GROUPS = 704, 2000, 64
_prng = np.random.default_rng(0)
P_GROUP = np.arange(P_LABELS) % P_GROUPS
P_GROUP_FEATS = _prng.permutation(3 * P_GROUPS).reshape(P_GROUPS, 3)
P_FINE = 3 * P_GROUPS + 8 * P_GROUP[:, None] + np.array([_prng.choice(8, 2, replace=False) for _ in range(P_LABELS)])


def planted(rows: int, seed: int) -> tuple[sp.csr_matrix, list[list[int]]]:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, P_LABELS, rows)
    dense = np.zeros((rows, P_FEATURES), np.float32)
    for i, l in enumerate(lab):
        dense[i, P_GROUP_FEATS[P_GROUP[l]]] = rng.uniform(0.5, 1.5, 3)
        dense[i, P_FINE[l]] += rng.uniform(0.5, 1.5, 2)
    return sp.csr_matrix(dense), [[int(l)] for l in lab]


def planted_net(out: dict, seed: int = 1, steps: int = 100, **kw) -> Network:
    net = Network(P_FEATURES, P_LABELS, hidden=(16,), layers=[DENSE, out], lr=0.02, seed=seed, threads=1,
                  init_std=0.1, min_active=50, rehash=256, rebuild=2048, **kw)
    for s in range(steps):
        net.train_batch(*planted(64, 100 + s))
    return net


def test_kmeans_mips_topk_finds_the_high_scorers_of_planted_data():
    # measured over seeds 1-6: k-means recall@5 0.91-0.975 with 5% of the neurons; SRP (auto) 0.52-0.63;
    # the original's union over DWTA K=6 L=50 2^18 buckets 0.05-0.11 (from 8-45 candidates)
    x, _ = planted(200, 7)
    budget = 100  # 5% of the neurons
    chance = budget / P_LABELS
    km = planted_net(KMEANS_AUTO).lsh_stats(x, k=5, budget=budget)
    assert km["rows"] == 200 and km["k"] == 5
    assert km["candidates"] == budget  # k-means walks cells until the budget is full
    assert km["recall"] >= 0.8 and km["top1"] >= 0.8, km
    assert km["recall"] > 10 * chance
    srp = planted_net(SRP_AUTO).lsh_stats(x, k=5, budget=budget)
    assert srp["candidates"] <= budget
    assert srp["recall"] >= 0.35 and srp["recall"] > 5 * chance, srp
    orig = planted_net(ORIGINAL_OUT, **ORIGINAL).lsh_stats(x, k=5, budget=budget)
    assert orig["recall"] < 0.3 and km["recall"] - orig["recall"] >= 0.5, (km, orig)


def test_planted_recall_is_not_what_a_random_or_shuffled_selection_gets():
    # the same stats on the same network, but queried with rows of another group: its candidates are that
    # group's labels, so the recall of the true top-5 must collapse to about chance
    net = planted_net(KMEANS_AUTO)
    x, _ = planted(200, 7)
    good = net.lsh_stats(x, k=5, budget=100)
    Z = logits(net, x)
    top = np.argsort(-Z, axis=1)[:, :5]
    hit = []
    for r in range(40):
        other = (r + 17) % 200
        cand = set(net.active_set(x, other, pad=False).tolist())
        assert len(cand) == 50  # pad=False, training budget (min_active) filled by retrieval alone
        hit.append(np.mean([t in cand for t in top[r]]))
    assert np.mean(hit) < 0.2 < good["recall"] - 0.5


def test_kmeans_seeds_give_the_trained_neurons_cells_of_their_own():
    """After training, the neurons of the labels seen stand far out from the untrained mass. Seeds drawn uniformly
    (about 4 of 256 among 32 such neurons of 2000) crowd them into a few cells; the k-means++ seeds of a rebuild
    spread them over many, so that a query's best cells hold its best neurons rather than all trained ones."""
    rng = np.random.default_rng(0)
    nf, n_labels, rows, batch, trained_labels = 200, 2000, 512, 64, 32
    dense = np.where(rng.random((rows, nf)) < 0.05, rng.uniform(0.5, 1.5, (rows, nf)), 0.0)
    lab = rng.integers(0, trained_labels, rows)
    dense[np.arange(rows), lab * 5] = 3.0  # a signature feature per label
    x, y = sp.csr_matrix(dense.astype(np.float32)), [[int(v)] for v in lab]
    net = Network(nf, n_labels, hidden=(32,), layers=[DENSE, KMEANS_AUTO], min_active=100, threads=2, seed=5,
                  lr=1e-2, rehash=4 * batch, rebuild=16 * batch, schedule="fixed")
    for b in range(16):  # the rebuild (new seeds) comes after the last batch
        i = b % (rows // batch)
        net.train_batch(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
    assert net.native.rebuilds == 1
    cells = [np.asarray(c) for c in net.native.output_cells()]
    holding = [c for c in cells if (c < trained_labels).any()]
    assert all((c < trained_labels).all() for c in holding)  # no trained neuron shares a cell with untrained ones
    assert len(holding) >= 16, len(holding)  # uniform seeds: 4


def rehash_after_training(rebuild: int):
    """1024 neurons in 128 cells, rehashed every 4 batches of 16; the cells before and after the 12th batch's rehash,
    the neurons' MIPS vectors then and the numpy centroids of that k-means step (the previous cells' mean directions
    on the current weights). Returns (net, cell of each neuron before, cell after, P, centroids)."""
    n_labels, batch = 1024, 16
    net = Network(40, n_labels, hidden=(12,), layers=[DENSE, {**KMEANS_AUTO, "range_pow": 7}], lr=2e-2, seed=4,
                  threads=2, init_std=0.2, min_active=64, rehash=4 * batch, rebuild=rebuild)
    for s in range(4 * 3 - 1):
        net.train_batch(random_csr(batch, 40, 0.15, seed=1000 + s), random_labels(batch, n_labels, 2000 + s))
    before = [np.asarray(c) for c in net.native.output_cells()]
    net.train_batch(random_csr(batch, 40, 0.15, seed=1099), random_labels(batch, n_labels, 2099))  # a rehash
    assert net.native.rehashes == 4  # (the seeding at construction counts as one, not as a rebuild)
    assert all(len(m) for m in before)  # (an empty cell would keep a centroid numpy does not know)

    def cell_of(cells):
        out = np.empty(n_labels, np.int64)
        for c, m in enumerate(cells):
            out[m] = c
        return out

    P = mips_transform(net.native.weights(1).astype(np.float64), net.native.bias(1).astype(np.float64))
    cent = np.stack([P[m].sum(0) for m in before])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    return net, cell_of(before), cell_of(net.native.output_cells()), P, cent


def test_a_rehash_between_rebuilds_scores_each_neuron_against_the_centroids_near_its_cell():
    """After the first rebuild, a rehash is one spherical k-means step: each centroid becomes the mean direction of
    its cell's members (current weights), and each neuron goes to the most similar of the 32 centroids nearest its
    current cell's (of 128 here), not of all of them: a neuron moves little between rehashes."""
    net, cell, got, P, cent = rehash_after_training(rebuild=8 * 16)  # a rebuild after batch 8
    assert net.native.rebuilds == 1
    sim = cent @ cent.T
    np.fill_diagonal(sim, np.inf)
    neighbours = np.argsort(-sim, axis=1, kind="stable")[:, :32]  # each cell itself first
    S = P @ cent.T
    want = neighbours[cell, np.argmax(np.take_along_axis(S, neighbours[cell], axis=1), axis=1)]
    assert np.mean(got != cell) > 0.02  # the weights moved enough for neurons to change cells
    assert np.mean(got == want) > 0.995, np.mean(got == want)  # (float32 against float64: near ties may differ)
    assert np.mean(got == np.argmax(S, axis=1)) > 0.95  # and nearly always the most similar of all centroids


def test_before_the_first_rebuild_a_rehash_scores_every_centroid():
    """The cells seeded at construction come from untrained weights, which training then moves far: until the first
    rebuild each neuron goes to the most similar of all centroids."""
    net, _, got, P, cent = rehash_after_training(rebuild=10 ** 9)
    assert net.native.rebuilds == 0
    want = np.argmax(P @ cent.T, axis=1)
    assert np.mean(got == want) > 0.995, np.mean(got == want)  # (the 32 nearest alone: 0.981 here)


# ---- HashFamily("kmeans") with planted centroids ---------------------------------------------------

def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, dim))
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def test_kmeans_codes_are_the_most_similar_planted_centroid():
    dim, range_pow = 24, 5
    fam = N.HashFamily("kmeans", 1, 1, dim, range_pow, seed=0)
    C = unit_rows(2 ** range_pow, dim, 1)
    fam.set_centroids((C * np.arange(1, 33, dtype=np.float32)[:, None]).copy())  # any scale: rows are normalised
    np.testing.assert_allclose(fam.centroids, C, atol=1e-6)
    rng = np.random.default_rng(2)
    for j in range(32):
        v = (C[j] + 0.05 * rng.standard_normal(dim)).astype(np.float32) * np.float32(rng.uniform(0.1, 10))
        assert fam.codes(v).tolist() == [j]
    V = rng.standard_normal((200, dim)).astype(np.float32)
    want = np.argmax(V.astype(np.float64) @ C.T.astype(np.float64), axis=1)
    np.testing.assert_array_equal(fam.codes_batch(V)[0], want)


def test_kmeans_family_rejects_bad_shapes():
    with pytest.raises(ValueError, match="K = 1, L = 1"):
        N.HashFamily("kmeans", 2, 1, 8, 3)
    with pytest.raises(ValueError, match="K = 1, L = 1"):
        N.HashFamily("kmeans", 1, 1, 8, 17)
    fam = N.HashFamily("kmeans", 1, 1, 8, 3)
    with pytest.raises(ValueError, match=r"shape \(8, 8\)"):
        fam.set_centroids(np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="not a kmeans family"):
        N.HashFamily("srp", 1, 1, 8, 3).set_centroids(np.zeros((8, 8), np.float32))


# ---- 2. the MIPS transform ---------------------------------------------------------------------------

def small_net(out: dict, n_labels: int = 64, threads: int = 1, **kw) -> Network:
    opts = dict(lr=1e-2, seed=3, threads=threads, init_std=0.2, min_active=16, rehash=16, rebuild=64)
    opts.update(kw)
    net = Network(40, n_labels, hidden=(12,), layers=[DENSE, out], **opts)
    for step in range(6):  # batches of 16: rehash=16 rebuilds the tables from the final weights
        net.train_batch(random_csr(16, 40, 0.15, seed=300 + step), random_labels(16, n_labels, 400 + step))
    return net


def test_mips_transform_identity_on_trained_weights():
    net = small_net(KMEANS_AUTO)
    W, b = net.native.weights(1).astype(np.float64), net.native.bias(1).astype(np.float64)
    P = mips_transform(W, b)
    np.testing.assert_allclose(np.linalg.norm(P, axis=1), 1.0, atol=1e-12)
    x = random_csr(20, 40, 0.15, seed=5)
    h = hidden(net, x)
    Q = mips_query(h)
    M = np.sqrt((((W - W.mean(0)) ** 2).sum(1) + b ** 2).max())
    # Q.P = (w.h + b - mean(w).h) / M: the same per-query shift for every neuron, so the same ranking
    np.testing.assert_allclose(Q @ P.T, (logits(net, x) - (h @ W.mean(0))[:, None]) / M, atol=1e-12)
    np.testing.assert_array_equal(np.argsort(-(Q @ P.T), axis=1, kind="stable")[:, :5],
                                  np.argsort(-(logits(net, x) - (h @ W.mean(0))[:, None]), axis=1, kind="stable")[:, :5])


def test_a_kmeans_family_holding_the_transformed_neurons_is_an_exact_mips_index():
    # centroids = the neurons' MIPS vectors (64 neurons = 2^6 cells): a query's code must be its dense top-1
    net = small_net(KMEANS_AUTO)
    W, b = net.native.weights(1), net.native.bias(1)
    fam = N.HashFamily("kmeans", 1, 1, W.shape[1] + 2, 6)
    fam.set_centroids(mips_transform(W.astype(np.float64), b.astype(np.float64)).astype(np.float32))
    x = random_csr(30, 40, 0.15, seed=6)
    Z = logits(net, x)
    codes = fam.codes_batch(mips_query(hidden(net, x)).astype(np.float32))[0]
    ids, _ = net.predict_topk(x, 2, sparse=False)
    clear = Z[np.arange(30), ids[:, 0]] - Z[np.arange(30), ids[:, 1]] > 1e-4  # no near-tie for first place
    assert clear.sum() >= 25
    np.testing.assert_array_equal(codes[clear], ids[clear, 0])


@pytest.mark.parametrize("mips", [True, False])
def test_one_neuron_per_cell_retrieves_exactly_the_dense_top_k_with_mips(mips):
    # 2^6 cells for 64 neurons: every cell holds one neuron, so cells ranked by centroid score are neurons
    # ranked by the hash space's inner product. With mips that is the score order; without it, the cosine
    # of w and h (bias and norm ignored), which differs.
    out = {"hash": "kmeans", "K": 1, "L": 1, "range_pow": 6, "sparsity": 0.1}
    net = small_net(out, select="topk", mips=mips, inference_budget=5, hot_neurons=0)  # the tables alone
    x = random_csr(25, 40, 0.15, seed=7)
    stats = net.lsh_stats(x, k=5, budget=5)
    assert stats["candidates"] == 5
    if mips:
        assert stats["recall"] == 1.0 and stats["top1"] == 1.0, stats
        dense, sparse = net.predict_topk(x, 5, sparse=False), net.predict_topk(x, 5, sparse=True)
        np.testing.assert_array_equal(sparse[0], dense[0])
        np.testing.assert_allclose(sparse[1], dense[1], rtol=1e-5, atol=1e-6)
    else:
        assert stats["recall"] < 0.7, stats  # measured 0.42-0.44 over seeds 3-5


# ---- 3. sparse top-k = dense top-k when every high scorer is a candidate ------------------------

@pytest.mark.parametrize("out", [
    {"hash": "kmeans", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.1},
    {"hash": "kmeans", "K": 1, "L": 1, "range_pow": 4, "sparsity": 0.1},
    # K = 1, 2 buckets of unbounded capacity, 48 tables: every neuron shares the query's bucket in some table
    # (DWTA is no MIPS hash: the same setup with dwta, 2^3 buckets, misses some high scorers: recall 0.86-0.96)
    {"hash": "srp", "K": 1, "L": 48, "range_pow": 1, "sparsity": 0.1},
], ids=["kmeans-auto", "kmeans-16-cells", "srp"])
@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_topk_equals_dense_with_a_budget_of_every_neuron(out, threads):
    n_labels = 150  # not a multiple of the 16-neuron tile
    net = small_net(out, n_labels=n_labels, threads=threads, bucket_size=n_labels, inference_budget=n_labels)
    x = random_csr(21, 40, 0.15, seed=8)
    stats = net.lsh_stats(x, k=10)
    if out["hash"] == "kmeans":
        assert stats["candidates"] == n_labels  # every cell walked: every neuron
    assert stats["recall"] == 1.0, stats
    dense, sparse = net.predict_topk(x, 10, sparse=False), net.predict_topk(x, 10, sparse=True)
    np.testing.assert_array_equal(sparse[0], dense[0])
    np.testing.assert_allclose(sparse[1], dense[1], rtol=1e-5, atol=1e-6)


def test_sparse_inference_scores_only_the_inference_budget():
    out = {"hash": "kmeans", "K": 1, "L": 1, "range_pow": 4, "sparsity": 0.1}
    net = small_net(out, n_labels=150, inference_budget=30)
    x = random_csr(12, 40, 0.15, seed=9)
    assert net.lsh_stats(x, k=5)["candidates"] == 30  # budget 0 = the inference budget
    assert net.lsh_stats(x, k=5, budget=7)["candidates"] == 7
    ids, scores = net.predict_topk(x, 40, sparse=True)
    assert np.all(ids[:, 30:] == -1) and np.all(np.isneginf(scores[:, 30:]))  # only 30 neurons scored
    Z = logits(net, x)
    np.testing.assert_allclose(scores[:, :30], np.take_along_axis(Z, ids[:, :30].astype(np.int64), 1), rtol=1e-4,
                               atol=1e-5)
    # the default inference budget is 2 x min_active (network.hpp inference_neurons())
    default = small_net(out, n_labels=150, min_active=16)
    assert default.lsh_stats(x, k=5)["candidates"] == 32


# ---- 4. codes by the blocked (GEMM) kernels = codes one vector at a time --------------------------

@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("kind,K,L,range_pow", [("srp", 4, 9, 4), ("srp", 1, 40, 1), ("dwta", 3, 7, 9),
                                                 ("kmeans", 1, 1, 5), ("kmeans", 1, 1, 7)])
@pytest.mark.parametrize("n", [1, 7, 131])
def test_codes_batch_equals_codes_of_each_row(isa, kind, K, L, range_pow, n):
    dim = 37  # not a multiple of 8 or 16
    fam = N.HashFamily(kind, K, L, dim, range_pow, seed=5)
    rng = np.random.default_rng(n)
    if kind == "kmeans":
        fam.set_centroids(rng.standard_normal((2 ** range_pow, dim)).astype(np.float32))
    M = rng.standard_normal((n, dim)).astype(np.float32)
    M[0] = 0.0  # a zero row: ties everywhere
    if n > 3:
        M[3] = M[2] * np.float32(2)
    batch = fam.codes_batch(M, isa=isa)
    assert batch.shape == (L, n) and batch.dtype == np.uint32
    rows = np.stack([fam.codes(M[i], isa=isa) for i in range(n)], axis=1)
    np.testing.assert_array_equal(batch, rows)
    assert batch.max() < 2 ** range_pow
    if n > 3:
        np.testing.assert_array_equal(batch[:, 3], batch[:, 2])  # direction only


@pytest.mark.parametrize("kind", ["srp", "kmeans"])
def test_codes_agree_across_isas_away_from_ties(kind):
    dim, range_pow = 40, 6
    fam = N.HashFamily(kind, 1 if kind == "kmeans" else 6, 1 if kind == "kmeans" else 12, dim, range_pow, seed=2)
    rng = np.random.default_rng(3)
    if kind == "kmeans":
        fam.set_centroids(unit_rows(2 ** range_pow, dim, 4))
    M = rng.standard_normal((131, dim)).astype(np.float32)
    ref = fam.codes_batch(M, isa="scalar")
    for isa in SUPPORTED[1:]:
        got = fam.codes_batch(M, isa=isa)
        assert (got == ref).mean() > 0.99  # only float-rounding ties may differ


# ---- 5. select: topk fills exactly its budget ------------------------------------------------------

def trained_topk_net(random_share: float, min_active: int = 24, n_labels: int = 200, out=None, steps: int = 5,
                     batch_shared: int = 0):
    """(network, labels) after a few batches; without batch_shared by default, so that each active set is the budget"""
    out = out or {"hash": "kmeans", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.1}
    net = Network(40, n_labels, hidden=(12,), layers=[DENSE, out], lr=1e-2, seed=6, threads=2, init_std=0.2,
                  min_active=min_active, random_share=random_share, rehash=32, rebuild=96, batch_shared=batch_shared)
    labels = []
    for step in range(steps):
        y = random_labels(16, n_labels, 500 + step)
        labels += y
        net.train_batch(random_csr(16, 40, 0.15, seed=600 + step), y)
    return net, labels


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_topk_training_active_sets_fill_the_budget_with_the_random_share(share):
    budget = 24
    net, labels = trained_topk_net(share, budget)
    c = net.active_counts
    n_lab = sum(len(set(r)) for r in labels)
    assert c["samples"] == len(labels) == 80
    assert c["labels"] == n_lab
    assert c["labels"] + c["retrieved"] + c["random"] == budget * c["samples"]
    # k-means never runs dry: exactly round(share * budget) random per sample, less any the labels crowd out
    assert c["random"] == sum(min(round(share * budget), budget - len(set(r))) for r in labels)
    if share == 1.0:
        assert c["retrieved"] == 0


def test_active_counts_accumulate_and_only_count_training():
    net, _ = trained_topk_net(0.5, steps=2)
    before = dict(net.active_counts)
    x = random_csr(8, 40, 0.15, seed=1)
    net.lsh_stats(x, k=3)
    net.predict_topk(x, 3, sparse=True)
    net.active_set(x, 0, [1, 2])
    assert net.active_counts == before
    net.train_batch(x, [[3]] * 8)
    after = net.active_counts
    assert after["samples"] == before["samples"] + 8 and after["labels"] == before["labels"] + 8


def test_topk_training_budget_above_the_layer_is_the_layer():
    # min_active above the layer size: every neuron active, none twice
    net, labels = trained_topk_net(0.5, min_active=500, n_labels=60)
    c = net.active_counts
    assert c["labels"] + c["retrieved"] + c["random"] == 60 * c["samples"]
    x = random_csr(3, 40, 0.15, seed=2)
    act = net.active_set(x, 1, [5])
    assert sorted(act.tolist()) == list(range(60))


@pytest.mark.parametrize("out", [None, {"hash": "srp", "K": 2, "L": 16, "range_pow": 2, "sparsity": 0.1},
                                 {"hash": "dwta", "K": 1, "L": 16, "range_pow": 3, "sparsity": 0.1}],
                         ids=["kmeans", "srp", "dwta"])
def test_active_set_is_labels_then_retrieved_unique_within_the_budget(out):
    budget = 24
    net, _ = trained_topk_net(0.5, budget, out=out)
    x = random_csr(6, 40, 0.15, seed=3)
    for r in range(6):
        labels = [7, 150, 7, 42]  # a duplicate: counted once
        got = net.active_set(x, r, labels, pad=False).tolist()
        assert got[:3] == [7, 150, 42]
        assert len(got) == len(set(got)) <= budget
        if out is None:
            assert len(got) == budget  # k-means fills the whole budget by retrieval
        retrieved = got[3:]
        assert set(retrieved) <= set(net.active_set(x, r, [], pad=False).tolist()) | {7, 150, 42}
        full = net.active_set(x, r, labels, salt=r).tolist()
        assert full[:3] == [7, 150, 42] and len(full) == len(set(full)) == budget
        # training's split: half the budget by retrieval (labels included) in the same order, the rest random
        n = min(budget - 12, len(got))
        assert full[:n] == got[:n]


@pytest.mark.parametrize("share,min_active", [(0.5, 20), (0.25, 60), (1.0, 20), (0.5, 500)])
def test_log_q_weighted_random_negatives_estimate_the_full_softmax(share, min_active):
    # all-zero parameters: every logit is 0, so the full softmax loss is log N. The active set scores
    # labels + retrieved + random; weighting each random one by (neurons not chosen otherwise) / (random ones)
    # makes the partition sum exactly N again. Unweighted, it would be log(min_active).
    n_labels = 200
    net = Network(30, n_labels, hidden=(8,), layers=[DENSE, KMEANS_AUTO], seed=1, threads=1, init_std=0.0,
                  init_bias_std=0.0, min_active=min_active, random_share=share)
    loss = net.train_batch(random_csr(16, 30, 0.2, seed=2), random_labels(16, n_labels, 3))
    assert loss == pytest.approx(np.log(n_labels), rel=1e-5)
    # the control: the original's selection (one 1-id bucket, padded to min_active), no weighting
    tiny = {"hash": "dwta", "K": 1, "L": 1, "range_pow": 1, "sparsity": 0.1}
    union = Network(30, n_labels, hidden=(8,), layers=[DENSE, tiny], seed=1, threads=1, init_std=0.0,
                    init_bias_std=0.0, min_active=min_active, pad_below=10_000, bucket_size=1, **ORIGINAL)
    loss = union.train_batch(random_csr(16, 30, 0.2, seed=2), random_labels(16, n_labels, 3))
    assert loss == pytest.approx(np.log(min(min_active, n_labels)), rel=1e-5)


# ---- 6. 'auto' LSH sizes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n_labels,min_active", [(2000, 50), (3000, 100), (500, 64), (100, 8), (64, 1000)])
def test_auto_kmeans_has_256_cells_or_half_the_neurons(n_labels, min_active):
    net = Network(20, n_labels, hidden=(8,), layers=[DENSE, KMEANS_AUTO], seed=0, threads=1, min_active=min_active)
    o = net.native.output_lsh
    assert (o["hash"], o["K"], o["L"]) == ("kmeans", 1, 1)
    assert 2 ** o["range_pow"] == max(2, min(256, 2 ** int(np.log2(n_labels)) // 2)), o
    assert net.config["layers"][1]["range_pow"] == "auto"  # the config keeps what the user wrote


@pytest.mark.parametrize("kind", ["srp", "dwta"])
@pytest.mark.parametrize("n_labels,min_active", [(2000, 50), (100, 8), (50, 500)])
def test_auto_srp_and_dwta_sizes_are_valid(kind, n_labels, min_active):
    out = {"hash": kind, "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.1}
    net = Network(20, n_labels, hidden=(8,), layers=[DENSE, out], seed=0, threads=1, min_active=min_active)
    o = net.native.output_lsh
    assert o["hash"] == kind and o["L"] == 32 and 1 <= o["K"] <= 30 and 1 <= o["range_pow"] <= 30
    assert o["range_pow"] == min(30, o["K"] * (3 if kind == "dwta" else 1))
    # the L buckets a query reaches hold at least a budget's worth of neurons on average
    per_query = n_labels * o["L"] / 2 ** o["range_pow"]
    assert per_query >= min(n_labels, min_active), o
    x = random_csr(4, 20, 0.3, seed=1)
    net.train_batch(x, [[1]] * 4)
    assert net.lsh_stats(x, k=1)["rows"] == 4


def test_explicit_lsh_sizes_are_kept_and_mixed_with_auto():
    out = {"hash": "srp", "K": 3, "L": "auto", "range_pow": 5, "sparsity": 0.1}
    net = Network(20, 300, hidden=(8,), layers=[DENSE, out], seed=0, threads=1, min_active=30)
    assert net.native.output_lsh == {"hash": "srp", "K": 3, "L": 32, "range_pow": 5}


@pytest.mark.parametrize("key,value,match", [
    ("K", "Auto", "must be an integer or 'auto', got 'Auto'"),
    ("L", "many", "'L' must be an integer or 'auto'"),
    ("range_pow", "", "'range_pow' must be an integer or 'auto'"),
    ("K", 0, "'K' must be >= 1 or 'auto'"),
    ("L", -2, "'L' must be >= 1 or 'auto'"),
])
def test_bad_lsh_sizes_are_clear_errors(key, value, match):
    out = {"hash": "srp", "K": 2, "L": 4, "range_pow": 3, "sparsity": 0.1, key: value}
    with pytest.raises(ValueError, match=match):
        Network(20, 300, hidden=(8,), layers=[DENSE, out], seed=0, threads=1)


def test_bad_kmeans_and_selection_options_are_clear_errors():
    with pytest.raises(ValueError, match="K = 1, L = 1"):
        Network(20, 300, hidden=(8,), layers=[DENSE, {"hash": "kmeans", "K": 2, "L": 1, "range_pow": 3,
                                                       "sparsity": 0.1}], threads=1)
    with pytest.raises(ValueError, match="'dwta', 'srp' or 'kmeans'"):
        Network(20, 30, hidden=(8,), layers=[DENSE, {"hash": "kmean", "sparsity": 0.1}], threads=1)
    with pytest.raises(ValueError, match="select must be 'union' or 'topk'"):
        Network(20, 30, hidden=(8,), threads=1, select="top")
    with pytest.raises(ValueError, match=r"random_share must be in \[0, 1\]"):
        Network(20, 30, hidden=(8,), threads=1, random_share=1.5)
    with pytest.raises(ValueError, match="inference_budget must be >= 0"):
        Network(20, 30, hidden=(8,), threads=1, inference_budget=-1)
    net = Network(20, 30, hidden=(8,), threads=1, min_active=5)
    with pytest.raises(ValueError, match="budget must be >= 0"):
        net.native.lsh_stats(*_csr(random_csr(2, 20, 0.3, 1)), 3, -1)
    with pytest.raises(ValueError, match=r"k must be in \[1, 30\]"):
        net.lsh_stats(random_csr(2, 20, 0.3, 1), k=31)



def test_network_defaults_are_kmeans_mips_topk():
    from slide.network import option_table

    t = option_table()
    assert (t["select"]["default"], t["mips"]["default"], t["random_share"]["default"]) == ("topk", True, 0.5)
    net = Network(20, 3000, hidden=(8,), seed=0, threads=1, min_active=60)
    assert net.native.output_lsh["hash"] == "kmeans"
    # options still override the defaults
    assert Network(20, 300, hidden=(8,), threads=1, select="union").config["select"] == "union"


# ---- 7. save / load with a k-means output layer --------------------------------------------------------

def kmeans_persist_net(threads: int = 1) -> Network:
    return Network(40, 200, hidden=(12,), layers=[DENSE, KMEANS_AUTO], lr=1e-2, seed=8, threads=threads,
                   init_std=0.2, min_active=24, inference_budget=40, rehash=40, rebuild=120)


def train_range(net: Network, first: int, count: int) -> list[float]:
    return [net.train_batch(random_csr(16, 40, 0.15, seed=700 + s), random_labels(16, 200, 800 + s))
            for s in range(first, first + count)]


def test_save_load_keeps_kmeans_centroids_and_tables(tmp_path):
    net = kmeans_persist_net()
    train_range(net, 0, 9)  # 144 samples: rehashes at 40, 80, 120 (a rebuild), saved between rehashes
    assert net.native.rebuilds >= 1
    path = tmp_path / "km.slide"
    net.save(path)
    loaded = Network.load(path)
    assert loaded.native.output_lsh == net.native.output_lsh
    assert loaded.native.table_stats == net.native.table_stats
    x = random_csr(15, 40, 0.15, seed=11)
    for got, want in zip(loaded.predict_topk(x, 8, sparse=True), net.predict_topk(x, 8, sparse=True)):
        np.testing.assert_array_equal(got, want)
    assert loaded.lsh_stats(x, k=5) == net.lsh_stats(x, k=5)
    for r in range(3):
        np.testing.assert_array_equal(loaded.active_set(x, r, [r], salt=r), net.active_set(x, r, [r], salt=r))
    # the next batches (through a rehash and a rebuild) give identical losses and parameters
    assert train_range(loaded, 9, 8) == train_range(net, 9, 8)
    for a, b in zip(all_params(loaded), all_params(net)):
        np.testing.assert_array_equal(a, b)
    for got, want in zip(loaded.predict_topk(x, 8, sparse=True), net.predict_topk(x, 8, sparse=True)):
        np.testing.assert_array_equal(got, want)


# ---- 8. determinism across thread counts ---------------------------------------------------------------

def thread_run(threads: int, out: dict, isa: str):
    net = Network(60, 300, hidden=(16,), layers=[DENSE, out], lr=1e-2, seed=9, threads=threads, init_std=0.1,
                  min_active=30, inference_budget=60, rehash=48, rebuild=144, isa=isa)
    losses = [net.train_batch(random_csr(24, 60, 0.1, seed=900 + s), random_labels(24, 300, 950 + s))
              for s in range(14)]  # 336 samples: 7 rehashes, 2 rebuilds (k-means reseeded)
    x = random_csr(10, 60, 0.1, seed=12)
    return net, losses, net.predict_topk(x, 5, sparse=True), net.lsh_stats(x, k=5)


@pytest.mark.parametrize("out,threads,isa", [(KMEANS_AUTO, 2, isa) for isa in SUPPORTED] +
                         [(KMEANS_AUTO, 3, SUPPORTED[-1]), (SRP_AUTO, 2, SUPPORTED[-1])],
                         ids=[f"kmeans-2-{isa}" for isa in SUPPORTED] + ["kmeans-3", "srp-2"])
def test_mips_topk_training_is_independent_of_thread_count(out, threads, isa):
    a, la, pa, sa = thread_run(1, out, isa)
    b, lb, pb, sb = thread_run(threads, out, isa)
    assert a.native.threads == 1 and b.native.threads == threads and a.native.isa == b.native.isa == isa
    assert a.native.rebuilds == b.native.rebuilds >= 2
    assert la == lb
    for x, y in zip(all_params(a), all_params(b)):
        np.testing.assert_array_equal(x, y)
    assert a.active_counts == b.active_counts
    np.testing.assert_array_equal(pa[0], pb[0])
    np.testing.assert_array_equal(pa[1], pb[1])
    assert sa == sb


def test_topk_needs_a_budget_and_tiny_layers_still_build():
    with pytest.raises(ValueError, match="select 'topk' needs min_active >= 1"):
        Network(10, 50, hidden=(4,), min_active=0)
    Network(10, 50, hidden=(4,), layers=[DENSE, DENSE], min_active=0)  # a dense output layer has no budget
    net = Network(10, 1, hidden=(4,))  # auto: more k-means cells than neurons; the extra cells stay empty
    x = random_csr(3, 10, 0.5, seed=1)
    assert net.train_batch(x, [[0], [0], []]) >= 0
    assert net.predict_topk(x, 1, sparse=True)[0].tolist() == [[0], [0], [0]]


def test_lsh_csv_keeps_only_the_rows_up_to_a_resumed_checkpoint(tmp_path):
    from slide.training.slide_model import SlideModel

    def fresh():
        out = {"hash": "kmeans", "K": 1, "L": 1, "range_pow": 4, "sparsity": 0.1}
        return Network(40, 150, hidden=(12,), layers=[DENSE, out], seed=3, threads=1, min_active=16)

    def steps():
        return [r["step"] for r in read_csv(tmp_path / "lsh.csv", LSH_COLUMNS, {"step": int})]

    x = random_csr(12, 40, 0.15, seed=9)
    split = Split(x.indptr.astype(np.int64), x.indices.astype(np.int32), x.data.astype(np.float32),
                  np.arange(13, dtype=np.int64), np.arange(12, dtype=np.int32) * 7, 40, 150)
    model = SlideModel(fresh(), tmp_path / "lsh.csv")
    for step in range(1, 5):
        model.train_batch(split)
        model.diagnostics(step, split)
        if step == 2:
            model.save(tmp_path / "model")
    assert steps() == [1, 2, 3, 4]
    resumed = SlideModel(fresh(), tmp_path / "lsh.csv")
    resumed.load(tmp_path / "model")  # a killed run resumes from step 2: the rows of steps 3 and 4 go
    resumed.diagnostics(3, split)
    assert steps() == [1, 2, 3]
