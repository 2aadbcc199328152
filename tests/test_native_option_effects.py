"""Two defaults behind the README's accuracy claims have the effect they document, so that a change in the core
that silently drops one fails here:

- `padding: sample` (each sample pads its active set from its own random start) against `padding: batch` (one
  start shared by the batch, as the original code behaves in practice): with `batch`, the random neurons of a batch
  are one run of about `min_active` consecutive neurons; with `sample`, the runs of the samples are spread over
  the layer. Observable as the output-layer rows that one training step changes (sparse Adam updates exactly
  the rows in some sample's active set).
- `init_truncated` (the pipeline's shared init, `model.init_std`): every initial weight within 2 sd; without it,
  about 4.6% of the weights of a normal draw lie outside.

Runs against the installed extension, or the build named by $SLIDE_NATIVE_DIR (see slide.native).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slide.native import native

native()
from slide.network import Network  # noqa: E402  (after native(): honours $SLIDE_NATIVE_DIR)

N_FEATURES, N_LABELS, BATCH, MIN_ACTIVE = 500, 20000, 32, 200
# The shipped code's selection with one DWTA table: it retrieves a few neurons per sample, so the active sets are
# mostly random padding.
UNION = dict(layers=[{"sparsity": 1.0}, {"hash": "dwta", "K": 6, "L": 1, "range_pow": 18, "sparsity": 0.005}],
             select="union", mips=False, random_share=0.0, adam_catchup=False, min_active=MIN_ACTIVE,
             pad_below=MIN_ACTIVE)
# This repository's defaults (k-means cells, top-k budget, half of it random negatives).
TOPK = dict(min_active=MIN_ACTIVE, adam_catchup=False, near_share=0.0)  # every random negative from the padding run


def _batch():
    x = sp.random(BATCH, N_FEATURES, density=0.05, random_state=1, format="csr", dtype=np.float32)
    x.data[:] = 1.0
    labels = [[int(v)] for v in np.random.default_rng(0).integers(0, N_LABELS, BATCH)]
    return x, labels


def _rows_changed_by_one_step(padding: str, options: dict) -> tuple[int, dict]:
    net = Network(N_FEATURES, N_LABELS, hidden=[16], threads=1, seed=3, padding=padding, **options)
    before = net.native.weights(1).copy()
    net.train_batch(*_batch())
    changed = int(np.any(net.native.weights(1) != before, axis=1).sum())
    return changed, net.active_counts


@pytest.mark.parametrize("options", [UNION, TOPK], ids=["union", "topk"])
def test_padding_sample_spreads_the_random_neurons_of_a_batch(options):
    batch, counts = _rows_changed_by_one_step("batch", options)
    sample, counts_s = _rows_changed_by_one_step("sample", options)
    assert counts == counts_s  # the same number of random neurons either way; only where they come from differs
    assert counts["random"] > 10 * MIN_ACTIVE / 2, counts  # random neurons make up much of the active sets
    chosen = counts["labels"] + counts["retrieved"]  # at most this many rows are not random
    # batch: every sample walks the same permutation from the same start, so the random rows of the batch are one
    # run, at most min_active plus the neurons a sample skips because they are already active (its own labels
    # and retrieved ones: fewer than min_active here)
    assert batch <= chosen + 2 * MIN_ACTIVE, (batch, counts)
    # sample: 32 runs from independent starts in 20000 neurons barely overlap, and each adds rows that no other
    # sample touched: about as many as there are random neurons, less the one run that batch padding also has
    assert sample - batch >= 0.7 * counts["random"], (sample, batch, counts)


def _output_weights(**init) -> np.ndarray:
    net = Network(N_FEATURES, N_LABELS, hidden=[16], threads=1, seed=5, **init)
    return net.native.weights(1)


SD = 0.05


def test_init_truncated_keeps_every_weight_within_two_sd():
    w = _output_weights(init_std=SD, init_bias_std=0.0, init_truncated=True)
    assert w.size == N_LABELS * 16
    assert np.abs(w).max() <= 2 * SD * (1 + 1e-6)
    # a normal truncated at 2 sd has sd 0.880 of the untruncated one
    assert w.std() == pytest.approx(0.880 * SD, rel=0.02)


def test_without_init_truncated_weights_fall_outside_two_sd():
    w = _output_weights(init_std=SD, init_bias_std=0.0, init_truncated=False)
    outside = float((np.abs(w) > 2 * SD).mean())
    assert outside == pytest.approx(0.0455, abs=0.005)  # P(|z| > 2) of a standard normal
    assert w.std() == pytest.approx(SD, rel=0.02)


def test_pipeline_config_uses_the_truncated_shared_init():
    """Network.from_config with model.init_std set (the default config) draws truncated weights, zero biases."""
    cfg = {"model": {"hidden": [16], "init_std": SD}, "train": {"lr": 1e-3, "seed": 0},
           "slide": {"layers": [{"sparsity": 1.0}, {"hash": "kmeans", "K": "auto", "L": "auto",
                                                     "range_pow": "auto", "sparsity": 0.005}]}}
    net = Network.from_config(cfg, N_FEATURES, N_LABELS, threads=1)
    w = net.native.weights(1)
    assert np.abs(w).max() <= 2 * SD * (1 + 1e-6)
    assert not np.any(net.native.bias(1))
