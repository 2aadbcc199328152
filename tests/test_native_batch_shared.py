"""batch_shared: the neurons retrieved for any sample of a batch join every sample's active set, so that each of them
takes every sample's share of the softmax, as in a full softmax. Checked against a numpy reference of one training
step: Adam's first step moves each weight by lr against the sign of its gradient, so the signs of the weight changes
show which softmax each sample was trained on."""
from __future__ import annotations

import numpy as np
import pytest

from slide.native import native

native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)
from test_native_selection import DENSE, KMEANS_AUTO, hidden, random_csr, random_labels  # noqa: E402

N_FEATURES, N_LABELS, HIDDEN, BUDGET, LR = 50, 600, 20, 30, 1e-2


def fresh(batch_shared: int, **kw) -> Network:
    # no random negatives and no hot list: a sample's active set is its labels and retrieved neurons, plus the shared
    return Network(N_FEATURES, N_LABELS, hidden=(HIDDEN,), layers=[DENSE, KMEANS_AUTO], lr=LR, seed=3, threads=2,
                   init_std=0.3, min_active=BUDGET, random_share=0.0, hot_neurons=0, batch_shared=batch_shared, **kw)


def reference_gradients(net: Network, x, labels, active_sets) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the batch's mean loss with respect to the output and input weights, each sample's softmax taken
    over its own active set (neuron ids)."""
    W0, b0 = net.native.weights(0).astype(np.float64), net.native.bias(0).astype(np.float64)
    W, b = net.native.weights(1).astype(np.float64), net.native.bias(1).astype(np.float64)
    xd = x.toarray().astype(np.float64)
    pre = xd @ W0 + b0
    H = hidden(net, x)
    gW, dH = np.zeros_like(W), np.zeros_like(H)
    for s, act in enumerate(active_sets):
        act = np.asarray(act)
        z = H[s] @ W[act].T + b[act]
        p = np.exp(z - z.max())
        p /= p.sum()
        p[np.isin(act, labels[s])] -= 1.0 / len(labels[s])
        gW[act] += np.outer(p, H[s])
        dH[s] = p @ W[act]
    gW0 = xd.T @ (dH * (pre > 0))
    return gW, gW0


def step_signs(net: Network, x, labels) -> tuple[np.ndarray, np.ndarray]:
    W0, W = net.native.weights(0).copy(), net.native.weights(1).copy()
    net.train_batch(x, labels)
    return np.sign(net.native.weights(1) - W), np.sign(net.native.weights(0) - W0)


def agreement(moved: np.ndarray, grad: np.ndarray) -> float:
    """Share of the clearly non-zero gradient entries whose weight moved against the gradient's sign."""
    clear = np.abs(grad) > 1e-3 * np.abs(grad).max()
    return float(np.mean(moved[clear] == -np.sign(grad[clear])))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_sample_is_trained_on_the_union_of_the_batchs_retrieved_neurons(precision):
    x, labels = random_csr(24, N_FEATURES, 0.2, seed=1), random_labels(24, N_LABELS, 2)
    shared, alone = fresh(10**6, precision=precision), fresh(0, precision=precision)
    own = [shared.active_set(x, s, labels[s], pad=False) for s in range(24)]
    union = np.unique(np.concatenate(own))
    assert BUDGET * 2 < len(union) < N_LABELS  # the samples retrieve different neurons
    g_union, g0_union = reference_gradients(shared, x, labels, [union] * 24)
    g_own, g0_own = reference_gradients(shared, x, labels, own)
    moved, moved0 = step_signs(shared, x, labels)
    moved_alone, moved0_alone = step_signs(alone, x, labels)
    # the rows no sample picked stay put either way
    untouched = np.setdiff1d(np.arange(N_LABELS), union)
    assert not moved[untouched].any() and not moved_alone[untouched].any()
    # the output and input layers move as the union's softmax says with batch_shared, as each sample's own without
    assert agreement(moved, g_union) > 0.995 and agreement(moved0, g0_union) > 0.995
    assert agreement(moved_alone, g_own) > 0.995 and agreement(moved0_alone, g0_own) > 0.995
    # and the two references differ, so the checks above tell them apart (a row's gradient from samples that did not
    # pick it is mostly of one sign, so they differ most on the input layer and on the network without sharing)
    assert agreement(moved_alone, g_union) < 0.9
    assert agreement(moved0, g0_own) < 0.97 and agreement(moved0_alone, g0_union) < 0.97


def test_a_cap_keeps_the_neurons_picked_by_the_most_samples():
    x, labels = random_csr(24, N_FEATURES, 0.2, seed=4), random_labels(24, N_LABELS, 5)
    own = [fresh(0).active_set(x, s, labels[s], pad=False) for s in range(24)]  # the same before any step
    ids, picks = np.unique(np.concatenate(own), return_counts=True)
    shared = ids[picks >= 2]  # a cap at a count boundary: no ties to break
    assert 0 < len(shared) < len(ids)
    net = fresh(len(shared))
    g, g0 = reference_gradients(net, x, labels, [np.union1d(o, shared) for o in own])
    moved, moved0 = step_signs(net, x, labels)
    assert agreement(moved, g) > 0.995 and agreement(moved0, g0) > 0.995
    _, g0_all = reference_gradients(net, x, labels, [ids] * 24)  # the whole union: not what a cap trains on
    assert agreement(moved0, g0_all) < 0.97


def test_batch_shared_is_off_with_select_union_and_rejects_negative_values():
    with pytest.raises(ValueError, match="batch_shared"):
        Network(N_FEATURES, N_LABELS, batch_shared=-1)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_the_random_share_stays_the_same_number_of_negatives_per_sample(share):
    # labels and retrieved neurons (own and shared) first, then exactly round(share * budget) random negatives
    from test_native_selection import trained_topk_net

    net, labels = trained_topk_net(share, batch_shared=10**6)
    c = net.active_counts
    assert c["samples"] == len(labels) and c["labels"] == sum(len(set(r)) for r in labels)
    assert c["random"] == round(share * 24) * c["samples"]
    assert c["labels"] + c["retrieved"] > 24 * c["samples"]  # the shared neurons come on top of the budget
