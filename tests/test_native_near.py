"""near_share (on by default): part of the random negatives drawn from the k-means cells ranked just after the
retrieved ones, a stratum of its own with its own log-Q weight."""
from __future__ import annotations

import numpy as np
import pytest

from slide.native import native

native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)
from test_native_selection import DENSE, KMEANS_AUTO, random_csr, random_labels  # noqa: E402

N_FEATURES, N_LABELS, BUDGET = 40, 400, 24


def trained(steps: int = 6, out=KMEANS_AUTO, **kw) -> Network:
    kw = {"hot_neurons": 0, "rehash": 32, "batch_shared": 0, **kw}  # each active set is the budget
    net = Network(N_FEATURES, N_LABELS, hidden=(12,), layers=[DENSE, out], lr=1e-2, seed=6, threads=2,
                  init_std=0.2, min_active=BUDGET, rebuild=96, **kw)
    for step in range(steps):
        net.train_batch(random_csr(16, N_FEATURES, 0.15, seed=600 + step), random_labels(16, N_LABELS, 500 + step))
    return net


def test_retrieval_is_unchanged_and_the_budget_filled():
    # budget 24, random_share 0.5: the same 12 retrieved neurons as without near_share, then 6 near, 6 uniform
    net = trained(near_share=0.5, near_pool=2.0)
    x = random_csr(8, N_FEATURES, 0.15, seed=3)
    for r in range(8):
        full = net.active_set(x, r, [], salt=r).tolist()
        by_cells = net.active_set(x, r, [], pad=False).tolist()  # inference's retrieval: the whole budget in order
        assert len(full) == len(set(full)) == BUDGET
        assert full[:12] == by_cells[:12]


def test_the_stratum_is_whole_cells_after_the_retrieved_ones_and_the_uniform_ones_avoid_it():
    # 8 cells of about 50: a uniform draw that ignored the stratum would often land in it
    net = trained(near_share=0.5, near_pool=2.0, out={"hash": "kmeans", "K": 1, "L": 1, "range_pow": 3, "sparsity": 0.06})
    cell_of = np.empty(N_LABELS, np.int64)
    for c, ids in enumerate(net.native.output_cells()):
        cell_of[ids] = c
    x = random_csr(8, N_FEATURES, 0.15, seed=3)
    for r in range(8):
        full = np.array(net.active_set(x, r, [], salt=r))
        retrieved, near, uniform = full[:12], full[12:18], full[18:]
        stratum = set(cell_of[near]) | {cell_of[retrieved[-1]]}  # the cell retrieval stopped in is the first
        assert not set(cell_of[uniform]) & stratum
        # no cell of the stratum was read by retrieval before the one it stopped in
        assert not set(cell_of[retrieved[:-1]]) & (stratum - {cell_of[retrieved[-1]]})


def test_a_stratum_over_a_quarter_of_the_layer_leaves_every_negative_uniform():
    # 6 near draws x 32 = 192 neurons > a quarter of the ~376 not yet active: the same as near_share 0
    a, b = trained(near_share=0.5, near_pool=32.0), trained(near_share=0.0)
    np.testing.assert_array_equal(a.native.weights(1), b.native.weights(1))
    c, d = trained(near_share=0.5, near_pool=8.0), trained(near_share=0.0)  # 48: near negatives
    assert not np.array_equal(c.native.weights(1), d.native.weights(1))


def test_save_and_load_resume_exactly(tmp_path):
    """The cells of each row are rebuilt from the saved table: a resumed run draws the same near negatives."""
    a = trained(near_share=0.5, near_pool=2.0, rehash=48)  # 6 steps of 16 rows: mid-interval
    a.save(tmp_path / "m.slide")
    b = Network.load(tmp_path / "m.slide")
    for net in (a, b):
        for step in range(6, 12):
            net.train_batch(random_csr(16, N_FEATURES, 0.15, seed=600 + step), random_labels(16, N_LABELS, 500 + step))
    for layer in (0, 1):
        np.testing.assert_array_equal(a.native.weights(layer), b.native.weights(layer))


