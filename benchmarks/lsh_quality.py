"""How well each way of choosing the output layer's active neurons finds the highest-scoring ones.

    python benchmarks/lsh_quality.py --out results/benchmarks/lsh_quality     # about 5 minutes on 2 cores

For every setting below, a network is trained with that setting (a synthetic held-out set of the Amazon shape:
20k features, 20k labels, 20k train / 5k test rows, seed 23 unless changed), then its tables are queried with
test rows, without labels and without random neurons (`Network.lsh_stats`): candidates per row against the
share of each row's dense top-20 (by score) among them. `topk` settings give a curve (one point per budget),
`union` settings one point. A random choice of the same size retrieves budget / n_labels of the top-20: the
dashed line. Writes lsh_quality.json and lsh_quality.png into --out and prints a table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import slide
from slide import defaults
from slide.data.synthetic import SyntheticSpec, generate

HIDDEN = {"hash": "dwta", "K": 2, "L": 20, "range_pow": 6, "sparsity": 1.0}
AUTO = {"K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.005}
ORIGINAL = {"select": "union", "mips": False, "random_share": 0.0}
SETTINGS = {
    "paper: DWTA K6 L50 rp18, union": ({"hash": "dwta", "K": 6, "L": 50, "range_pow": 18, "sparsity": 0.005},
                                       ORIGINAL),
    "DWTA K4 L50 rp12, union": ({"hash": "dwta", "K": 4, "L": 50, "range_pow": 12, "sparsity": 0.005}, ORIGINAL),
    "SRP K8 L50, union": ({"hash": "srp", "K": 8, "L": 50, "range_pow": 8, "sparsity": 0.005}, ORIGINAL),
    "DWTA auto, MIPS, topk": ({"hash": "dwta", **AUTO}, {}),
    "SRP auto, MIPS, topk": ({"hash": "srp", **AUTO}, {}),
    "k-means auto, MIPS, topk (default)": ({"hash": "kmeans", **AUTO}, {}),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=20_000)
    ap.add_argument("--labels", type=int, default=20_000)
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--test", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=23, help="synthetic data seed (the pipeline's default is 1)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--budget", type=float, default=0.01, help="training budget (min_active) as a share of labels")
    ap.add_argument("--rows", type=int, default=1000, help="test rows queried")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", action="append", default=[], help="run only settings whose name contains this")
    ap.add_argument("--out", default="results/benchmarks/lsh_quality")
    a = ap.parse_args()

    train, test = generate(SyntheticSpec(n_train=a.train, n_test=a.test, n_features=a.features,
                                         n_labels=a.labels, seed=a.seed))
    rng = np.random.default_rng(a.seed)
    train, test = train.rows(rng.permutation(train.n)), test.rows(rng.permutation(test.n))
    queries = test.rows(np.arange(min(a.rows, test.n)))
    n_labels = train.n_labels
    budget = max(1, round(a.budget * n_labels))
    budgets = sorted({max(1, round(f * n_labels)) for f in (0.0025, 0.005, 0.01, 0.02, 0.05)})
    results = {}
    for name, (out_layer, options) in SETTINGS.items():
        if a.only and not any(s in name for s in a.only):
            continue
        net = slide.Network(train.n_features, n_labels, layers=[HIDDEN, out_layer], lr=defaults.LR, threads=a.threads,
                            init_std=defaults.INIT_STD, init_bias_std=0.0, init_truncated=True, min_active=budget,
                            pad_below=round(1.5 * budget), **options)
        t0 = time.perf_counter()
        order_rng = np.random.default_rng(0)
        for _ in range(a.epochs):
            order = order_rng.permutation(train.n)
            for s in range(0, train.n, defaults.BATCH_SIZE):
                net.train_batch(train.rows(order[s:s + defaults.BATCH_SIZE]))
        seconds = time.perf_counter() - t0
        topk = options.get("select", "topk") == "topk"
        points = [net.lsh_stats(queries, k=20, budget=b) for b in (budgets if topk else [0])]
        ids = net.predict_topk(queries, k=1)[0][:, 0]
        p1 = float(np.mean([ids[i] in queries.row_labels(i) for i in range(queries.n)]))
        results[name] = {"resolved": net.native.output_lsh, "train_seconds": seconds, "dense_p_at_1": p1,
                         "points": [{"candidates": p["candidates"], "recall": p["recall"], "top1": p["top1"]}
                                    for p in points]}
        best = points[budgets.index(budget)] if topk else points[0]
        print(f"{name:40s} trained {seconds:6.1f} s, dense P@1 {p1:.3f}; at {best['candidates']:.0f} candidates "
              f"({best['candidates'] / n_labels:.2%}): recall of the top-20 {best['recall']:.3f}, "
              f"top-1 found {best['top1']:.3f}", flush=True)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lsh_quality.json").write_text(json.dumps({"args": vars(a), "n_labels": n_labels, "results": results},
                                                     indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        c = [p["candidates"] / n_labels * 100 for p in r["points"]]
        ax.plot(c, [p["recall"] for p in r["points"]], "o-" if len(c) > 1 else "s", label=name)
    xs = np.array([b / n_labels * 100 for b in budgets])
    ax.plot(xs, xs / 100, "k--", label="random choice")
    ax.set_xscale("log")
    ax.set_xlabel("neurons retrieved per row (% of labels)")
    ax.set_ylabel("recall of the dense top-20")
    ax.set_ylim(0, 1)
    ax.set_title(f"Output-layer retrieval, {n_labels:,} labels, after {a.epochs} epochs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "lsh_quality.png", dpi=150)
    print(f"wrote {out / 'lsh_quality.json'} and {out / 'lsh_quality.png'}")


if __name__ == "__main__":
    main()
