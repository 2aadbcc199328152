"""SLIDE under different options on one prepared dataset, side by side: P@1 per evaluation step and time
per batch. Shows that an option changes speed but not accuracy per step (or how much it does).

    python benchmarks/slide_options.py results/data/synthetic --epochs 5 \
        --variant sparse_adam '{}' --variant dense_adam '{"dense_adam": true}'

Each variant is a name and a JSON object merged over config/config.yaml's `slide` section. Each trains in a
process of its own, so that its peak memory is its own; the variants run one after the other, in the order
given, on the same batches and evaluation rows.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from slide import defaults
from slide.data.csr import load_split
from slide.network import Network
from slide.training.protocol import TrainConfig, run_training
from slide.training.slide_model import SlideModel

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared dataset directory (train.npz, test.npz)")
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-samples", type=int, default=1000)
    ap.add_argument("--model-seed", type=int, default=None,
                    help="seed of the initialisation, hashing and sampling (default: config/config.yaml's; the batches "
                         "and the evaluation rows keep the protocol's seed)")
    ap.add_argument("--out", help="run directory of one variant (internal: set by the parent process)")
    a = ap.parse_args()

    if a.out:
        [(name, js)] = a.variant
        return train_one(a, name, js, Path(a.out))
    out = Path(tempfile.mkdtemp(prefix="slide_options."))
    curves, finals = {}, {}
    for name, js in a.variant:
        args = [sys.executable, __file__, a.data, "--variant", name, js, "--out", str(out / name)]
        for flag in ("epochs", "max_steps", "threads", "eval_every", "eval_samples", "model_seed"):
            if getattr(a, flag) is not None:
                args += [f"--{flag.replace('_', '-')}", str(getattr(a, flag))]
        subprocess.run(args, check=True)
        finals[name] = json.loads((out / name / "final.json").read_text())
        with open(out / name / "metrics.csv", newline="") as f:
            curves[name] = {int(r["step"]): float(r["p_at_1"]) for r in csv.DictReader(f)}
    names = [n for n, _ in a.variant]
    print(f"\n{a.data}: {a.threads} threads; runs in {out}")
    print("| step | " + " | ".join(f"P@1 {n}" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for step in sorted(curves[names[0]]):
        print(f"| {step} | " + " | ".join(f"{curves[n].get(step, float('nan')):.3f}" for n in names) + " |")
    print("| final (full test) | " + " | ".join(f"{finals[n]['p_at_1']:.3f}" for n in names) + " |")
    print("| s / batch | " + " | ".join(f"{finals[n]['seconds_per_batch']:.4f}" for n in names) + " |")
    print("| peak RSS, MB | " + " | ".join(f"{finals[n]['peak_rss_bytes'] / 2**20:.0f}" for n in names) + " |")
    first = finals[names[0]]
    print(f"| vs {names[0]}: time, RSS | " + " | ".join(
        f"{finals[n]['seconds_per_batch'] / first['seconds_per_batch']:.2f}x, "
        f"{finals[n]['peak_rss_bytes'] / first['peak_rss_bytes']:.2f}x" for n in names) + " |")


def train_one(a, name: str, js: str, out: Path) -> None:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    train, test = load_split(Path(a.data) / "train.npz"), load_split(Path(a.data) / "test.npz")
    cfg = {**config, "slide": {**config["slide"], **json.loads(js)}}
    if a.model_seed is not None:
        cfg["train"] = {**cfg["train"], "seed": a.model_seed}
    net = Network.from_config(cfg, train.n_features, train.n_labels, threads=a.threads)
    tc = TrainConfig(batch_size=defaults.BATCH_SIZE, epochs=a.epochs, max_steps=a.max_steps,
                     eval_every=a.eval_every, eval_samples=a.eval_samples, seed=defaults.SEED)
    run_training(SlideModel(net, out / "lsh.csv"), name, train, test, tc, out, progress=False)


if __name__ == "__main__":
    main()
