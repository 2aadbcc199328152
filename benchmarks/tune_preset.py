"""Tune a dataset preset's SLIDE settings on a validation split carved from the training rows; the test set is
used once, for the validation-picked setting only.

    python benchmarks/tune_preset.py results/data/bibtex --config config/bibtex.yaml \
        --hidden 128 256 512 --lr 1e-3 5e-4 --init-std 0.05 --batch-size 128 --max-epochs 60 --patience 10

1. A seeded `--val-fraction` of the prepared training rows becomes the validation set; the rest ("fit") trains.
   With `--folds K`, K disjoint such validation sets are held out in turn and a trial's score is their mean
   (one fold of Bibtex's 976 rows has a standard error of about 1.5 points of P@1).
2. Every combination of the grid (hidden layers and size, lr, init_std, batch size, output layer) trains on the fit rows
   with the shared protocol's batch order, evaluating validation P@1 after every epoch, until `--max-epochs` or
   `--patience` epochs without a better validation P@1.
3. The best (trial, epoch) by validation P@1 is picked. Its trial is trained again to that epoch (training is
   deterministic, so validation P@1 must repeat; checked) and evaluated on the test set: the number an early-
   stopped pipeline run reports (per fold, and their mean). Then a run on all training rows for the same
   number of epochs is evaluated on the test set: what the preset gives with `train.epochs` set to that number
   and no validation split.

Writes every trial's curve to `--out` (CSV) and prints markdown tables. Keys come from config/config.yaml with
`--config` over it, as the pipeline merges them.
"""
from __future__ import annotations

import argparse
import copy
import csv
import itertools
import time
from pathlib import Path

import numpy as np
import yaml

from slide.data.csr import Split, load_split
from slide.network import Network
from slide.training.protocol import batch_order, precision_at_k

ROOT = Path(__file__).resolve().parents[1]
# output layers to compare: dense (every output computed; what small label sets want) or k-means cells
OUTPUTS = {
    "dense": ({"hash": "dwta", "K": 2, "L": 20, "range_pow": 6, "sparsity": 1.0}, {"min_active": 0, "pad_below": 0}),
    "kmeans": ({"hash": "kmeans", "K": "auto", "L": "auto", "range_pow": "auto", "sparsity": 0.25},
               {"min_active": 40, "pad_below": 0, "select": "topk"}),
}


def merged_config(preset: Path | None) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    if preset is not None:
        for section, values in (yaml.safe_load(preset.read_text()) or {}).items():
            config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    return config


def carve(train: Split, fraction: float, seed: int, folds: int = 1) -> list[tuple[Split, Split]]:
    """[(fit, validation)] per fold: disjoint seeded shares of the training rows held out in turn (rows kept in
    their original order). One fold is a plain validation split; several give a less noisy average."""
    if not 0 < fraction < 1:
        raise ValueError(f"--val-fraction must be in (0, 1), got {fraction}")
    n_val = max(1, int(round(fraction * train.n)))
    if folds < 1 or folds * n_val > train.n:
        raise ValueError(f"--folds {folds} of {n_val} validation rows do not fit in {train.n} training rows")
    perm = np.random.default_rng([seed, 0x7A11]).permutation(train.n)
    out = []
    for k in range(folds):
        held = np.zeros(train.n, dtype=bool)
        held[perm[k * n_val:(k + 1) * n_val]] = True
        out.append((train.rows(np.flatnonzero(~held)), train.rows(np.flatnonzero(held))))
    return out


def trial_config(base: dict, hidden: int, lr: float, init_std: float, batch_size: int, output: str,
                 depth: int = 1) -> dict:
    cfg = copy.deepcopy(base)
    cfg["model"]["hidden"] = [hidden] * depth
    cfg["model"]["init_std"] = init_std
    cfg["train"]["lr"] = lr
    cfg["train"]["batch_size"] = batch_size
    layer, options = OUTPUTS[output]
    cfg["slide"]["layers"] = [dict(cfg["slide"]["layers"][0]) for _ in range(depth)] + [dict(layer)]
    cfg["slide"].update(options)
    return cfg


def p_at(net: Network, split: Split, batch: int = 1024) -> dict[int, float]:
    preds = [net.predict_topk(split.rows(np.arange(s, min(s + batch, split.n))), 5)[0] for s in range(0, split.n, batch)]
    return precision_at_k(np.concatenate(preds), split)


