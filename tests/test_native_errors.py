"""Bad input to the native core gets a ValueError that says what is wrong: never a crash, a hang or
garbage. Covers the raw binding (slide._native.Network: dtypes, contiguity, CSR structure, ranges)
and slide.Network (options, enums, layer specs).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slide.native import native

N = native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)

NF, NL = 20, 10
DENSE = {"sparsity": 1.0}
SPARSE = {"K": 2, "L": 3, "range_pow": 3, "sparsity": 0.5}


def raw_net(**over) -> "N.Network":
    cfg = {"n_features": NF, "layers": [{"size": 6}, {"size": NL, **SPARSE}], "seed": 1, "threads": 1,
           "min_active": 4, "pad_below": 4}
    cfg.update(over)
    return N.Network(cfg)


def batch():
    """A valid 3-row batch for the raw binding: (indptr, indices, data, label_indptr, labels)."""
    return (np.array([0, 2, 3, 5], np.int64), np.array([1, 4, 0, 7, 19], np.int32),
            np.array([1, 2, 3, 4, 5], np.float32), np.array([0, 1, 3, 3], np.int64), np.array([2, 0, 9], np.int32))


def with_(i: int, value):
    args = list(batch())
    args[i] = value
    return args


def test_valid_batch_trains():
    assert np.isfinite(raw_net().train_batch(*batch()))


def test_raw_binding_takes_only_numpy_arrays():
    with pytest.raises(TypeError, match="incompatible function arguments"):
        raw_net().train_batch(*with_(1, [1, 4, 0, 7, 19]))


# ---- arrays: dtype, shape, contiguity ------------------------------------------------------------

@pytest.mark.parametrize("i,value,match", [
    (0, np.array([0, 2, 3, 5], np.int32), r"features indptr must be a numpy array of dtype int64, got int32"),
    (1, np.array([1, 4, 0, 7, 19], np.int64), r"features indices .*dtype int32, got int64"),
    (2, np.array([1, 2, 3, 4, 5], np.float64), r"features data .*dtype float32, got float64"),
    (3, np.array([0, 1, 3, 3], np.int32), r"labels indptr .*dtype int64"),
    (4, np.array([2, 0, 9], np.int64), r"labels indices .*dtype int32"),
    (2, np.ones((5, 1), np.float32), r"features data must be 1-D"),
    (1, np.array([1, 9, 4, 9, 0, 9, 7, 9, 19, 9], np.int32)[::2], r"features indices must be contiguous"),
    (2, np.ascontiguousarray(np.arange(10, dtype=np.float32)[::2]), None),  # a contiguous copy is fine
    (2, np.arange(10, dtype=np.float32)[1::2], r"features data must be contiguous"),
    (4, np.array([2, 9, 0, 9, 9, 9], np.int32)[::2], r"labels indices must be contiguous"),
])
def test_array_contract(i, value, match):
    net = raw_net()
    if match is None:
        assert np.isfinite(net.train_batch(*with_(i, value)))
        return
    with pytest.raises(ValueError, match=match):
        net.train_batch(*with_(i, value))


# ---- CSR structure and value ranges ----------------------------------------------------------

@pytest.mark.parametrize("i,value,match", [
    (0, np.array([0, 3, 2, 5], np.int64), r"features: indptr must be non-decreasing \(row 1\)"),
    (0, np.array([0, 2, 3, 4], np.int64), r"features indptr\[-1\] = 4 but there are 5 indices"),
    (0, np.array([1, 2, 3, 5], np.int64), r"features: indptr\[0\] must be 0"),
    (0, np.array([], np.int64), r"features indptr must have at least one entry"),
    (0, np.array([0, -1, 3, 5], np.int64), r"non-decreasing"),
    (1, np.array([1, 4, 0, 7, NF], np.int32), rf"features: index {NF} outside \[0, {NF}\)"),
    (1, np.array([1, -4, 0, 7, 19], np.int32), rf"features: index -4 outside \[0, {NF}\)"),
    (2, np.array([1, 2, np.nan, 4, 5], np.float32), r"features: non-finite value at position 2"),
    (2, np.array([1, 2, 3, np.inf, 5], np.float32), r"non-finite"),
    (2, np.array([1, 2, 3, 4], np.float32), r"features data has 4 values for 5 indices"),
    (4, np.array([2, 0, NL], np.int32), rf"labels: index {NL} outside \[0, {NL}\)"),
    (4, np.array([2, -1, 9], np.int32), r"labels: index -1 outside"),
    (3, np.array([0, 1, 3], np.int64), r"labels have 2 rows but features have 3"),
    (3, np.array([0, 2, 1, 3], np.int64), r"labels: indptr must be non-decreasing"),
    (3, np.array([0, 1, 3, 4], np.int64), r"labels indptr\[-1\] = 4 but there are 3 indices"),
])
def test_batch_contract(i, value, match):
    net = raw_net()
    before = net.weights(1).copy()
    with pytest.raises(ValueError, match=match):
        net.train_batch(*with_(i, value))
    np.testing.assert_array_equal(net.weights(1), before)  # rejected before anything changed
    assert net.step == 0


def test_predict_and_active_set_validate_features_too():
    net = raw_net()
    ptr, idx, val = np.array([0, 2], np.int64), np.array([3, NF + 5], np.int32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match="outside"):
        net.predict_topk(ptr, idx, val, 3)
    with pytest.raises(ValueError, match="outside"):
        net.predict_topk(ptr, idx, val, 3, True)
    with pytest.raises(ValueError, match="outside"):
        net.active_set(ptr, idx, val, 0, np.array([], np.int32))
    with pytest.raises(ValueError, match="non-finite"):
        net.predict_topk(ptr, np.array([3, 4], np.int32), np.array([1, np.nan], np.float32), 3)


@pytest.mark.parametrize("k", [0, -1, NL + 1])
def test_predict_topk_k_out_of_range(k):
    net = Network(NF, NL, hidden=(6,), layers=[DENSE, DENSE], seed=1, threads=1)
    x = sp.csr_matrix(np.eye(2, NF, dtype=np.float32))
    with pytest.raises(ValueError, match=rf"k must be in \[1, {NL}\], got {k}"):
        net.predict_topk(x, k)
    with pytest.raises(ValueError, match="k must be in"):
        net.predict_topk(x, k, sparse=True)


def test_weights_of_a_missing_layer():
    net = raw_net()
    with pytest.raises(ValueError, match="no such layer"):
        net.weights(2)
    with pytest.raises(ValueError, match="no such layer"):
        net.bias(-1)


def test_hash_family_rejects_a_vector_of_the_wrong_length():
    fam = N.HashFamily("dwta", 2, 4, 64, 5)
    with pytest.raises(ValueError, match="64"):
        fam.codes(np.zeros(5, np.float32))  # must not read past the 5 floats


# ---- Python wrapper input ------------------------------------------------------------------------

def py_net(**kw) -> Network:
    return Network(NF, NL, hidden=(6,), layers=[DENSE, DENSE], seed=1, threads=1, **kw)


def test_wrapper_converts_scipy_dtypes_without_changing_results():
    x32 = sp.csr_matrix(np.eye(3, NF, dtype=np.float32) * 2)
    x64 = sp.csr_matrix(x32.toarray().astype(np.float64))
    x64.indices = x64.indices.astype(np.int64)
    labels = [[1], [2, 3], [4]]
    assert py_net().train_batch(x32, labels) == py_net().train_batch(x64, labels)


def test_wrapper_rejects_other_inputs():
    net = py_net()
    with pytest.raises(ValueError, match="CSR"):
        net.train_batch(sp.csc_matrix(np.eye(2, NF, dtype=np.float32)), [[1], [2]])
    with pytest.raises(ValueError, match="CSR"):
        net.predict_topk(np.eye(2, NF, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="labels are required"):
        net.train_batch(sp.csr_matrix(np.eye(2, NF, dtype=np.float32)))
    with pytest.raises(ValueError, match="labels have 1 rows but features have 2"):
        net.train_batch(sp.csr_matrix(np.eye(2, NF, dtype=np.float32)), [[1]])
    with pytest.raises(ValueError, match="labels: index 10 outside"):
        net.train_batch(sp.csr_matrix(np.eye(2, NF, dtype=np.float32)), [[1], [10]])


# ---- configuration ---------------------------------------------------------------------------

@pytest.mark.skipif(N.best_isa().startswith("avx512"), reason="this CPU supports AVX-512")
def test_isa_the_cpu_lacks():
    with pytest.raises(ValueError, match=f"isa 'avx512' requested but this CPU supports at most '{N.best_isa()}'"):
        py_net(isa="avx512")


def test_supported_isas_are_accepted():
    for isa in ["auto", "scalar", N.best_isa()]:
        assert py_net(isa=isa).info()["isa"] == (N.best_isa() if isa == "auto" else isa)


@pytest.mark.parametrize("kw,match", [
    ({"hugepages": "maybe"}, r"hugepages must be 'auto', 'on' or 'off', got 'maybe'"),
    ({"replacement": "lru"}, r"replacement must be 'fifo' or 'reservoir', got 'lru'"),
    ({"schedule": "linear"}, r"schedule must be 'fixed' or 'exponential', got 'linear'"),
    ({"isa": "sse"}, r"isa must be 'auto', 'avx512_bf16', 'avx512', 'avx2' or 'scalar', got 'sse'"),
    ({"precision": "fp16"}, r"precision must be 'fp32' or 'bf16', got 'fp16'"),
    ({"bucket_size": 0}, r"bucket_size must be >= 1, got 0"),
    ({"rehash": 0}, r"rehash must be >= 1, got 0"),
    ({"rebuild": -5}, r"rebuild must be >= 1, got -5"),
    ({"min_active": -1}, r"min_active must be >= 0, got -1"),
    ({"lr": 0.0}, r"lr must be > 0, got 0"),
    ({"lr": float("nan")}, r"lr must be > 0, got nan"),
    ({"beta2": 1.0}, r"beta2 must be in \[0, 1\), got 1"),
    ({"schedule_growth": 0.5}, r"schedule_growth must be >= 1, got 0.5"),
    ({"init_bias_std": -1.0}, r"init_bias_std must be >= 0, got -1"),
])
def test_bad_option_values(kw, match):
    with pytest.raises(ValueError, match=match):
        Network(NF, NL, hidden=(6,), layers=[DENSE, SPARSE], seed=1, threads=1, **kw)


@pytest.mark.parametrize("kw,match", [
    ({"schedule": "exponential", "schedule_growth": 0.0}, r"schedule_growth"),
    ({"schedule": "exponential", "schedule_growth": 0.5}, r"schedule_growth"),
    ({"beta1": 1.0}, r"beta1"),
    ({"beta2": 1.5}, r"beta2"),
    ({"eps": 0.0}, r"eps"),
])
def test_option_values_that_would_hang_or_poison_training(kw, match):
    # growth < 1 makes the rehash intervals shrink to nothing: maybe_rehash would loop forever;
    # beta1 = 1 divides by zero in the bias correction; eps = 0 gives 0/0 on a zero gradient.
    with pytest.raises(ValueError, match=match):
        Network(NF, NL, hidden=(6,), layers=[DENSE, SPARSE], seed=1, threads=1, **kw)


@pytest.mark.parametrize("kw,match", [
    ({"rehash": "often"}, r"rehash"),
    ({"seed": -1}, r"seed"),
])
def test_wrongly_typed_options_name_the_option(kw, match):
    with pytest.raises(ValueError, match=match):
        Network(NF, NL, hidden=(6,), layers=[DENSE, SPARSE], threads=1, **{"seed": 1, **kw})


def test_unknown_options():
    with pytest.raises(ValueError, match="unknown SLIDE option.*rehsh"):
        py_net(rehsh=100)
    with pytest.raises(ValueError, match="unknown network option 'rehsh'"):
        raw_net(rehsh=100)
    with pytest.raises(ValueError, match="n_features and layers"):
        N.Network({"layers": [{"size": 3}, {"size": 4}]})


@pytest.mark.parametrize("layers,match", [
    ([{"hash": "minhash", **SPARSE}, DENSE], r"hidden layers are not supported|hash must be"),
    ([DENSE, {**SPARSE, "hash": "minhash"}], r"hash must be 'dwta', 'srp' or 'kmeans', got 'minhash'"),
    ([{**DENSE, "sparsity": 0.5}, DENSE], r"layer 0: LSH-sparse hidden layers are not supported"),
    ([DENSE, {**SPARSE, "sparsity": 0.0}], r"layer 1: sparsity must be in \(0, 1\]"),
    ([DENSE, {**SPARSE, "sparsity": 1.5}], r"layer 1: sparsity must be in \(0, 1\]"),
    ([DENSE, {**SPARSE, "K": 0}], r"'K' must be >= 1 or 'auto'"),
    ([DENSE, {**SPARSE, "L": 0}], r"'L' must be >= 1 or 'auto'"),
        ([DENSE, {**SPARSE, "L": "many"}], r"'L' must be an integer or 'auto', got 'many'"),
        ([DENSE, {**SPARSE, "hash": "kmeans", "K": 2, "L": 1}], r"kmeans.*needs K = 1, L = 1"),
    ([DENSE, {**SPARSE, "range_pow": 0}], r"range_pow"),
    ([DENSE, {**SPARSE, "range_pow": 31}], r"range_pow"),
    ([DENSE], r"need one LSH entry per layer"),
])
def test_bad_layer_specs(layers, match):
    with pytest.raises(ValueError, match=match):
        Network(NF, NL, hidden=(6,), layers=layers, seed=1, threads=1)


def test_sparse_middle_layer_of_a_deeper_net():
    with pytest.raises(ValueError, match="layer 1: LSH-sparse hidden layers are not supported"):
        Network(NF, NL, hidden=(6, 5), layers=[DENSE, {**DENSE, "sparsity": 0.2}, SPARSE], seed=1, threads=1)


@pytest.mark.parametrize("args,match", [
    ((0, NL), r"n_features must be >= 1"),
    ((NF, 0), r"layer 1: size must be >= 1"),
    ((2 ** 31, NL), r"n_features too large"),
])
def test_bad_dimensions(args, match):
    with pytest.raises(ValueError, match=match):
        Network(*args, hidden=(6,), layers=[DENSE, DENSE], seed=1, threads=1)


def test_bad_hidden_size_and_inference():
    with pytest.raises(ValueError, match="layer 0: size must be >= 1"):
        Network(NF, NL, hidden=(0,), layers=[DENSE, DENSE], seed=1, threads=1)
    with pytest.raises(ValueError, match="inference must be 'dense' or 'sparse'"):
        Network(NF, NL, hidden=(6,), layers=[DENSE, DENSE], inference="approx")
