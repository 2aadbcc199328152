"""crowd_step: the output neurons outside the active sets move together (one Adam state for all), and the rows with
their own state rise relative to them, lazily. Checks that the pending rises reach the forward pass, inference and
saved files, that a resumed run continues exactly, and that the option has its documented effect.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slide.native import native

native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)

N_FEATURES, N_LABELS, ROWS, BATCH = 300, 4000, 512, 64
SPARSE_OUT = {"hash": "kmeans", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.05}


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((ROWS, N_FEATURES)) < 0.05, rng.uniform(0.5, 1.5, (ROWS, N_FEATURES)), 0.0)
    x = sp.csr_matrix(dense.astype(np.float32))
    y = [[int(l) for l in rng.choice(N_LABELS // 4, size=rng.integers(1, 4), replace=False)] for _ in range(ROWS)]
    return x, y


def net(crowd_step: float, **kw) -> Network:
    return Network(N_FEATURES, N_LABELS, hidden=[32], layers=[{"sparsity": 1.0}, SPARSE_OUT], min_active=100,
                   crowd_step=crowd_step, threads=2, seed=3, rehash=10**9, rebuild=10**9, **kw)


def train(n: Network, x, y, batches: range, between=None) -> list[float]:
    losses = []
    for b in batches:
        i = b % (ROWS // BATCH)
        losses.append(n.train_batch(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]))
        if between:
            between(n)
    return losses


def test_pending_rises_reach_the_forward_pass():
    """Settling the rises (any copy of the weights does) between batches must not change what training computes:
    the forward pass adds the rises still pending. Only rounding differs, and grows from step to step: over the
    first six steps it stays below 1e-6 (without the forward pass's share, 1e-5 by the fifth step)."""
    x, y = data()
    lazy = train(net(0.5), x, y, range(6))
    settled = train(net(0.5), x, y, range(6), between=lambda n: n.native.bias(1))
    np.testing.assert_allclose(lazy, settled, rtol=4e-6)


def test_inference_sees_the_rises():
    """Predictions use the weights with every rise applied: scores equal the numpy logits of the copied weights."""
    x, y = data()
    n = net(0.5)
    train(n, x, y, range(30))
    _, scores = n.predict_topk(x[:16], k=5, sparse=False)  # before any copy: the rises are still pending
    W, b = n.native.weights(1).astype(np.float64), n.native.bias(1).astype(np.float64)
    W0, b0 = n.native.weights(0).astype(np.float64), n.native.bias(0).astype(np.float64)
    z = np.maximum(x[:16].toarray() @ W0 + b0, 0) @ W.T + b
    np.testing.assert_allclose(scores, -np.sort(-z, axis=1)[:, :5], rtol=1e-4, atol=1e-4)


def test_resume_continues_exactly(tmp_path):
    """A run saved and loaded mid-way (crowd moments, own-state flags) continues bit for bit as one that saved."""
    x, y = data()
    a = net(0.5)
    train(a, x, y, range(20))
    a.save(tmp_path / "m")
    rest_a = train(a, x, y, range(20, 45))
    b = Network.load(tmp_path / "m")
    rest_b = train(b, x, y, range(20, 45))
    assert rest_a == rest_b
    np.testing.assert_array_equal(a.native.weights(1), b.native.weights(1))
    np.testing.assert_array_equal(a.native.bias(1), b.native.bias(1))


def test_labels_rise_relative_to_the_crowd():
    """With crowd_step, neurons that were labels end higher than neurons never active, by more than without it
    (full softmax's Adam pushes every idle neuron down by about lr per step)."""
    x, y = data()
    labels = np.unique(np.concatenate([np.asarray(r) for r in y]))
    never = np.arange(N_LABELS // 2, N_LABELS)  # never labels; mostly never retrieved either

    def gap(crowd):
        n = net(crowd)  # the random negatives estimate the crowd's share of the softmax
        train(n, x, y, range(200))
        bias = n.native.bias(1)
        return float(bias[labels].mean() - bias[never].mean())

    off, on = gap(0.0), gap(1.0)
    assert on - off > 0.02, (off, on)


def test_off_keeps_no_crowd_state(tmp_path):
    """crowd_step 0 is plain sparse Adam: its saved model holds no crowd state (the on model holds 33 + 33 moments
    and a flag per neuron more)."""
    x, y = data()
    sizes = {}
    for c in (0.0, 0.5):
        n = net(c)
        train(n, x, y, range(5))
        n.save(tmp_path / f"m{c}")
        sizes[c] = (tmp_path / f"m{c}").stat().st_size
    assert sizes[0.5] - sizes[0.0] == 2 * 4 * 33 + N_LABELS


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="crowd_step"):
        net(bad)