def train_epochs(cfg: dict, fits: list[Split], threads: int, epochs: int, seed: int, on_epoch=None,
                 patience: int = 0) -> list[Network]:
    """Train one network per fit split, in lockstep, for up to `epochs`. After each epoch,
    `on_epoch(epoch, nets, seconds)` returns a score (or None); with `patience`, stop after that many epochs
    without a better score. Returns the networks."""
    nets = [Network.from_config(cfg, f.n_features, f.n_labels, threads=threads) for f in fits]
    bs = cfg["train"]["batch_size"]
    best, since = -1.0, 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for net, fit in zip(nets, fits):
            order = batch_order(fit.n, epoch, seed)
            for s in range(0, fit.n, bs):
                net.train_batch(fit.rows(order[s:s + bs]))
        seconds = (time.perf_counter() - t0) / len(nets)
        if on_epoch is not None:
            value = on_epoch(epoch + 1, nets, seconds)
            if value is not None and patience:
                best, since = (value, 0) if value > best else (best, since + 1)
                if since >= patience:
                    break
    return nets


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="prepared dataset directory (train.npz, test.npz)")
    ap.add_argument("--config", type=Path, default=None, help="the preset merged over config/config.yaml")
    ap.add_argument("--hidden", type=int, nargs="+", default=[128])
    ap.add_argument("--depth", type=int, nargs="+", default=[1], help="hidden layers (each of --hidden size)")
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--init-std", type=float, nargs="+", default=[0.05])
    ap.add_argument("--batch-size", type=int, nargs="+", default=[128])
    ap.add_argument("--output", choices=sorted(OUTPUTS), nargs="+", default=["dense"])
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=10, help="epochs without a better validation P@1 (0 = never stop)")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--folds", type=int, default=1, help="validation folds (disjoint, each --val-fraction of the "
                    "rows); a trial's score per epoch is their mean validation P@1")
    ap.add_argument("--seed", type=int, default=0, help="validation split and training seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("results/tune/curves.csv"))
    a = ap.parse_args()

    base = merged_config(a.config)
    base["train"]["seed"] = a.seed
    train, test = load_split(a.data / "train.npz"), load_split(a.data / "test.npz")
    splits = carve(train, a.val_fraction, a.seed, a.folds)
    fits, vals = [f for f, _ in splits], [v for _, v in splits]
    print(f"{a.data}: {fits[0].n} fit / {vals[0].n} validation rows x {a.folds} fold(s) (seed {a.seed}), "
          f"{test.n} test rows kept aside; "
          f"{train.n_features} features, {train.n_labels} labels, {a.threads} threads")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    curves, trials = [], []
    grid = list(itertools.product(a.depth, a.hidden, a.lr, a.init_std, a.batch_size, a.output))
    for n, (depth, hidden, lr, init_std, bs, output) in enumerate(grid, 1):
        cfg = trial_config(base, hidden, lr, init_std, bs, output, depth)
        name = f"h{hidden}{f'x{depth}' if depth > 1 else ''}-lr{lr:g}-std{init_std:g}-b{bs}-{output}"
        rows, t_start = [], time.perf_counter()

        def on_epoch(epoch, nets, seconds, rows=rows, name=name):
            ps = [p_at(net, val) for net, val in zip(nets, vals)]
            rows.append({"trial": name, "epoch": epoch, **{f"val_p_at_{k}": float(np.mean([p[k] for p in ps]))
                                                           for k in (1, 3, 5)},
                         "val_p_at_1_folds": " ".join(f"{p[1]:.4f}" for p in ps), "train_seconds": seconds})
            return rows[-1]["val_p_at_1"]

        train_epochs(cfg, fits, a.threads, a.max_epochs, a.seed, on_epoch, a.patience)
        best = max(rows, key=lambda r: (r["val_p_at_1"], -r["epoch"]))
        trials.append({"trial": name, "cfg": cfg, "best": best, "epochs_run": len(rows),
                       "s_per_epoch": float(np.mean([r["train_seconds"] for r in rows])),
                       "longest_wait": _longest_wait([r["val_p_at_1"] for r in rows], best["epoch"])})
        curves += rows
        print(f"[{n}/{len(grid)}] {name}: best validation P@1 {best['val_p_at_1']:.4f} at epoch {best['epoch']} "
              f"({len(rows)} epochs, {time.perf_counter() - t_start:.0f} s)", flush=True)
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(curves[0]))
            w.writeheader()
            w.writerows(curves)

    trials.sort(key=lambda t: (-t["best"]["val_p_at_1"], t["best"]["epoch"]))
    print("\n| trial | best validation P@1 | P@3 | P@5 | at epoch | epochs run | longest wait before the peak | s / epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for t in trials:
        b = t["best"]
        print(f"| {t['trial']} | {b['val_p_at_1']:.4f} | {b['val_p_at_3']:.4f} | {b['val_p_at_5']:.4f} | {b['epoch']} | "
              f"{t['epochs_run']} | {t['longest_wait']} | {t['s_per_epoch']:.3f} |")

    pick = trials[0]
    epochs = pick["best"]["epoch"]
    print(f"\npicked by validation: {pick['trial']}, epoch {epochs}")
    seen = {}
    nets = train_epochs(pick["cfg"], fits, a.threads, epochs, a.seed)
    again = float(np.mean([p_at(net, val)[1] for net, val in zip(nets, vals)]))
    if abs(again - pick["best"]["val_p_at_1"]) > 1e-9:
        print(f"warning: retraining gave validation P@1 {again:.4f}, not {pick['best']['val_p_at_1']:.4f}")
    tests = [p_at(net, test) for net in nets]
    for k, p in enumerate(tests):
        seen[f"fold {k}: fit rows, early-stopped at epoch {epochs}"] = p
    if len(tests) > 1:
        seen["mean of the folds"] = {k: float(np.mean([p[k] for p in tests])) for k in (1, 3, 5)}
    seen[f"all training rows, {epochs} epochs"] = p_at(train_epochs(pick["cfg"], [train], a.threads, epochs, a.seed)[0],
                                                       test)
    print("\n| model | test P@1 | P@3 | P@5 |\n|---|---|---|---|")
    for what, p in seen.items():
        print(f"| {what} | {p[1]:.4f} | {p[3]:.4f} | {p[5]:.4f} |")
    print(f"\ncurves: {a.out}")


def _longest_wait(values: list[float], peak_epoch: int) -> int:
    """Most consecutive epochs without a new best before the peak: the patience that would still have reached it."""
    best, wait, longest = -1.0, 0, 0
    for v in values[:peak_epoch]:
        best, wait = (v, 0) if v > best else (best, wait + 1)
        longest = max(longest, wait)
    return longest


if __name__ == "__main__":
    main()
