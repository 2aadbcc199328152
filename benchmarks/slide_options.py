"""SLIDE under different options on one prepared dataset, side by side: P@1 per evaluation step and time
per batch. Shows that an option changes speed but not accuracy per step (or how much it does).

    python benchmarks/slide_options.py results/data/synthetic --epochs 5 \
        --variant sparse_adam '{}' --variant dense_adam '{"dense_adam": true}'

Each variant is a name and a JSON object merged over config/config.yaml's `slide` section.
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import yaml

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
    a = ap.parse_args()

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    train, test = load_split(Path(a.data) / "train.npz"), load_split(Path(a.data) / "test.npz")
    out = Path(tempfile.mkdtemp(prefix="slide_options."))
    curves, finals = {}, {}
    for name, js in a.variant:
        cfg = {**config, "slide": {**config["slide"], **json.loads(js)}}
        net = Network.from_config(cfg, train.n_features, train.n_labels, threads=a.threads)
        tc = TrainConfig(batch_size=128, epochs=a.epochs, max_steps=a.max_steps, eval_every=a.eval_every,
                         eval_samples=a.eval_samples, seed=0)
        finals[name] = run_training(SlideModel(net, out / name / "lsh.csv"), name, train, test, tc, out / name, progress=False)
        with open(out / name / "metrics.csv", newline="") as f:
            curves[name] = {int(r["step"]): float(r["p_at_1"]) for r in csv.DictReader(f)}
    names = [n for n, _ in a.variant]
    print(f"\n{a.data}: {train.n} train, {train.n_labels} labels, {a.threads} threads")
    print("| step | " + " | ".join(f"P@1 {n}" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for step in sorted(curves[names[0]]):
        print(f"| {step} | " + " | ".join(f"{curves[n].get(step, float('nan')):.3f}" for n in names) + " |")
    print("| final (full test) | " + " | ".join(f"{finals[n]['p_at_1']:.3f}" for n in names) + " |")
    print("| s / batch | " + " | ".join(f"{finals[n]['seconds_per_batch']:.4f}" for n in names) + " |")


if __name__ == "__main__":
    main()
