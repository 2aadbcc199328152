"""precision: bf16 — the input and output layers' weights and Adam moments stored as bfloat16, computed in fp32.

Checked against fp32 on small cases: initial weights are the fp32 ones rounded to nearest even; scores are fp32
arithmetic on the stored values (the AVX-512 BF16 dot products, which round the activations, within a stated
tolerance); stochastic rounding keeps Adam steps smaller than bf16's resolution; training tracks fp32; results are
independent of the thread count; save/load resumes exactly; the parameters take half the memory.
"""
from __future__ import annotations

import numpy as np
import pytest

from slide.native import native

N = native()
from slide.data.synthetic import SyntheticSpec, generate  # noqa: E402
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)
from slide.training.protocol import precision_at_k  # noqa: E402

from kernel_paths import SUPPORTED  # noqa: E402
CONVERTING = [i for i in SUPPORTED if i != "avx512_bf16"]  # bf16 -> fp32 conversion, then fp32 arithmetic
SHARED_INIT = {"init_std": 0.05, "init_bias_std": 0.0, "init_truncated": True}


def rne_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> nearest bfloat16 (ties to even), as float32."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)


def is_bf16(x: np.ndarray) -> bool:
    return not np.any(np.ascontiguousarray(x, np.float32).view(np.uint32) & 0xFFFF)


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticSpec(n_train=3000, n_test=600, n_features=800, n_labels=400, seed=5))


def net(data, precision, **kw):
    train, _ = data
    opts = dict(hidden=(32,), seed=3, threads=1, min_active=40, precision=precision, **SHARED_INIT)
    opts.update(kw)
    return Network(train.n_features, train.n_labels, **opts)


def train(network, split, steps, batch=64, start=0):
    for s in range(start, start + steps):
        rows = np.arange(s * batch, (s + 1) * batch) % split.n
        network.train_batch(split.rows(rows))


def all_params(network):
    layers = range(len(network.config["layers"]))
    return [network.native.weights(l) for l in layers] + [network.native.bias(l) for l in layers]


@pytest.mark.parametrize("isa", SUPPORTED)
def test_initial_weights_are_the_fp32_ones_rounded_to_nearest_even(data, isa):
    a = net(data, "fp32", isa=isa, hidden=(32, 16))
    b = net(data, "bf16", isa=isa, hidden=(32, 16))
    for layer in range(3):
        w32, w16 = a.native.weights(layer), b.native.weights(layer)
        if layer == 1:  # hidden -> hidden: small, kept in fp32
            np.testing.assert_array_equal(w16, w32)
        else:
            assert is_bf16(w16)
            np.testing.assert_array_equal(w16, rne_bf16(w32))


@pytest.mark.parametrize("isa", CONVERTING)
def test_scores_are_fp32_arithmetic_on_the_stored_weights(data, isa):
    train_split, test = data
    n = net(data, "bf16", isa=isa)
    train(n, train_split, 10)
    w0, w1 = n.native.weights(0), n.native.weights(1)
    b0, b1 = n.native.bias(0), n.native.bias(1)
    x = test.rows(np.arange(50))
    dense = np.zeros((x.n, train_split.n_features), np.float32)
    for r in range(x.n):
        dense[r, x.indices[x.indptr[r]:x.indptr[r + 1]]] = x.data[x.indptr[r]:x.indptr[r + 1]]
    h = np.maximum(dense.astype(np.float64) @ w0 + b0, 0)
    ref = h @ w1.T.astype(np.float64) + b1
    ids, scores = n.predict_topk(x, k=5, sparse=False)
    np.testing.assert_allclose(scores, np.take_along_axis(ref, ids.astype(np.int64), 1), rtol=1e-4, atol=1e-5)
    assert (ids[:, 0] == ref.argmax(1)).mean() > 0.95


