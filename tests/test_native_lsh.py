"""LSH in the native core: hash families (DWTA, SRP) against their defining properties, bucket
replacement policies (FIFO, reservoir), and the output layer's active sets (labels, retrieval, padding).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slide.native import native

N = native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)

from kernel_paths import SUPPORTED  # noqa: E402


def unit_pair(dim: int, theta: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two random float32 vectors at angle theta."""
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    w = rng.standard_normal(dim)
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    return u.astype(np.float32), (np.cos(theta) * u + np.sin(theta) * w).astype(np.float32)


def collision_rate(kind: str, theta: float, dim: int = 96, pairs: int = 40, L: int = 256, range_pow: int = 3) -> float:
    """Fraction of K=1 codes that agree for vector pairs at angle theta, over many hash families."""
    rng = np.random.default_rng(int(theta * 1000))
    hits = 0
    for p in range(pairs):
        fam = N.HashFamily(kind, 1, L, dim, range_pow, seed=p)
        a, b = unit_pair(dim, theta, rng)
        hits += int((fam.codes(a) == fam.codes(b)).sum())
    return hits / (pairs * L)


# ---- hash families -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["dwta", "srp"])
def test_identical_and_rescaled_vectors_always_collide(kind):
    rng = np.random.default_rng(0)
    fam = N.HashFamily(kind, 4, 30, 64, 10, seed=3)
    for _ in range(50):
        v = rng.standard_normal(64).astype(np.float32)
        codes = fam.codes(v)
        assert np.array_equal(codes, fam.codes(v.copy()))
        # both families depend only on the direction: scaling by a power of two is exact in float32
        assert np.array_equal(codes, fam.codes(v * np.float32(4)))
        assert np.array_equal(codes, fam.codes(v * np.float32(0.5)))


