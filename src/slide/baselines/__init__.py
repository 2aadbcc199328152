"""TensorFlow 2 baselines (full softmax, sampled softmax) under the shared training protocol, and a
non-neural reference system.

    slide.baselines.tf_models   TFBaseline (the Model), losses, thread setup (imports TensorFlow)
    slide.baselines.sampling    host-side, step-seeded log-uniform candidate sampler (numpy only)
    slide.baselines.train       train_tf(): prepared splits + config -> run_training
    slide.baselines.parabel     train_parabel(): Parabel-style label trees (omikuji), same run files
"""
from __future__ import annotations

__all__ = ["TFBaseline", "resolve_num_sampled", "train_tf"]


def __getattr__(name):
    # Lazy: importing TensorFlow costs seconds and must come after nothing else has started it.
    if name in ("TFBaseline", "resolve_num_sampled"):
        from . import tf_models

        return getattr(tf_models, name)
    if name == "train_tf":
        from .train import train_tf

        return train_tf
    raise AttributeError(f"module 'slide.baselines' has no attribute {name!r}")