@pytest.mark.skipif("avx512_bf16" not in SUPPORTED, reason="this CPU lacks AVX-512 BF16")
def test_avx512_bf16_dot_products_round_only_the_activations(data):
    """Sparse inference with every neuron retrieved scores through gather_dot: with AVX-512 BF16 it rounds h to bf16
    (relative error <= 2^-9 per term); the scores stay within that bound of the converting path's."""
    train_split, test = data
    kw = dict(select="union", min_active=train_split.n_labels, pad_below=train_split.n_labels + 1)
    a, b = net(data, "bf16", isa="avx512", **kw), net(data, "bf16", isa="avx512_bf16", **kw)
    train(a, train_split, 10)
    train(b, train_split, 10)
    x = test.rows(np.arange(100))
    ids_a, sa = a.predict_topk(x, k=1, sparse=True)
    ids_b, sb = b.predict_topk(x, k=1, sparse=True)
    assert (ids_a == ids_b).mean() > 0.9
    assert np.abs(sa - sb).max() < 2 ** -7 * (np.abs(sa).max() + 1)
    assert np.abs(sa - sb).max() > 0  # the instruction path really ran (it rounds h)


def test_training_tracks_fp32(data):
    train_split, test = data
    p1 = {}
    for precision in ("fp32", "bf16"):
        # uniform random negatives: the near stratum's draws follow the k-means ranking, so rounding differences
        # soon give each run other draws, and on 600 test rows that chance alone moves P@1 by up to 0.05 (over
        # 6 seeds: bf16 0.007 above fp32 on average); uniform draws keep the two runs' samples the same
        n = net(data, precision, threads=2, lr=5e-3, near_share=0.0)
        train(n, train_split, 3 * train_split.n // 64)
        ids, _ = n.predict_topk(test, k=5)
        p1[precision] = precision_at_k(ids, test)[1]
    assert p1["fp32"] > 0.3, p1  # it learned
    assert abs(p1["bf16"] - p1["fp32"]) < 0.03, p1


def test_stochastic_rounding_keeps_steps_below_bf16_resolution(data):
    """Adam steps of lr 1e-5 are far below half a bf16 ulp of weights ~0.05 (1.2e-4): rounding to nearest would drop
    every one of them. Stochastic rounding keeps them on average: the bf16 weights move as the fp32 ones do."""
    train_split, _ = data
    a, b = net(data, "fp32", lr=1e-5), net(data, "bf16", lr=1e-5)
    w32_0, w16_0 = a.native.weights(0).copy(), b.native.weights(0).copy()
    for _ in range(30):
        a.train_batch(train_split.rows(np.arange(64)))
        b.train_batch(train_split.rows(np.arange(64)))
    d32 = (a.native.weights(0) - w32_0).ravel()
    d16 = (b.native.weights(0) - w16_0).ravel()
    moved = np.abs(d32) > 1e-5
    assert moved.sum() > 1000
    assert (d16[moved] != 0).mean() > 0.3  # rounding to nearest: 0
    assert np.corrcoef(d32[moved], d16[moved])[0, 1] > 0.5
    assert abs(d16[moved].sum() / d32[moved].sum() - 1) < 0.2  # unbiased on average


def test_results_do_not_depend_on_the_thread_count(data):
    train_split, _ = data
    runs = []
    for threads in (1, 2):
        n = net(data, "bf16", threads=threads)
        train(n, train_split, 20)
        runs.append(all_params(n))
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)


def test_save_and_load_resume_exactly(data, tmp_path):
    train_split, _ = data
    a = net(data, "bf16")
    train(a, train_split, 12)
    a.save(tmp_path / "m.slide")
    b = Network.load(tmp_path / "m.slide")
    assert b.config["precision"] == "bf16"
    for x, y in zip(all_params(a), all_params(b)):
        np.testing.assert_array_equal(x, y)
    train(a, train_split, 8, start=12)
    train(b, train_split, 8, start=12)
    for x, y in zip(all_params(a), all_params(b)):
        np.testing.assert_array_equal(x, y)


def test_parameters_take_half_the_memory(data):
    def live_bytes():
        return sum(N.page_stats().values())

    base = live_bytes()
    sizes = {}
    for precision in ("fp32", "bf16"):
        n = Network(20000, 20000, hidden=(64,), seed=0, threads=1, precision=precision, min_active=100)
        sizes[precision] = live_bytes() - base
        del n
    params = 3 * (20000 * 64 + 20000 * 64)  # weights, Adam m and v of the input and output layers
    assert sizes["fp32"] >= params * 4
    assert sizes["bf16"] - params * 2 < sizes["fp32"] - params * 4 + 1e6  # the rest (tables) unchanged
    assert sizes["bf16"] < 0.6 * sizes["fp32"]
