"""SLIDE's time per batch on a quiet machine and beside other CPU-bound work, with and without slide.cpu_share.

    python benchmarks/shared_cores.py --features 500 --labels 983 --dense-output   # Delicious-sized
    python benchmarks/shared_cores.py --features 100000 --labels 200000             # Amazon-like output layer

Each measurement trains in a fresh process (OpenMP reads its wait policy when it starts). "busy" runs one
CPU-bound process per allowed core beside it (--hogs to change); "busy, spinning" skips slide.cpu_share, as
training did before it (all threads, OpenMP's default: threads spin at barriers). Rounds alternate the three settings, so a
drift of the machine's speed affects them alike; the table gives the median over rounds.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def hog(stop):  # one core's worth of CPU-bound work
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i * i


def measure(a, share: bool) -> dict:
    """Time per batch of one training process (stdout: JSON)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    args = [sys.executable, __file__, "--worker", "--features", str(a.features), "--labels", str(a.labels),
            "--batches", str(a.batches), "--threads", str(a.threads)] + (["--dense-output"] if a.dense_output else []) + \
           ([] if share else ["--no-share"])
    r = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def worker(a) -> None:
    if not a.no_share:
        from slide.cpu_share import share_cores

        decision = share_cores(a.threads)
    else:
        decision = {"wait_policy": "default (not checked)", "threads": a.threads}
    import numpy as np

    import slide

    sys.path.insert(0, str(Path(__file__).parent))
    from slide_speed import random_split

    warmup = 10
    data = random_split(128 * 40, a.features, a.labels, 18, 3)
    batches = [data.rows(np.arange(b * 128, (b + 1) * 128)) for b in range(40)]
    layers = [{"sparsity": 1.0}, {"sparsity": 1.0}] if a.dense_output else None
    net = slide.Network(a.features, a.labels, threads=decision["threads"], layers=layers)
    for b in range(warmup):
        net.train_batch(batches[b % 40])
    t0 = time.perf_counter()
    for b in range(a.batches):
        net.train_batch(batches[b % 40])
    print(json.dumps({"ms_per_batch": (time.perf_counter() - t0) / a.batches * 1e3, **decision}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=500)
    ap.add_argument("--labels", type=int, default=983)
    ap.add_argument("--dense-output", action="store_true", help="output layer with sparsity 1 (no LSH)")
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hogs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-share", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)

    times = {"quiet": [], "busy, spinning": [], "busy, cpu_share": []}
    policy = ""
    for _ in range(a.rounds):
        times["quiet"].append(measure(a, share=True)["ms_per_batch"])
        stop = mp.Event()
        hogs = [mp.Process(target=hog, args=(stop,)) for _ in range(a.hogs)]
        for p in hogs:
            p.start()
        try:
            time.sleep(0.5)
            times["busy, spinning"].append(measure(a, share=False)["ms_per_batch"])
            r = measure(a, share=True)
            times["busy, cpu_share"].append(r["ms_per_batch"])
            policy = f"{r['threads']} thread(s), wait policy {r['wait_policy']} ({r.get('reason', '')})"
        finally:
            stop.set()
            for p in hogs:
                p.join()
    quiet = statistics.median(times["quiet"])
    print(f"\n{a.features} features, {a.labels} labels ({'dense' if a.dense_output else 'LSH'} output), "
          f"{a.threads} threads, {a.hogs} busy processes beside it, {a.rounds} rounds")
    print("| setting | ms per batch (median) | rounds | vs quiet |\n|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.2f} | {', '.join(f'{x:.2f}' for x in t)} | "
              f"{statistics.median(t) / quiet:.1f}x |")
    print(f"\nbusy, cpu_share decided: {policy}")


if __name__ == "__main__":
    main()