@pytest.mark.parametrize("theta", [np.pi / 8, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
def test_srp_bit_collision_probability_is_one_minus_angle_over_pi(theta):
    rate = collision_rate("srp", theta, range_pow=1)
    assert rate == pytest.approx(1 - theta / np.pi, abs=0.03)


def test_dwta_collision_rate_falls_with_angle():
    thetas = [0.0, 0.2, 0.5, 0.9, 1.3, 1.8]
    rates = [collision_rate("dwta", t) for t in thetas]
    assert rates[0] == 1.0
    assert all(a > b + 0.03 for a, b in zip(rates, rates[1:])), rates
    assert rates[-1] < 0.4


@pytest.mark.parametrize("kind", ["dwta", "srp"])
@pytest.mark.parametrize("K,range_pow", [(1, 1), (2, 3), (3, 5), (6, 9), (6, 18), (4, 30)])
@pytest.mark.parametrize("compat", [False, True])
def test_codes_are_in_range(kind, K, range_pow, compat):
    rng = np.random.default_rng(K * 100 + range_pow)
    fam = N.HashFamily(kind, K, 16, 40, range_pow, compat_shift=compat, seed=1)
    vectors = [rng.standard_normal(40), np.maximum(rng.standard_normal(40), 0), np.zeros(40), np.ones(40),
               rng.integers(0, 3, 40)]
    for v in vectors:
        codes = fam.codes(v.astype(np.float32))
        assert codes.dtype == np.uint32 and codes.shape == (16,)
        assert codes.max() < 2 ** range_pow


@pytest.mark.parametrize("kind,bits", [("dwta", 3), ("srp", 1)])
def test_codes_concatenate_the_k_hashes(kind, bits):
    """A K-hash code is the K single hashes side by side, `bits` bits each (most significant first).

    A family with K=k, L=1 has the same functions as one with K=1, L=k (same seed), whose codes are
    the single hashes when range_pow = bits."""
    rng = np.random.default_rng(1)
    K = 6
    whole = N.HashFamily(kind, K, 1, 50, K * bits, seed=9)
    single = N.HashFamily(kind, 1, K, 50, bits, seed=9)
    for _ in range(100):
        v = rng.standard_normal(50).astype(np.float32)
        h = single.codes(v).astype(np.int64)
        assert whole.codes(v)[0] == sum(int(h[j]) << (bits * (K - 1 - j)) for j in range(K))


def test_compat_shift_reproduces_the_originals_overlapping_codes():
    """The original DWTA index is `index += h << ((K-1-j) * floor(ln 8))`: 3-bit hashes shifted by 2 bits
    and *added*, so with K=6 codes never exceed 7 * (1 + 4 + ... + 4^5) = 9555 (~9.6k
    usable buckets of 2^18)."""
    rng = np.random.default_rng(2)
    K = 6
    compat = N.HashFamily("dwta", K, 1, 50, 18, compat_shift=True, seed=9)
    single = N.HashFamily("dwta", 1, K, 50, 3, seed=9)
    for _ in range(200):
        v = rng.standard_normal(50).astype(np.float32)
        h = single.codes(v).astype(np.int64)
        assert compat.codes(v)[0] == sum(int(h[j]) << (2 * (K - 1 - j)) for j in range(K))


def test_compat_shift_uses_far_fewer_buckets():
    rng = np.random.default_rng(3)
    exact = N.HashFamily("dwta", 6, 50, 128, 18, seed=5)
    compat = N.HashFamily("dwta", 6, 50, 128, 18, compat_shift=True, seed=5)
    a = np.concatenate([exact.codes(rng.standard_normal(128).astype(np.float32)) for _ in range(200)])
    b = np.concatenate([compat.codes(rng.standard_normal(128).astype(np.float32)) for _ in range(200)])
    assert b.max() <= 7 * sum(4 ** i for i in range(6))  # 9555 < 2^14
    assert a.max() >= 2 ** 14
    assert len(np.unique(b)) < len(np.unique(a))


@pytest.mark.parametrize("kind", ["dwta", "srp"])
def test_every_supported_isa_gives_identical_codes(kind):
    rng = np.random.default_rng(4)
    fam = N.HashFamily(kind, 3, 40, 77, 9, seed=2)  # 120 hashes: the last group of 8 DWTA bins is partial
    vectors = [rng.standard_normal(77), np.maximum(rng.standard_normal(77), 0),  # ReLU outputs: many ties at 0
               rng.integers(0, 3, 77), np.zeros(77), np.full(77, 2.5)]
    for v in vectors:
        v = v.astype(np.float32)
        want = fam.codes(v, isa="scalar")
        for isa in SUPPORTED + ["auto"]:
            np.testing.assert_array_equal(fam.codes(v, isa=isa), want, err_msg=isa)


def test_families_differ_by_seed_and_are_reproducible():
    rng = np.random.default_rng(5)
    vs = [rng.standard_normal(60).astype(np.float32) for _ in range(20)]
    a = [N.HashFamily("dwta", 2, 20, 60, 6, seed=1).codes(v) for v in vs]
    b = [N.HashFamily("dwta", 2, 20, 60, 6, seed=1).codes(v) for v in vs]
    c = [N.HashFamily("dwta", 2, 20, 60, 6, seed=2).codes(v) for v in vs]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


# ---- buckets -------------------------------------------------------------------------------------

def build(codes: np.ndarray, order: np.ndarray, capacity: int, replacement: str, range_pow: int, seed: int = 0):
    """codes: L x N (bucket of the i-th inserted id in table t)."""
    tables = N.HashTables(codes.shape[0], range_pow, capacity, replacement)
    tables.build(np.ascontiguousarray(codes, dtype=np.uint32).ravel(), order.astype(np.int32), seed)
    return tables


def insertions(codes_t: np.ndarray, order: np.ndarray, bucket: int) -> list[int]:
    return [int(order[i]) for i in range(len(order)) if codes_t[i] == bucket]


@pytest.mark.parametrize("replacement", ["fifo", "reservoir"])
def test_buckets_never_exceed_capacity_and_hold_only_their_insertions(replacement):
    rng = np.random.default_rng(6)
    L, n, range_pow, cap = 3, 500, 4, 7
    codes = rng.integers(0, 2 ** range_pow, (L, n))
    codes[0, :100] = 0  # one crowded bucket
    order = rng.permutation(n)
    tables = build(codes, order, cap, replacement, range_pow, seed=1)
    for t in range(L):
        for b in range(2 ** range_pow):
            ids = tables.bucket(t, b)
            inserted = insertions(codes[t], order, b)
            assert len(ids) == min(cap, len(inserted))
            assert len(set(ids.tolist())) == len(ids)
            assert set(ids.tolist()) <= set(inserted)


def test_fifo_keeps_the_last_insertions():
    rng = np.random.default_rng(7)
    L, n, range_pow, cap = 2, 300, 3, 5
    codes = rng.integers(0, 2 ** range_pow, (L, n))
    order = rng.permutation(n)
    tables = build(codes, order, cap, "fifo", range_pow)
    for t in range(L):
        for b in range(2 ** range_pow):
            assert set(tables.bucket(t, b).tolist()) == set(insertions(codes[t], order, b)[-cap:])


def test_reservoir_keeps_a_uniform_sample():
    n, cap, runs = 20, 5, 3000
    codes = np.zeros((1, n))
    order = np.arange(n)
    kept = np.zeros(n)
    samples = set()
    for seed in range(runs):
        ids = build(codes, order, cap, "reservoir", 2, seed=seed).bucket(0, 0)
        kept[ids] += 1
        samples.add(tuple(sorted(ids.tolist())))
    freq = kept / runs
    # each insertion survives with probability cap/n = 0.25 (binomial sd ~0.008 over 3000 runs)
    np.testing.assert_allclose(freq, cap / n, atol=0.04)
    assert len(samples) > runs // 2  # many different subsets, not a few fixed ones


def test_reservoir_depends_on_seed_and_is_reproducible():
    codes = np.zeros((2, 50))
    order = np.arange(50)
    a = build(codes, order, 4, "reservoir", 1, seed=1)
    b = build(codes, order, 4, "reservoir", 1, seed=1)
    c = build(codes, order, 4, "reservoir", 1, seed=2)
    assert np.array_equal(a.bucket(0, 0), b.bucket(0, 0))
    assert not (np.array_equal(a.bucket(0, 0), c.bucket(0, 0)) and np.array_equal(a.bucket(1, 0), c.bucket(1, 0)))


def test_rebuilding_tables_replaces_their_content():
    tables = N.HashTables(1, 2, 10, "fifo")
    tables.build(np.zeros(6, np.uint32), np.arange(6, dtype=np.int32), 0)
    tables.build(np.full(4, 3, np.uint32), np.arange(4, dtype=np.int32), 0)  # fewer neurons this time
    assert len(tables.bucket(0, 0)) == 0
    assert sorted(tables.bucket(0, 3).tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("codes,order,match", [
    (np.array([0, 4], np.uint32), np.array([0, 1], np.int32), "range_pow"),
    (np.array([0, 1, 2], np.uint32), np.array([0, 1], np.int32), "L \\* len"),
    (np.array([0, 1], np.uint32), np.array([0, 2], np.int32), "permutation"),
    (np.array([0, 1], np.uint32), np.array([1, 1], np.int32), "permutation"),
    (np.array([0, 1], np.int64), np.array([0, 1], np.int32), "dtype"),
])
def test_table_build_rejects_bad_input(codes, order, match):
    tables = N.HashTables(1, 2, 4, "fifo")
    with pytest.raises(ValueError, match=match):
        tables.build(codes, order, 0)


def test_hash_and_table_arguments_are_checked():
    with pytest.raises(ValueError, match="K >= 1"):
        N.HashFamily("dwta", 0, 1, 10, 3)
    with pytest.raises(ValueError, match="range_pow"):
        N.HashFamily("srp", 1, 1, 10, 31)
    with pytest.raises(ValueError, match="'dwta', 'srp' or 'kmeans'"):
        N.HashFamily("minhash", 1, 1, 10, 3)
    with pytest.raises(ValueError, match="'fifo' or 'reservoir'"):
        N.HashTables(1, 2, 4, "lru")
    with pytest.raises(ValueError, match="bucket_size"):
        N.HashTables(1, 2, 0, "fifo")
    with pytest.raises(ValueError, match="bucket"):
        N.HashTables(2, 2, 4, "fifo").bucket(2, 0)
    with pytest.raises(ValueError, match="dtype"):
        N.HashFamily("dwta", 1, 1, 10, 3).codes(np.zeros(10))
    with pytest.raises(ValueError):
        N.HashFamily("dwta", 1, 1, 10, 3).codes(np.zeros(10, np.float32), isa="sse")


# ---- active sets of the output layer ------------------------------------------------------------

N_LABELS = 400


# The shipped code's selection: the union of the buckets, random padding below pad_below, raw weights hashed.
ORIGINAL = {"select": "union", "mips": False, "random_share": 0.0}


def active_net(pad_below: int, min_active: int, n_labels: int = N_LABELS, bucket_size: int = 4) -> Network:
    # the LSH setup depends only on the seed and the layer spec, so nets that differ in padding share tables
    return Network(30, n_labels, hidden=(10,),
                   layers=[{"sparsity": 1.0}, {"K": 2, "L": 3, "range_pow": 3, "sparsity": 0.05}],
                   seed=21, threads=1, bucket_size=bucket_size, pad_below=pad_below, min_active=min_active, **ORIGINAL)


def queries(n: int = 8) -> sp.csr_matrix:
    rng = np.random.default_rng(8)
    return sp.csr_matrix(np.where(rng.random((n, 30)) < 0.3, rng.random((n, 30)), 0).astype(np.float32))


def test_active_set_without_padding_is_labels_then_the_buckets_union():
    net = active_net(pad_below=0, min_active=0)
    x = queries()
    for r in range(x.shape[0]):
        retrieved = net.active_set(x, r)
        assert 0 < len(retrieved) <= 3 * 4  # L tables x bucket_size
        assert len(np.unique(retrieved)) == len(retrieved)
        stored_anywhere = set(retrieved.tolist())
        outside = next(i for i in range(N_LABELS) if i not in stored_anywhere)
        inside = int(retrieved[0])
        labels = [outside, inside, outside]  # a repeated label, one retrieved anyway
        act = net.active_set(x, r, labels)
        assert act[:2].tolist() == [outside, inside]
        assert len(np.unique(act)) == len(act)
        assert set(act.tolist()) == set(retrieved.tolist()) | {outside}


def test_labels_outside_every_bucket_are_always_active():
    # bucket_size 1: at most L * 2^range_pow = 24 of the 400 neurons are stored in any table
    net = active_net(pad_below=0, min_active=0, bucket_size=1)
    x = queries(30)
    seen = set()
    for r in range(30):
        seen |= set(net.active_set(x, r).tolist())
    assert len(seen) <= 24
    never = [i for i in range(N_LABELS) if i not in seen][:5]
    for r in range(5):
        act = net.active_set(x, r, never)
        assert act[:5].tolist() == never


@pytest.mark.parametrize("min_active", [50, 1000])
def test_padding_reaches_min_active_when_too_few_are_retrieved(min_active):
    plain = active_net(pad_below=0, min_active=0)
    padded = active_net(pad_below=100, min_active=min_active)
    x = queries()
    want = min(min_active, N_LABELS)
    for r in range(x.shape[0]):
        labels = [r, 399]
        base = set(plain.active_set(x, r, labels).tolist())
        act = padded.active_set(x, r, labels, salt=r)
        assert len(act) == max(want, len(base))
        assert len(np.unique(act)) == len(act)
        assert act.min() >= 0 and act.max() < N_LABELS
        assert base <= set(act.tolist())
        assert act[:2].tolist() == labels


def test_no_padding_when_enough_are_retrieved():
    # pad_below 1: anything retrieved (or any label) suppresses padding
    plain = active_net(pad_below=0, min_active=0)
    net = active_net(pad_below=1, min_active=300)
    x = queries()
    for r in range(x.shape[0]):
        assert set(net.active_set(x, r, [5]).tolist()) == set(plain.active_set(x, r, [5]).tolist())


def test_padding_depends_on_salt():
    net = active_net(pad_below=100, min_active=60)
    x = queries()
    a = net.active_set(x, 0, [1], salt=1)
    assert np.array_equal(a, net.active_set(x, 0, [1], salt=1))
    others = [set(net.active_set(x, 0, [1], salt=s).tolist()) for s in range(2, 6)]
    assert any(o != set(a.tolist()) for o in others)


def test_tiny_output_layer_pads_to_all_neurons():
    net = active_net(pad_below=100, min_active=1000, n_labels=20)
    x = queries()
    assert sorted(net.active_set(x, 0, [3]).tolist()) == list(range(20))


def test_table_occupancy_is_bounded_by_capacity():
    net = active_net(pad_below=0, min_active=0, bucket_size=4)
    nonempty, stored = net.native.table_stats
    assert 0 < nonempty <= 3 * 2 ** 3
    assert stored <= min(3 * N_LABELS, 3 * 2 ** 3 * 4)
    assert stored >= nonempty


def test_active_set_argument_errors():
    net = active_net(pad_below=0, min_active=0)
    x = queries(2)
    with pytest.raises(ValueError, match="row"):
        net.active_set(x, 2)
    with pytest.raises(ValueError, match="label"):
        net.active_set(x, 0, [N_LABELS])
    with pytest.raises(ValueError, match="label"):
        net.active_set(x, 0, [-1])
