"""Per-batch training time of SLIDE variants, measured in turns: each variant trains in a process of its own, and
the processes take turns a few batches at a time (A B, then B A, ...), so that every variant sees the same machine
state. On a shared machine whose speed drifts by tens of percent over minutes, runs one after the other cannot
resolve a 5% difference; ratios of windows timed in turns can.

    python benchmarks/in_turn.py results/data/synthetic200k --epochs 2 \
        --variant fp32 '{}' --variant bf16 '{"precision": "bf16"}'
    python benchmarks/in_turn.py results/data/synthetic200k --epochs 2 \
        --variant before '{}' --variant after '{}' --native before /path/to/older/build

Each variant is a name and a JSON object merged over config/config.yaml's `slide` section; `--native NAME DIR`
runs that variant with the native extension built in DIR (SLIDE_NATIVE_DIR). All variants train on the same
batches in the protocol's order. Printed: each variant's time per batch over the whole run, its phases, its peak
memory, and the time ratios to the first variant window by window (min, median, max).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(a) -> None:
    """One variant: train the batches the parent asks for, reply with the seconds they took."""
    import yaml

    from slide import defaults
    from slide.data.csr import load_split
    from slide.network import Network
    from slide.training.protocol import batch_order, peak_rss_bytes

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    train = load_split(Path(a.data) / "train.npz")
    cfg = {**config, "slide": {**config["slide"], **json.loads(a.child)}}
    net = Network.from_config(cfg, train.n_features, train.n_labels, threads=a.threads)
    bs = defaults.BATCH_SIZE
    per_epoch = -(-train.n // bs)
    batches = (train.rows(order[b * bs:(b + 1) * bs])
               for epoch in range(a.epochs) for order in [batch_order(train.n, epoch, defaults.SEED)]
               for b in range(per_epoch))
    print("ready", flush=True)
    for line in sys.stdin:
        k = int(line)
        if k == 0:
            break
        t0 = time.perf_counter()
        for _ in range(k):
            net.train_batch(next(batches))
        print(time.perf_counter() - t0, flush=True)
    print(json.dumps({"phase_seconds": net.info()["phase_seconds"], "peak_rss_bytes": peak_rss_bytes()}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared dataset directory (train.npz)")
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    ap.add_argument("--native", nargs=2, action="append", default=[], metavar=("NAME", "DIR"),
                    help="run variant NAME with the native extension in DIR")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--window", type=int, default=20, help="batches per turn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        return child(a)
    names = [n for n, _ in a.variant]
    if len(set(names)) != len(names):
        ap.error("variant names must differ")
    natives = dict(a.native)
    if set(natives) - set(names):
        ap.error(f"--native names no variant: {sorted(set(natives) - set(names))}")
    for name, d in natives.items():
        if not Path(d).is_dir():
            ap.error(f"--native {name}: {d} is not a directory")
    from slide.data.csr import load_split  # only the row count: every child loads the data itself
    from slide import defaults

    n_train = load_split(Path(a.data) / "train.npz").n
    total = a.epochs * -(-n_train // defaults.BATCH_SIZE)
    procs = []

    def fail(message: str):
        for p in procs:  # the others would only fail later on the closed pipe
            p.kill()
        sys.exit(message)

    for name, js in a.variant:
        env = dict(os.environ)
        if name in natives:
            env["SLIDE_NATIVE_DIR"] = str(Path(natives[name]).resolve())
        args = [sys.executable, __file__, a.data, "--variant", name, js, "--child", js,
                "--epochs", str(a.epochs), "--threads", str(a.threads)]
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        procs.append(p)
        if p.stdout.readline().strip() != "ready":
            fail(f"variant {name}: its process did not start (exit code {p.wait()})")
    seconds = [[] for _ in procs]
    done, turn = 0, 0
    while done < total:
        k = min(a.window, total - done)
        order = range(len(procs)) if turn % 2 == 0 else reversed(range(len(procs)))
        for i in order:
            procs[i].stdin.write(f"{k}\n")
            procs[i].stdin.flush()
            reply = procs[i].stdout.readline()
            if not reply:
                fail(f"variant {names[i]}: its process ended early (exit code {procs[i].wait()})")
            seconds[i].append(float(reply))
        done += k
        turn += 1
        if turn % 10 == 0:
            print(f"{done}/{total} batches", file=sys.stderr, flush=True)
    finals = []
    for p in procs:
        p.stdin.write("0\n")
        p.stdin.flush()
        finals.append(json.loads(p.stdout.readline()))
        p.wait()
    print(f"\n{a.data}: {total} batches, {a.threads} threads, turns of {a.window} batches")
    print("| variant | ms / batch | " + " | ".join(f"{k} ms" for k in finals[0]["phase_seconds"]) +
          " | peak RSS, MiB | time vs " + names[0] + " (min / median / max of windows) |")
    print("|---|---|" + "---|" * len(finals[0]["phase_seconds"]) + "---|---|")
    for i, name in enumerate(names):
        ratios = [b / a_ for a_, b in zip(seconds[0], seconds[i])]
        phases = " | ".join(f"{v / total * 1e3:.2f}" for v in finals[i]["phase_seconds"].values())
        print(f"| {name} | {sum(seconds[i]) / total * 1e3:.2f} | {phases} | {finals[i]['peak_rss_bytes'] / 2**20:.0f} | "
              f"{sum(seconds[i]) / sum(seconds[0]):.3f} ({min(ratios):.3f} / {statistics.median(ratios):.3f} / "
              f"{max(ratios):.3f}) |")


if __name__ == "__main__":
    main()
