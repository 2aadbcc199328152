"""The native core under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds slide._native with `python -m slide.build <dir> --sanitize --build-type Debug` (a minute or
more), then runs a script that exercises training (sparse and dense outputs, FIFO and reservoir buckets,
rehashes and rebuilds, one and two threads, narrowing and widening hidden stacks), inference, save/load
and the error paths in a child process with the sanitizer runtimes preloaded into Python.

Set SLIDE_SANITIZE_BUILD=<dir> to reuse (or keep) a sanitizer build instead of a temporary one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sanitize, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def runtime(name: str) -> str | None:
    """Absolute path of a gcc sanitizer runtime, or None (g++ prints the bare name when it has none)."""
    gxx = shutil.which("g++")
    if gxx is None:
        return None
    path = subprocess.run([gxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.fixture(scope="module")
def sanitized_build(tmp_path_factory) -> Path:
    if runtime("libasan.so") is None or runtime("libubsan.so") is None:
        pytest.skip("g++'s libasan.so/libubsan.so not found (install gcc with sanitizer runtimes)")
    if shutil.which("cmake") is None:
        pytest.skip("cmake not found")
    out = Path(os.environ.get("SLIDE_SANITIZE_BUILD") or tmp_path_factory.mktemp("asan"))
    p = subprocess.run([sys.executable, "-m", "slide.build", str(out), "--sanitize", "--build-type", "Debug"],
                       cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, f"sanitizer build failed:\n{p.stderr[-4000:]}"
    return out


SCRIPT = textwrap.dedent(r'''
    import numpy as np
    import scipy.sparse as sp
    import tempfile, os
    from slide.native import native
    N = native()
    assert os.environ["SLIDE_NATIVE_DIR"] in N.__file__, N.__file__
    from slide.network import Network

    rng = np.random.default_rng(0)
    NF, NL = 64, 120

    def batch(n, seed):
        r = np.random.default_rng(seed)
        x = sp.csr_matrix(np.where(r.random((n, NF)) < 0.15, r.random((n, NF)), 0).astype(np.float32))
        labels = [list(r.choice(NL, size=r.integers(0, 4), replace=False)) for _ in range(n)]
        return x, labels

    def expect_error(fn, *exc):
        try:
            fn()
        except exc or (ValueError,):
            return
        raise AssertionError(f"no error from {fn}")

    DENSE = {"sparsity": 1.0}
    def sparse(**kw):
        return {"hash": "dwta", "K": 2, "L": 4, "range_pow": 4, "sparsity": 0.1, **kw}

    configs = [
        dict(hidden=(16,), layers=[DENSE, sparse()], replacement="fifo"),
        dict(hidden=(16,), layers=[DENSE, sparse(hash="srp", K=3)], replacement="reservoir", threads=2),
        dict(hidden=(16,), layers=[DENSE, DENSE], dense_adam=True),
        dict(hidden=(8, 24), layers=[DENSE, DENSE, sparse()], schedule="exponential", schedule_growth=1.5),
        dict(hidden=(24, 8), layers=[DENSE, DENSE, sparse()], threads=2),      # narrowing hidden stack
        dict(hidden=(16,), layers=[DENSE, sparse(K=6, range_pow=18)], dwta_compat_shift=True, bucket_size=2),
        dict(hidden=(16,), layers=[DENSE, sparse()], isa="scalar", min_active=NL * 2, pad_below=10**6),
    ]
    tmp = tempfile.mkdtemp()
    for i, c in enumerate(configs):
        c = dict(c)
        threads = c.pop("threads", 1)
        net = Network(NF, NL, lr=1e-2, seed=i, threads=threads, rehash=32, rebuild=64, min_active=c.pop("min_active", 20),
                      pad_below=c.pop("pad_below", 30), **c)
        for step in range(6):                          # 6 x 16 samples: rehashes at 32, 64 (a rebuild), 96
            loss = net.train_batch(*batch(16, step))
            assert np.isfinite(loss)
        if c["layers"][-1]["sparsity"] < 1:
            assert net.native.rebuilds >= 1 and net.native.rehashes >= 3, (net.native.rehashes, net.native.rebuilds)
        net.train_batch(*batch(3, 99))                 # a smaller batch after larger ones
        net.train_batch(sp.csr_matrix((0, NF), dtype=np.float32), [])
        x, labels = batch(9, 7)
        for k in (1, 5, NL):
            for s in (False, True):
                ids, scores = net.predict_topk(x, k, sparse=s)
                assert ids.shape == (9, k)
        for r in range(3):
            net.active_set(x, r, labels[r], salt=r)
        path = os.path.join(tmp, f"m{i}.slide")
        net.save(path)
        loaded = Network.load(path)
        assert np.array_equal(loaded.predict_topk(x, 5, sparse=False)[0], net.predict_topk(x, 5, sparse=False)[0])
        loaded.train_batch(*batch(16, 50))
        data = open(path, "rb").read()
        for cut in (0, 7, 30, len(data) // 2, len(data) - 1):
            bad = os.path.join(tmp, f"cut{i}_{cut}.slide")
            open(bad, "wb").write(data[:cut])
            expect_error(lambda: Network.load(bad), ValueError, RuntimeError)
            expect_error(lambda: net.native.load(bad), ValueError, RuntimeError)
        net.info()
        net.native.table_stats, net.native.times

    # error paths of the raw binding
    net = Network(NF, NL, hidden=(16,), layers=[DENSE, sparse()], seed=1, threads=1)
    raw = net.native
    ok = (np.array([0, 2, 3], np.int64), np.array([1, 5, 7], np.int32), np.ones(3, np.float32),
          np.array([0, 1, 2], np.int64), np.array([3, 4], np.int32))
    def bad(i, v):
        a = list(ok); a[i] = v
        expect_error(lambda: raw.train_batch(*a))
    bad(0, np.array([0, 2, 3], np.int32))
    bad(1, np.array([1, 5, 7], np.int64))
    bad(2, np.ones(3, np.float64))
    bad(1, np.arange(6, dtype=np.int32)[::2])
    bad(0, np.array([0, 3, 2], np.int64))
    bad(0, np.array([0, 2, 4], np.int64))
    bad(0, np.array([0, 2, 300], np.int64))
    bad(0, np.array([5, 2, 3], np.int64))
    bad(0, np.array([], np.int64))
    bad(1, np.array([1, NF, 7], np.int32))
    bad(1, np.array([1, -3, 7], np.int32))
    bad(2, np.array([1, np.nan, 1], np.float32))
    bad(4, np.array([3, NL], np.int32))
    bad(3, np.array([0, 2], np.int64))
    bad(3, np.array([0, 1, 7], np.int64))
    for k in (0, NL + 1):
        expect_error(lambda: raw.predict_topk(ok[0], ok[1], ok[2], k, True))
    expect_error(lambda: raw.active_set(ok[0], ok[1], ok[2], 5, np.array([], np.int32)))
    expect_error(lambda: raw.active_set(ok[0], ok[1], ok[2], 0, np.array([NL], np.int32)))
    expect_error(lambda: raw.weights(5))
    for kw in (dict(isa="sse"), dict(replacement="lru"), dict(schedule="linear"), dict(hugepages="maybe"),
               dict(bucket_size=0), dict(rehash=0), dict(unknown_option=1)):
        expect_error(lambda: Network(NF, NL, hidden=(16,), layers=[DENSE, sparse()], seed=1, threads=1, **kw))
    if not N.best_isa().startswith("avx512"):
        expect_error(lambda: Network(NF, NL, hidden=(16,), layers=[DENSE, DENSE], isa="avx512"))
    expect_error(lambda: Network(NF, NL, hidden=(16,), layers=[sparse(), DENSE]))
    expect_error(lambda: Network(NF, NL, hidden=(16,), layers=[DENSE, sparse(hash="minhash")]))
    expect_error(lambda: Network(NF, NL, hidden=(16,), layers=[DENSE, sparse(range_pow=31)]))

    # LSH building blocks
    for kind in ("dwta", "srp"):
        fam = N.HashFamily(kind, 3, 7, 50, 6, seed=2)
        for isa in ("scalar", "auto"):
            fam.codes(rng.standard_normal(50).astype(np.float32), isa=isa)
        expect_error(lambda: fam.codes(np.zeros(3, np.float32)))   # shorter than dim: must not be read past
    for repl in ("fifo", "reservoir"):
        t = N.HashTables(3, 3, 4, repl)
        t.build(rng.integers(0, 8, 3 * 100).astype(np.uint32), rng.permutation(100).astype(np.int32), 5)
        t.build(rng.integers(0, 8, 3 * 40).astype(np.uint32), rng.permutation(40).astype(np.int32), 6)
        for tb in range(3):
            for b in range(8):
                t.bucket(tb, b)
        expect_error(lambda: t.bucket(3, 0))
        expect_error(lambda: t.build(np.full(3, 8, np.uint32), np.arange(1, dtype=np.int32), 0))
    print("sanitized run ok")
''')


def test_core_is_clean_under_asan_and_ubsan(sanitized_build, tmp_path):
    env = {**os.environ,
           "SLIDE_NATIVE_DIR": str(sanitized_build),
           "LD_PRELOAD": f"{runtime('libasan.so')} {runtime('libubsan.so')}",
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
           "OMP_WAIT_POLICY": "passive"}
    script = tmp_path / "exercise.py"
    script.write_text(SCRIPT)
    p = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    report = p.stderr[-6000:]
    assert "ERROR: AddressSanitizer" not in p.stderr, report
    assert "runtime error" not in p.stderr, report
    assert p.returncode == 0 and "sanitized run ok" in p.stdout, report
