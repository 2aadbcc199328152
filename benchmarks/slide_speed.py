"""Per-batch training time of the native SLIDE core on random data of a given shape, split into phases.

    python benchmarks/slide_speed.py --features 100000 --labels 200000 --batches 100 --threads 2
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import slide
from slide import defaults
from slide.data.csr import Split
from slide.training.protocol import peak_rss_bytes


def random_split(n, n_features, n_labels, nnz, labels_per, seed=0) -> Split:
    rng = np.random.default_rng(seed)
    indptr = np.arange(0, n * nnz + 1, nnz, dtype=np.int64)
    # distinct features per row: sample then sort (duplicates are rare at these sizes; drop them)
    indices = np.sort(rng.integers(0, n_features, (n, nnz)), axis=1).astype(np.int32).ravel()
    data = rng.random(n * nnz, dtype=np.float32)
    lab_ptr = np.arange(0, n * labels_per + 1, labels_per, dtype=np.int64)
    # Zipf-ish label popularity
    labels = np.minimum(rng.zipf(1.3, n * labels_per) - 1, n_labels - 1).astype(np.int32)
    return Split(indptr, indices, data, lab_ptr, labels, n_features, n_labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=200_000)
    ap.add_argument("--nnz", type=int, default=28)
    ap.add_argument("--labels-per", type=int, default=3)
    ap.add_argument("--batch", type=int, default=defaults.BATCH_SIZE)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dense-adam", action="store_true")
    ap.add_argument("--isa", default="auto")
    ap.add_argument("--set", action="append", default=[], help="extra option key=json_value")
    a = ap.parse_args()
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    n = a.batch * (a.batches + a.warmup)
    data = random_split(n, a.features, a.labels, a.nnz, a.labels_per)
    t0 = time.perf_counter()
    net = slide.Network(a.features, a.labels, threads=a.threads, dense_adam=a.dense_adam, isa=a.isa, **extra)
    print(f"construct: {time.perf_counter() - t0:.2f} s")
    for b in range(a.warmup):
        net.train_batch(data.rows(np.arange(b * a.batch, (b + 1) * a.batch)))
    before = dict(net.times)
    t0, c0 = time.perf_counter(), time.process_time()
    for b in range(a.warmup, a.warmup + a.batches):
        net.train_batch(data.rows(np.arange(b * a.batch, (b + 1) * a.batch)))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    phases = {k: (v - before[k]) / a.batches * 1e3 for k, v in net.times.items()}
    # cpu seconds / threads: robust to other load on a shared machine (with 1 thread it is the work itself)
    print(json.dumps({"seconds_per_batch": dt / a.batches, "cpu_seconds_per_batch": cpu / a.batches, "samples_per_s": a.batch * a.batches / dt,
                      "ms_per_batch_by_phase": {k: round(v, 2) for k, v in phases.items()},
                      "isa": net.native.isa, "threads": net.native.threads,
                      "peak_rss_gb": peak_rss_bytes() / 2**30}, indent=1))


if __name__ == "__main__":
    main()
