"""One training/evaluation protocol shared by SLIDE and the TensorFlow baselines."""
from .protocol import METRICS_COLUMNS, Model, TrainConfig, eval_subset, precision_at_k, run_training

__all__ = ["METRICS_COLUMNS", "Model", "TrainConfig", "eval_subset", "precision_at_k", "run_training"]
