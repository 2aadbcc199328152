"""Train a TF baseline on prepared splits under the shared protocol (used by workflow/scripts/train_tf.py)."""
from __future__ import annotations

import os

from .. import defaults
from ..training.protocol import TrainConfig, load_prepared, run_fingerprint, run_training

SYSTEMS = {"full": "tf_full", "sampled": "tf_sampled"}


def build_model(loss: str, n_features: int, n_labels: int, model_cfg: dict, train_cfg: dict, tf_cfg: dict,
                threads: int | None):
    """A TFBaseline from the config sections `model`, `train`, `tf` (imports TensorFlow)."""
    from .tf_models import TFBaseline, resolve_num_sampled

    return TFBaseline(n_features, n_labels, hidden=model_cfg.get("hidden", defaults.HIDDEN), loss=loss,
                      lr=train_cfg.get("lr", defaults.LR),
                      num_sampled=resolve_num_sampled(tf_cfg, n_labels) if loss == "sampled" else None,
                      seed=train_cfg.get("seed", defaults.SEED), threads=threads,
                      inter_op_threads=tf_cfg.get("inter_op_threads") or threads,
                      cpu_only=tf_cfg.get("device", "auto") == "cpu", init_std=model_cfg.get("init_std"))


def train_tf(loss: str, train_path, test_path, meta_path, out_dir, model_cfg: dict, train_cfg: dict, tf_cfg: dict,
             threads: int | None = None, progress: bool = True) -> dict:
    """Train `loss` ('full' | 'sampled') and write metrics.csv, final.json, model/ in out_dir."""
    if loss not in SYSTEMS:
        raise ValueError(f"loss must be one of {sorted(SYSTEMS)}, got {loss!r}")
    hidden = model_cfg.get("hidden", defaults.HIDDEN)
    train, test, meta = load_prepared(train_path, test_path, meta_path, hidden=hidden)
    model = build_model(loss, train.n_features, train.n_labels, model_cfg, train_cfg, tf_cfg, threads)
    fingerprint = run_fingerprint(loss, {"model": model_cfg, "train": train_cfg, "tf": tf_cfg}, meta,
                                  [train.n, test.n, train.n_features, train.n_labels])
    return run_training(model, SYSTEMS[loss], train, test, TrainConfig.from_config(train_cfg),
                        os.fspath(out_dir), progress=progress, fingerprint=fingerprint)
