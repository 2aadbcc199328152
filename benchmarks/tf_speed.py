"""Speed of the TensorFlow baselines: steps/s, input vs step time, peak RSS (not a test).

Random data (default; Amazon-670K-shaped rows: 30-50 nonzeros, 3-5 labels, batch 128):
    .venv/bin/python benchmarks/tf_speed.py                       # L = 200k and 670,091, full + sampled
    .venv/bin/python benchmarks/tf_speed.py --labels 670091 --losses sampled --steps 20
A prepared dataset (batches from its train split in the protocol's order):
    .venv/bin/python benchmarks/tf_speed.py --data results/data/synthetic
    .venv/bin/python benchmarks/tf_speed.py --data results/data/synthetic --p1 --epochs 2
      (--p1: full training runs under the shared protocol -> time vs P@1 table; runs land in --out)

Every measurement runs in its own process (TF's thread pools are fixed at start-up, and peak RSS is
per process). Times: `input` = host work per batch (CSR -> COO feed, sampling candidates),
`step` = the compiled train step (forward, backward, Adam), both averaged over --steps after --warmup.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from slide import defaults

REPO = Path(__file__).resolve().parent.parent


def random_split(n: int, d: int, L: int, nnz=(30, 50), labels=(3, 5), seed: int = 0):
    from slide.data.csr import Split

    rng = np.random.default_rng(seed)
    counts = rng.integers(nnz[0], nnz[1] + 1, n)
    lab_counts = rng.integers(labels[0], labels[1] + 1, n)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    lab_ptr = np.r_[0, np.cumsum(lab_counts)].astype(np.int64)
    return Split(indptr, rng.integers(0, d, indptr[-1]).astype(np.int32), rng.random(indptr[-1], np.float32),
                 lab_ptr, rng.integers(0, L, lab_ptr[-1]).astype(np.int32), d, L)


def measure(a: dict) -> dict:
    """One configuration in this process: build, warm up, time steps, report."""
    from slide.baselines.tf_models import TFBaseline, resolve_num_sampled
    from slide.training.protocol import batch_order, peak_rss_bytes

    if a["data"]:
        from slide.data.csr import load_split

        train = load_split(Path(a["data"]) / "train.npz")
        order = batch_order(train.n, 0, 0)
    else:
        train = random_split(a["batch"] * 8, a["features"], a["labels"])
        order = np.arange(train.n)
    n_batches = -(-train.n // a["batch"])
    batches = [train.rows(order[(i % n_batches) * a["batch"]:((i % n_batches) + 1) * a["batch"]])
               for i in range(min(n_batches, 8))]
    num_sampled = resolve_num_sampled({"num_sampled_fraction": a["fraction"]}, train.n_labels)

    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    model = TFBaseline(train.n_features, train.n_labels, hidden=a["hidden"], loss=a["loss"], lr=defaults.LR,
                       num_sampled=num_sampled if a["loss"] == "sampled" else None, threads=a["threads"],
                       inter_op_threads=a["inter_op"])
    build_s, rss_built = time.perf_counter() - t, peak_rss_bytes()
    t = time.perf_counter()
    for i in range(a["warmup"]):
        model.train_batch(batches[i % len(batches)])
    warmup_s = time.perf_counter() - t
    t_in, t_step = [], []
    for i in range(a["steps"]):
        t0 = time.perf_counter()
        args = model.feed(batches[i % len(batches)])
        t1 = time.perf_counter()
        model.train_step(args)  # returns a Python float: waits for the step to finish
        t_in.append(t1 - t0)
        t_step.append(time.perf_counter() - t1)
    model.predict_topk(batches[0], 5)  # trace
    t = time.perf_counter()
    model.predict_topk(batches[1 % len(batches)], 5)
    predict_s = time.perf_counter() - t
    info = model.info()
    step = float(np.mean(t_in) + np.mean(t_step))
    return {"loss": a["loss"], "labels": train.n_labels, "features": train.n_features, "batch": a["batch"],
            "num_sampled": info["num_sampled"], "threads": info["threads"], "inter_op": info["inter_op_threads"],
            "devices": info["devices"], "data": a["data"] or "random",
            "steps_per_s": 1.0 / step, "input_ms": 1e3 * float(np.mean(t_in)), "step_ms": 1e3 * float(np.mean(t_step)),
            "step_ms_min": 1e3 * float(np.min(t_step)), "input_share": float(np.mean(t_in)) / step,
            "build_s": build_s, "warmup_s": warmup_s, "predict_batch_ms": 1e3 * predict_s,
            "rss_after_build_gb": rss_built / 2**30, "peak_rss_gb": peak_rss_bytes() / 2**30,
            "n_parameters": info["n_parameters"], "tensorflow": info["tensorflow"],
            # other processes on the host inflate every time above: record how busy it was
            "loadavg_1m": [load_before, os.getloadavg()[0]], "cpus": os.cpu_count()}


def run_p1(args) -> list[dict]:
    """Full training runs on a prepared dataset under the shared protocol; returns their final.json."""
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    train_cfg = {**cfg["train"], **{k: v for k, v in (("epochs", args.epochs), ("max_steps", args.max_steps),
                                                      ("lr", args.lr)) if v is not None}}
    data, results = Path(args.data), []
    for loss in args.losses:
        out = Path(args.out) / data.name / loss
        cmd = [sys.executable, "-c",
               "import json, sys; from slide.baselines.train import train_tf; a = json.loads(sys.argv[1]); "
               "train_tf(**a)", json.dumps({"loss": loss, "train_path": str(data / "train.npz"),
                                            "test_path": str(data / "test.npz"), "meta_path": str(data / "meta.json"),
                                            "out_dir": str(out), "model_cfg": {"hidden": args.hidden},
                                            "train_cfg": train_cfg, "tf_cfg": {**cfg["tf"], "num_sampled_fraction":
                                                                                args.fraction},
                                            "threads": args.threads})]
        subprocess.run(cmd, check=True)
        results.append(json.loads((out / "final.json").read_text()))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, nargs="+", default=[200_000, 670_091])
    p.add_argument("--features", type=int, default=None, help="default: 135,909 at L >= 670k, else 100,000")
    p.add_argument("--losses", nargs="+", default=["full", "sampled"], choices=["full", "sampled"])
    p.add_argument("--hidden", type=int, nargs="+", default=list(defaults.HIDDEN))
    p.add_argument("--batch", type=int, default=defaults.BATCH_SIZE)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inter-op", type=int, default=None, help="default: = --threads")
    p.add_argument("--fraction", type=float, default=0.1, help="num_sampled = fraction * L")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--data", help="prepared dataset directory (results/data/<name>) instead of random data")
    p.add_argument("--p1", action="store_true", help="with --data: full training runs, time vs P@1")
    p.add_argument("--epochs", type=int), p.add_argument("--max-steps", type=int), p.add_argument("--lr", type=float)
    p.add_argument("--out", default="results/benchmarks/tf_speed", help="--p1 run directories / JSON results")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, JSON in and out
    args = p.parse_args(argv)

    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return 0
    if args.p1:
        if not args.data:
            p.error("--p1 needs --data")
        for f in run_p1(args):
            print(f"{f['system']:11s} P@1 {f['p_at_1']:.4f} P@3 {f['p_at_3']:.4f} P@5 {f['p_at_5']:.4f} "
                  f"train {f['train_seconds']:.1f} s ({f['seconds_per_batch'] * 1e3:.0f} ms/batch, {f['steps']} steps)")
        return 0

    configs = []
    for L in ([None] if args.data else args.labels):
        d = args.features or (135_909 if (L or 0) >= 670_000 else 100_000)
        configs += [{"loss": loss, "labels": L, "features": d, "hidden": args.hidden, "batch": args.batch,
                     "threads": args.threads, "inter_op": args.inter_op or args.threads, "fraction": args.fraction,
                     "steps": args.steps, "warmup": args.warmup, "data": args.data} for loss in args.losses]
    rows = []
    print(f"{'loss':8s} {'labels':>8s} {'feats':>7s} {'sampled':>7s} {'steps/s':>8s} {'input ms':>8s} "
          f"{'step ms':>8s} {'input %':>7s} {'eval ms':>8s} {'build s':>7s} {'peak RSS':>8s} {'load':>9s}", flush=True)
    for c in configs:
        out = subprocess.run([sys.executable, __file__, "--one", json.dumps(c)], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            return out.returncode
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{r['loss']:8s} {r['labels']:8d} {r['features']:7d} {str(r['num_sampled'] or '-'):>7s} "
              f"{r['steps_per_s']:8.2f} {r['input_ms']:8.1f} {r['step_ms']:8.1f} {100 * r['input_share']:6.1f}% "
              f"{r['predict_batch_ms']:8.1f} {r['build_s']:7.1f} {r['peak_rss_gb']:6.2f}GB "
              f"{r['loadavg_1m'][0]:4.1f}-{r['loadavg_1m'][1]:<4.1f}", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    dest = Path(args.out) / "speed.json"
    dest.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