def test_with_hot_neurons_and_a_ranked_pool_the_sets_stay_whole():
    net = trained(near_share=0.5, near_pool=2.0, hot_neurons=64, rank_pool=2.0)
    c = net.active_counts
    assert c["labels"] + c["retrieved"] + c["random"] == BUDGET * c["samples"]
    x = random_csr(8, N_FEATURES, 0.15, seed=3)
    for r in range(8):
        full = net.active_set(x, r, [5, 9], salt=r).tolist()
        assert full[:2] == [5, 9] and len(full) == len(set(full)) == BUDGET


@pytest.mark.parametrize("share,pool", [(0.5, 2.0), (0.25, 4.0), (0.9, 1.5), (0.5, 1000.0)])
def test_each_stratum_weighted_by_its_own_size_estimates_the_full_softmax(share, pool):
    # all-zero parameters: every logit is 0 and the full softmax loss is log N; the weighted strata sum to N again
    net = Network(30, N_LABELS, hidden=(8,), layers=[DENSE, KMEANS_AUTO], seed=1, threads=1, init_std=0.0,
                  init_bias_std=0.0, min_active=40, near_share=share, near_pool=pool)
    loss = net.train_batch(random_csr(16, 30, 0.2, seed=2), random_labels(16, N_LABELS, 3))
    assert loss == pytest.approx(np.log(N_LABELS), rel=1e-5)


def test_counts_and_budget_hold():
    net = trained(near_share=0.5, near_pool=4.0)
    c = net.active_counts
    assert c["labels"] + c["retrieved"] + c["random"] == BUDGET * c["samples"]  # near ones count as random


@pytest.mark.parametrize("kw", [{"out": {"hash": "dwta", "K": 2, "L": 8, "range_pow": 4, "sparsity": 0.06}},
                                {"crowd_step": 0.5}, {"select": "union"}], ids=["dwta", "crowd_step", "union"])
def test_without_kmeans_topk_or_with_crowd_step_it_changes_nothing(kw):
    a, b = trained(near_share=0.5, near_pool=2.0, **kw), trained(near_share=0.0, **kw)
    np.testing.assert_array_equal(a.native.weights(1), b.native.weights(1))


@pytest.mark.parametrize("kw,msg", [({"near_share": 1.0}, "near_share must be"), ({"near_share": -0.1}, "near_share"),
                                    ({"near_pool": 0.5}, "near_pool must be")])
def test_out_of_range_is_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Network(N_FEATURES, N_LABELS, **kw)


def test_a_ranked_pool_leaves_the_stratum_its_cells():
    """rank_pool re-ranks the pooled neurons by exact score; the stratum must still be the cells after the pooled
    ones (an earlier build reused the cell order's buffer for that ranking and read cells from it afterwards)."""
    out = {"hash": "kmeans", "K": 1, "L": 1, "range_pow": 3, "sparsity": 0.06}  # 8 cells of about 50
    net = trained(near_share=0.5, near_pool=2.0, rank_pool=1.5, out=out)
    cell_of = np.empty(N_LABELS, np.int64)
    for c, ids in enumerate(net.native.output_cells()):
        cell_of[ids] = c
    x = random_csr(8, N_FEATURES, 0.15, seed=3)
    for r in range(8):
        # without padding: the best 24 of the first 36 neurons the walk reaches, so the first cells of the walk
        cells = set(cell_of[net.active_set(x, r, [], pad=False)])
        full = np.array(net.active_set(x, r, [], salt=r))
        retrieved, near, uniform = full[:12], full[12:18], full[18:]  # a pool of 18 ranked, 6 near, 6 uniform
        assert set(cell_of[retrieved]) <= cells
        # the pool ends in one of those cells, and the stratum starts in the cell it ends in
        assert set(cell_of[near]) <= cells and not set(cell_of[uniform]) & set(cell_of[near])
