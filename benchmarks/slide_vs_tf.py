"""Time-to-accuracy of SLIDE vs TensorFlow full softmax on a prepared dataset, side by side in one run.

    python benchmarks/slide_vs_tf.py results/data/synthetic200k --tf-epochs 2 --slide-epochs 4 --threads 2

Both systems train under the shared protocol (same batches, same evaluation subset, train_seconds without
evaluation). Reports seconds per batch, TF full softmax's final P@1 on the evaluation subset, and when
SLIDE first reaches it (slide.report.summary.time_to_target: interpolated between evaluations), plus the ratios,
and both systems' P@1 at each evaluation step (per-step progress; a reused TF run needs the same --eval-every and --eval-samples).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from slide import defaults
from slide.data.csr import load_split
from slide.report.summary import time_to_target
from slide.training.protocol import TrainConfig, run_training


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared dataset directory (train.npz, test.npz)")
    ap.add_argument("--tf-epochs", type=int, default=2)
    ap.add_argument("--slide-epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=defaults.LR)
    ap.add_argument("--init-std", type=float, default=defaults.INIT_STD)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-samples", type=int, default=1000)
    ap.add_argument("--out", default=None, help="keep runs here (default: a temp dir)")
    ap.add_argument("--slide-option", action="append", default=[], help="key=json for the slide section")
    ap.add_argument("--model-seed", type=int, default=defaults.SEED,
                    help="seed of both systems' initialisation and of SLIDE's hashing and sampling (the batches and the "
                         "evaluation rows keep the protocol's seed)")
    ap.add_argument("--reuse-tf", default=None, help="an earlier --out directory whose tf_full run to reuse")
    a = ap.parse_args()

    train, test = load_split(Path(a.data) / "train.npz"), load_split(Path(a.data) / "test.npz")
    out = Path(a.out or tempfile.mkdtemp(prefix="slide_vs_tf."))
    model = {**defaults.MODEL, "init_std": a.init_std}
    base = dict(batch_size=defaults.BATCH_SIZE, eval_every=a.eval_every, eval_samples=a.eval_samples,
                seed=defaults.SEED)
    results = {}

    import yaml

    slide_cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["slide"]
    slide_cfg.update({k: json.loads(v) for k, v in (s.split("=", 1) for s in a.slide_option)})
    from slide.network import Network
    from slide.training.slide_model import SlideModel

    net = Network.from_config({"model": model, "train": {"lr": a.lr, "seed": a.model_seed}, "slide": slide_cfg},
                              train.n_features, train.n_labels, threads=a.threads)
    results["slide"] = run_training(SlideModel(net, out / "slide" / "lsh.csv"), "slide", train, test,
                                    TrainConfig(epochs=a.slide_epochs, **base), out / "slide")

    if a.reuse_tf:  # the same TF run compared against several SLIDE settings
        import shutil

        (out / "tf_full").mkdir(parents=True, exist_ok=True)
        for name in ("final.json", "metrics.csv"):  # not its model: hundreds of MB per comparison
            shutil.copy2(Path(a.reuse_tf) / "tf_full" / name, out / "tf_full" / name)
        results["tf_full"] = json.loads((out / "tf_full" / "final.json").read_text())
    else:
        from slide.baselines.tf_models import TFBaseline

        tfm = TFBaseline(train.n_features, train.n_labels, hidden=model["hidden"], loss="full", lr=a.lr,
                         seed=a.model_seed, threads=a.threads, init_std=a.init_std)
        results["tf_full"] = run_training(tfm, "tf_full", train, test, TrainConfig(epochs=a.tf_epochs, **base),
                                          out / "tf_full")

    rows = {s: pd.read_csv(out / s / "metrics.csv") for s in results}
    target = float(rows["tf_full"]["p_at_1"].iloc[-1])
    t_tf, t_slide = (time_to_target(rows[s], target) for s in ("tf_full", "slide"))
    spb = {s: results[s]["seconds_per_batch"] for s in results}
    print(f"\ndataset {a.data}: {train.n} train, {train.n_features} features, {train.n_labels} labels; "
          f"{a.threads} threads; runs in {out}")
    print("| system | epochs | s/batch | final P@1 (full test) | last eval P@1 | peak RSS GB |")
    print("|---|---|---|---|---|---|")
    for s, r in results.items():
        print(f"| {s} | {r['epochs']:.0f} | {r['seconds_per_batch']:.4f} | {r['p_at_1']:.3f} | "
              f"{float(rows[s]['p_at_1'].iloc[-1]):.3f} | {r['peak_rss_bytes'] / 1e9:.2f} |")
    steps = rows["tf_full"].merge(rows["slide"], on="step", suffixes=("_tf", "_slide"))
    print("\nper step, P@1 on the evaluation rows (the same batches and rows for both):")
    print("| step | TF full | SLIDE |\n|---|---|---|")
    for _, r in steps.iterrows():
        print(f"| {int(r['step'])} | {r['p_at_1_tf']:.4f} | {r['p_at_1_slide']:.4f} |")
    print(f"\nper-batch speedup SLIDE vs TF full: {spb['tf_full'] / spb['slide']:.1f}x")
    print(f"target = TF full's last evaluation P@1 = {target:.3f}: TF full reached it at {t_tf:.1f} s of training; "
          + (f"SLIDE at {t_slide:.1f} s -> {t_tf / t_slide:.1f}x sooner" if t_slide == t_slide
             else "SLIDE did not reach it"))
    (out / "summary.json").write_text(json.dumps({"target": target, "tf_seconds": t_tf, "slide_seconds": t_slide,  # NaN: never
                                                  "seconds_per_batch": spb}, indent=2))


if __name__ == "__main__":
    main()
