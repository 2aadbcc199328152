"""TensorFlow 2 baselines: sparse input -> dense ReLU layers -> L logits, full or sampled softmax.

Plain `tf.Variable` + `tf.function` (no Keras), shaped like the original TF1 scripts: weights
truncated_normal(stddev = 2/sqrt(fan_in + fan_out)), zero biases, Adam as `tf.train.AdamOptimizer`
(fused `ResourceApplyAdam`, epsilon 1e-8, dense update of every weight each step). Labels travel as
(row, label) pairs; no dense batch x L target matrix is ever built on the host.

Losses (both average over the rows of the batch; a row without labels contributes 0):
- full:    -sum_j (1/|y|) log softmax(z)[y_j]  (soft targets 1/|y|, as the original), from a
           logsumexp and a gather of the true logits -- no dense targets anywhere.
- sampled: the same, with the softmax taken over the row's own true labels plus `num_sampled`
           log-uniform candidates shared by the batch (logits minus log expected count, candidates
           that are true labels of the row removed): `tf.nn.sampled_softmax_loss`'s logits. The
           original fed one label per sample (num_true=1). For multi-label rows we keep every label
           with weight 1/|y| as (row, label) pairs; this equals tf.nn.sampled_softmax_loss(num_true=T)
           whenever all rows have T labels (tested) and needs no padding when they differ -- padding
           to num_true = max |y| would repeat labels inside the softmax denominator and skew their
           weights (a row [a, b] padded to [a, b, a] gives a 2/3, b 1/3).
Candidates are drawn on the host from a numpy generator seeded by (seed, step) with TF's log-uniform
law and expected counts (sampling.py), so a resumed run draws what an uninterrupted one would have.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep TF's C++ INFO chatter out of the logs
# TF's default CPU allocator returns big buffers (logits, dense gradients: 100s of MB) to the OS, so
# every step page-faults them in again (~40k faults/step at L=20k, measured). Its BFC allocator keeps
# and reuses them. Read when TF creates its CPU allocator (first op), so it must be set before that.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
# oneDNN kernels (runtime ISA dispatch: AVX2/AVX-512) are off by default on CPUs TF does not list
# (e.g. AMD); the generic Eigen matmul here is built for AVX only and measured 2-4x slower.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
import tensorflow as tf  # noqa: E402

from .. import defaults  # noqa: E402
from ..atomic import atomic_dir  # noqa: E402
from ..data.csr import Split  # noqa: E402
from . import sampling  # noqa: E402

LOSSES = ("full", "sampled")
ADAM = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}  # tf.train.AdamOptimizer defaults (the original)
# Rows per prediction call: bounds the dense rows x L logits block (here <= 64M floats = 256 MB).
_PREDICT_LOGITS = 1 << 26


def configure_threads(threads: int | None, inter_op_threads: int | None = None, cpu_only: bool = False) -> None:
    """Set TF's thread pools (and hide GPUs if asked); must run before TF executes its first op.

    Setting the same values again later is allowed; a different value after start-up cannot take
    effect, so we say so on stderr instead of failing (tests build several models in one process).
    """
    wanted = {"intra": threads or 0, "inter": inter_op_threads if inter_op_threads is not None else (threads or 0)}
    try:
        tf.config.threading.set_intra_op_parallelism_threads(wanted["intra"])
        tf.config.threading.set_inter_op_parallelism_threads(wanted["inter"])
    except RuntimeError:
        have = {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter": tf.config.threading.get_inter_op_parallelism_threads()}
        if have != wanted:
            print(f"warning: TensorFlow already started with threads {have}; cannot change to {wanted}",
                  file=sys.stderr)
    if cpu_only:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            if tf.config.get_visible_devices("GPU"):
                raise RuntimeError("tf.device=cpu: TensorFlow already started with a visible GPU") from None


def resolve_num_sampled(tf_cfg: dict, n_labels: int) -> int:
    """num_sampled = tf.num_sampled if set, else round(tf.num_sampled_fraction * L) (original: L // 10)."""
    n = tf_cfg.get("num_sampled")
    if n is None:
        n = max(1, round(float(tf_cfg.get("num_sampled_fraction", 0.1)) * n_labels))
    n = int(n)
    if not 1 <= n < n_labels:
        raise ValueError(f"tf.num_sampled must be in [1, {n_labels - 1}] for {n_labels} labels, got {n}")
    return n


def full_softmax_rows(logits, lab_row, lab, lab_w, has_lab):
    """Per-row soft-target cross-entropy: has_label * logsumexp(z) - sum_j w_j z[y_j]."""
    n = tf.shape(logits)[0]
    lse = tf.reduce_logsumexp(logits, axis=1)
    picked = tf.gather_nd(logits, tf.stack([lab_row, lab], axis=1))
    return has_lab * lse - tf.math.unsorted_segment_sum(lab_w * picked, lab_row, n)


def sampled_softmax_rows(weights, biases, inputs, lab_row, lab, lab_w, has_lab,
                         sampled, true_expected, sampled_expected, remove_accidental_hits=True):
    """Per-row sampled softmax loss over (the row's true labels ∪ the shared sampled candidates).

    Same logits as `tf.nn.sampled_softmax_loss` (subtract log Q, candidates equal to a true label
    of the row set to -FLT_MAX), but true labels come as (row, label) pairs with weights 1/|y|
    instead of a fixed [n, num_true] block: rows with different label counts need no padding,
    which would duplicate labels in the softmax denominator and skew their weights.
    `weights` is [L, hidden] (row per class), as in tf.nn.sampled_softmax_loss.
    """
    n = tf.shape(inputs)[0]
    true_logits = (tf.reduce_sum(tf.gather(inputs, lab_row) * tf.gather(weights, lab), axis=1)
                   + tf.gather(biases, lab) - tf.math.log(true_expected))
    sampled_logits = (tf.matmul(inputs, tf.gather(weights, sampled), transpose_b=True)
                      + tf.gather(biases, sampled) - tf.math.log(sampled_expected))
    if remove_accidental_hits:
        pair, pos, _ = tf.nn.compute_accidental_hits(tf.expand_dims(lab, 1), sampled, num_true=1)
        hit_at = tf.stack([tf.gather(lab_row, tf.cast(pair, tf.int64)), tf.cast(pos, tf.int64)], axis=1)
        hits = tf.scatter_nd(hit_at, tf.ones_like(pair, tf.float32), tf.cast(tf.shape(sampled_logits), tf.int64)) > 0
        sampled_logits = tf.where(hits, tf.float32.min, sampled_logits)
    # logsumexp over each row's own true logits (a ragged set) and its sampled logits
    top = tf.stop_gradient(tf.maximum(tf.reduce_max(sampled_logits, axis=1),
                                      tf.math.unsorted_segment_max(true_logits, lab_row, n)))
    denom = (tf.reduce_sum(tf.exp(sampled_logits - top[:, None]), axis=1)
             + tf.math.unsorted_segment_sum(tf.exp(true_logits - tf.gather(top, lab_row)), lab_row, n))
    lse = top + tf.math.log(denom)
    return has_lab * lse - tf.math.unsorted_segment_sum(lab_w * true_logits, lab_row, n)


def batch_tensors(batch: Split) -> dict[str, np.ndarray]:
    """Host-side feed of one batch: COO indices of the sparse input, (row, label) pairs and weights."""
    n = batch.n
    counts = np.diff(batch.indptr)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    lab_counts = np.diff(batch.label_indptr)
    lab_row = np.repeat(np.arange(n, dtype=np.int64), lab_counts)
    inv = np.zeros(n, dtype=np.float32)
    np.divide(1.0, lab_counts, out=inv, where=lab_counts > 0)
    return {"sp_idx": np.stack([rows, batch.indices.astype(np.int64)], axis=1),
            "sp_val": batch.data, "n": np.int64(n),
            "lab_row": lab_row, "lab": batch.labels.astype(np.int64),
            "lab_w": inv[lab_row], "has_lab": (lab_counts > 0).astype(np.float32)}


def _spec(shape, dtype):
    return tf.TensorSpec(shape, dtype)


_INPUT_SIG = [_spec([None, 2], tf.int64), _spec([None], tf.float32), _spec([], tf.int64)]
_LABEL_SIG = [_spec([None], tf.int64), _spec([None], tf.int64), _spec([None], tf.float32), _spec([None], tf.float32)]
_SAMPLE_SIG = [_spec([None], tf.int64), _spec([None], tf.float32), _spec([None], tf.float32)]


class TFBaseline:
    """A `slide.training.protocol.Model` backed by TensorFlow 2 (full or sampled softmax)."""

    def __init__(self, n_features: int, n_labels: int, hidden=defaults.HIDDEN, loss: str = "full",
                 lr: float = defaults.LR, num_sampled: int | None = None, seed: int = defaults.SEED,
                 threads: int | None = None, inter_op_threads: int | None = None, cpu_only: bool = False,
                 init_std: float | None = None):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if loss == "sampled" and (num_sampled is None or not 1 <= num_sampled < n_labels):
            raise ValueError(f"sampled softmax needs 1 <= num_sampled < {n_labels}, got {num_sampled}")
        configure_threads(threads, inter_op_threads, cpu_only)
        self.d, self.L, self.hidden = int(n_features), int(n_labels), [int(h) for h in hidden]
        self.loss_kind, self.lr, self.seed = loss, float(lr), int(seed)
        self.num_sampled = int(num_sampled) if loss == "sampled" else None

        sizes = [self.d, *self.hidden]
        self.init_std = init_std  # None: the original scripts' 2/sqrt(fan_in + fan_out)
        self.weights = [tf.Variable(_init((a, b), a, b, [seed, i], init_std), name=f"w{i}")
                        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.biases = [tf.Variable(tf.zeros([b]), name=f"b{i}") for i, b in enumerate(sizes[1:])]
        # output layer stored [L, hidden] (one row per class): what sampled softmax gathers from
        self.out_w = tf.Variable(_init((self.L, sizes[-1]), sizes[-1], self.L, [seed, len(sizes)], init_std),
                                 name="w_out")
        self.out_b = tf.Variable(tf.zeros([self.L]), name="b_out")
        self.params = [*self.weights, *self.biases, self.out_w, self.out_b]
        self.adam_m = [tf.Variable(tf.zeros_like(p), name=f"m{i}") for i, p in enumerate(self.params)]
        self.adam_v = [tf.Variable(tf.zeros_like(p), name=f"v{i}") for i, p in enumerate(self.params)]
        self.step = tf.Variable(0, dtype=tf.int64, name="step")
        self._ckpt = tf.train.Checkpoint(params=self.params, adam_m=self.adam_m, adam_v=self.adam_v, step=self.step)
        self._host_step = 0

        step_fn = self._step_full if loss == "full" else self._step_sampled
        sig = _INPUT_SIG + _LABEL_SIG + (_SAMPLE_SIG if loss == "sampled" else [])
        self._train_step = tf.function(step_fn, input_signature=sig)
        self._predict = tf.function(self._topk, input_signature=_INPUT_SIG + [_spec([], tf.int32)])

    # --- graph pieces -------------------------------------------------------------------------
    def _hidden_out(self, sp_idx, sp_val, n):
        x = tf.sparse.SparseTensor(sp_idx, sp_val, tf.stack([n, tf.constant(self.d, tf.int64)]))
        h = tf.nn.relu(tf.sparse.sparse_dense_matmul(x, self.weights[0]) + self.biases[0])
        for w, b in zip(self.weights[1:], self.biases[1:]):
            h = tf.nn.relu(tf.matmul(h, w) + b)
        return h

    def _logits(self, h):
        return tf.matmul(h, self.out_w, transpose_b=True) + self.out_b

    def _step_full(self, sp_idx, sp_val, n, lab_row, lab, lab_w, has_lab):
        with tf.GradientTape() as tape:
            logits = self._logits(self._hidden_out(sp_idx, sp_val, n))
            loss = tf.reduce_mean(full_softmax_rows(logits, lab_row, lab, lab_w, has_lab))
        self._adam(tape.gradient(loss, self.params))
        return loss

    def _step_sampled(self, sp_idx, sp_val, n, lab_row, lab, lab_w, has_lab, sampled, t_exp, s_exp):
        with tf.GradientTape() as tape:
            h = self._hidden_out(sp_idx, sp_val, n)
            loss = tf.reduce_mean(sampled_softmax_rows(self.out_w, self.out_b, h, lab_row, lab, lab_w, has_lab,
                                                       sampled, t_exp, s_exp))
        self._adam(tape.gradient(loss, self.params))
        return loss

    def _adam(self, grads):
        t = tf.cast(self.step.assign_add(1), tf.float32)
        b1p, b2p = tf.pow(ADAM["beta1"], t), tf.pow(ADAM["beta2"], t)
        for p, g, m, v in zip(self.params, grads, self.adam_m, self.adam_v):
            if isinstance(g, tf.IndexedSlices):  # gathered rows: dense update, as tf.train.AdamOptimizer
                g = tf.convert_to_tensor(g)
            tf.raw_ops.ResourceApplyAdam(var=p.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                                         lr=self.lr, beta1=ADAM["beta1"], beta2=ADAM["beta2"],
                                         epsilon=ADAM["epsilon"], grad=g)

    def _topk(self, sp_idx, sp_val, n, k):
        return tf.math.top_k(self._logits(self._hidden_out(sp_idx, sp_val, n)), k=k).indices

    # --- Model protocol -------------------------------------------------------------------------
    def feed(self, batch: Split) -> list:
        """Everything the compiled train step takes for `batch` (includes drawing the candidates)."""
        self._check(batch)
        t = batch_tensors(batch)
        args = [t[k] for k in ("sp_idx", "sp_val", "n", "lab_row", "lab", "lab_w", "has_lab")]
        if self.loss_kind == "sampled":
            args += self.draw_candidates(t["lab"], self._host_step)
        return args

    def draw_candidates(self, labels: np.ndarray, step: int) -> list[np.ndarray]:
        """Log-uniform unique candidates for `step` (seeded by seed and step) and expected counts."""
        rng = np.random.default_rng([self.seed, step, 0x5A3D])
        cands, tries = sampling.log_uniform_unique(rng, self.num_sampled, self.L)
        return [cands, sampling.expected_count(labels, self.num_sampled, tries, self.L),
                sampling.expected_count(cands, self.num_sampled, tries, self.L)]

    def train_step(self, args: list) -> float:
        loss = float(self._train_step(*args))
        self._host_step += 1
        return loss

    def train_batch(self, batch: Split) -> float:
        return self.train_step(self.feed(batch))

    def predict_topk(self, batch: Split, k: int) -> np.ndarray:
        self._check(batch)
        k = min(k, self.L)
        rows = max(1, _PREDICT_LOGITS // self.L)
        out = []
        for s in range(0, batch.n, rows):
            t = batch_tensors(batch.rows(np.arange(s, min(s + rows, batch.n))))
            out.append(self._predict(t["sp_idx"], t["sp_val"], t["n"], np.int32(k)).numpy())
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)

    def save(self, path) -> None:
        """Write all variables and Adam state into directory `path` (replaced atomically)."""
        with atomic_dir(path) as tmp:
            self._ckpt.write(str(tmp / "ckpt"))
            saved = {**self._shape(), "sampler_seed": self.seed}  # the sampler's state is (seed, step)
            (tmp / "model.json").write_text(json.dumps(saved, indent=2) + "\n")

    def load(self, path) -> None:
        path = Path(path)
        try:
            saved = json.loads((path / "model.json").read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a saved TF baseline model ({e})") from None
        seed = saved.pop("sampler_seed", self.seed)
        if saved != self._shape():
            raise ValueError(f"{path}: saved model {saved} does not match this one {self._shape()}")
        self._ckpt.read(str(path / "ckpt")).assert_consumed()
        self.seed, self._host_step = int(seed), int(self.step.numpy())

    def info(self) -> dict:
        devices = [d.name for d in tf.config.list_logical_devices()]
        return {"tensorflow": tf.__version__,
                "versions": {"tensorflow": tf.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
                "threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "devices": devices, "gpu": any("GPU" in d for d in devices),
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                "cpu_allocator_bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"),
                "loss": self.loss_kind, "num_sampled": self.num_sampled, "hidden": self.hidden, "lr": self.lr,
                "optimizer": f"adam (dense, {ADAM})",
                "n_parameters": int(sum(int(np.prod(p.shape)) for p in self.params))}

    def _shape(self) -> dict:
        return {"n_features": self.d, "n_labels": self.L, "hidden": self.hidden, "loss": self.loss_kind,
                "num_sampled": self.num_sampled}

    def _check(self, batch: Split) -> None:
        if batch.n_features != self.d or batch.n_labels != self.L:
            raise ValueError(f"batch has {batch.n_features} features / {batch.n_labels} labels, "
                             f"model expects {self.d} / {self.L}")


def _init(shape, fan_in: int, fan_out: int, seed, init_std: float | None = None) -> tf.Tensor:
    """truncated_normal(stddev = 2/sqrt(fan_in + fan_out)) as the original scripts, or `init_std` when given
    (model.init_std: the same init for every system); seeded, stateless."""
    std = 2.0 / np.sqrt(fan_in + fan_out) if init_std is None else float(init_std)
    return tf.random.stateless_truncated_normal(shape, seed=seed, stddev=std)
