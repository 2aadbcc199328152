"""The network shape and training settings every system starts from: SLIDE (slide.network), the TensorFlow
baselines (slide.baselines) and the benchmark scripts take their defaults from here, and config/config.yaml's
`model:` and `train:` sections hold the same values (tests/test_defaults.py checks both).

Pure Python on purpose: the TensorFlow environment imports it without the native core. SLIDE's own options
(the output layer's hashing, selection, optimiser variants) are the core's option table, not listed here.
"""
from __future__ import annotations

# ---- model: (config `model:`) --------------------------------------------------------------------------------
HIDDEN: tuple[int, ...] = (128,)   # hidden layer sizes (ReLU); input and output sizes come from the data
INIT_STD: float = 0.05             # every system: weights ~ truncated normal(0, INIT_STD), zero biases

# ---- training: (config `train:`) -----------------------------------------------------------------------------
LR: float = 1e-3                   # Adam's learning rate
SEED: int = 0                      # seeds the weights, the batch order, the evaluation subset, SLIDE's sampling
BATCH_SIZE: int = 128
EPOCHS: int = 5
EVAL_EVERY: int = 50               # steps between evaluations on the fixed, seeded evaluation rows
EVAL_SAMPLES: int = 1000           # how many (the same rows for every system)
EVAL_BATCH_SIZE: int = 1024
CHECKPOINT_EVERY: int = 0          # steps; 0 = at the end of every epoch
VALIDATION: float = 0.1            # share of the training rows held out for the curve and model selection
PATIENCE: int = 10                 # evaluations without a new best validation P@1 before stopping

# As config sections (lists where YAML has lists), for code that takes a config dict.
MODEL: dict = {"hidden": list(HIDDEN), "init_std": INIT_STD}
TRAIN: dict = {"batch_size": BATCH_SIZE, "epochs": EPOCHS, "lr": LR, "seed": SEED, "eval_every": EVAL_EVERY,
               "eval_samples": EVAL_SAMPLES, "eval_batch_size": EVAL_BATCH_SIZE, "checkpoint_every": CHECKPOINT_EVERY,
               "validation": VALIDATION, "patience": PATIENCE}
