"""TensorFlow baselines: learning, the sampled-softmax math, num_sampled, threads, checkpoints."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

# tf_models first: it sets TensorFlow's environment (allocator, oneDNN) before TF is imported
tf_models = pytest.importorskip("slide.baselines.tf_models")
tf = tf_models.tf

from slide.baselines import sampling  # noqa: E402
from slide.baselines.tf_models import TFBaseline, resolve_num_sampled, sampled_softmax_rows  # noqa: E402
from slide.baselines.train import train_tf  # noqa: E402
from slide.data.csr import Split, save_split  # noqa: E402
from slide.training.protocol import METRICS_COLUMNS, TrainConfig, run_training  # noqa: E402

D, L = 60, 20


def toy_split(n: int, seed: int) -> Split:
    """Learnable toy problem: each label owns 3 indicative features; rows carry 1-3 labels plus noise.

    Every 10th row has no labels (they must contribute 0 to the loss and count as misses in P@k).
    """
    rng = np.random.default_rng(seed)
    own = np.arange(L * 3).reshape(L, 3)  # label j -> features 3j..3j+2
    indptr, indices, lab_ptr, labels = [0], [], [0], []
    for i in range(n):
        ys = [] if i % 10 == 9 else sorted(rng.choice(L, size=rng.integers(1, 4), replace=False))
        feats = set(rng.choice(D, size=2, replace=False))
        for y in ys:
            feats |= set(own[y][rng.random(3) < 0.8])
        feats = sorted(feats)
        indices += feats
        labels += ys
        indptr.append(len(indices))
        lab_ptr.append(len(labels))
    return Split(np.array(indptr, np.int64), np.array(indices, np.int32), np.ones(len(indices), np.float32),
                 np.array(lab_ptr, np.int64), np.array(labels, np.int32), D, L)


@pytest.fixture(scope="module")
def toy():
    return toy_split(800, 1), toy_split(200, 2)


def model(loss: str, **kw) -> TFBaseline:
    args = dict(hidden=[32], loss=loss, lr=1e-2, num_sampled=5 if loss == "sampled" else None, seed=3, threads=1)
    return TFBaseline(D, L, **{**args, **kw})


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_learns_toy_problem_through_protocol(loss, toy, tmp_path):
    train, test = toy
    cfg = TrainConfig(batch_size=32, epochs=4, eval_every=25, eval_samples=100, eval_batch_size=64)
    final = run_training(model(loss), f"tf_{loss}", train, test, cfg, tmp_path, progress=False)

    with open(tmp_path / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == METRICS_COLUMNS
        rows = list(reader)
    losses = [float(r["loss"]) for r in rows[1:]]
    assert losses[-1] < 0.6 * losses[0], losses
    chance = 2 / L  # ~2 labels per row: a random guess hits with p ~ 0.1
    assert float(rows[-1]["p_at_1"]) > 4 * chance, rows[-1]
    on_disk = json.loads((tmp_path / "final.json").read_text())
    assert on_disk == json.loads(json.dumps(final))
    assert on_disk["p_at_1"] > 4 * chance and on_disk["test_samples"] == test.n
    for key in ("p_at_3", "p_at_5", "train_seconds", "peak_rss_bytes", "threads", "tensorflow", "devices",
                "num_sampled", "versions"):
        assert key in on_disk
    assert on_disk["loss"] == loss and on_disk["threads"] == 1
    assert on_disk["num_sampled"] == (5 if loss == "sampled" else None)
    assert (tmp_path / "model" / "model.json").exists() and not (tmp_path / "checkpoint").exists()


def test_full_loss_matches_dense_soft_targets():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6)).astype(np.float32)
    ys = [[1, 4], [], [5]]
    pairs = np.array([0, 0, 2]), np.array([1, 4, 5])  # (row, label)
    got = tf_models.full_softmax_rows(tf.constant(logits), *map(tf.constant, pairs),
                                      tf.constant([.5, .5, 1.], tf.float32), tf.constant([1., 0., 1.])).numpy()
    target = np.zeros_like(logits)
    for i, y in enumerate(ys):
        target[i, y] = 1 / len(y) if y else 0
    want = tf.nn.softmax_cross_entropy_with_logits(target, logits).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got[1] == 0


def test_sampled_loss_equals_tf_sampled_softmax_loss():
    """With T labels on every row our pair-wise form is tf.nn.sampled_softmax_loss(num_true=T)."""
    rng = np.random.default_rng(1)
    n, h, classes, T, S = 6, 8, 50, 3, 10
    w = tf.constant(rng.normal(size=(classes, h)), tf.float32)
    b = tf.constant(rng.normal(size=classes), tf.float32)
    x = tf.constant(rng.normal(size=(n, h)), tf.float32)
    labels = np.stack([np.r_[i % 2, rng.choice(np.arange(2, classes), T - 1, replace=False)] for i in range(n)])
    sv = tf.random.log_uniform_candidate_sampler(labels, T, S, True, classes, seed=7)
    want = tf.nn.sampled_softmax_loss(w, b, labels, x, S, classes, num_true=T, sampled_values=sv,
                                      remove_accidental_hits=True).numpy()
    assert set(sv[0].numpy()) & {0, 1}, "the test needs accidental hits"
    lab_row = np.repeat(np.arange(n), T)
    got = sampled_softmax_rows(w, b, x, lab_row, labels.reshape(-1).astype(np.int64),
                               np.full(n * T, 1 / T, np.float32), np.ones(n, np.float32),
                               sv[0], tf.reshape(sv[1], [-1]), sv[2]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_sampler_matches_tf_expected_counts():
    classes, S = 1000, 100
    cands, tries = sampling.log_uniform_unique(np.random.default_rng(0), S, classes)
    assert len(cands) == S and len(np.unique(cands)) == S and cands.min() >= 0 and cands.max() < classes
    assert tries > S
    # TF's own sampler: its expected counts must be ours for its num_tries (recovered from one candidate)
    tc, _, te = (t.numpy() for t in tf.random.log_uniform_candidate_sampler(
        np.zeros((1, 1), np.int64), 1, S, True, classes, seed=1))
    p = sampling.log_uniform_probability(tc, classes)
    tf_tries = int(round(np.median(np.log1p(-te.astype(np.float64)) / np.log1p(-p))))
    np.testing.assert_allclose(sampling.expected_count(tc, S, tf_tries, classes), te, rtol=1e-3)
    with pytest.raises(ValueError, match="num_sampled"):
        sampling.log_uniform_unique(np.random.default_rng(0), classes + 1, classes)


def test_num_sampled_from_config_and_respected(monkeypatch, toy):
    assert resolve_num_sampled({"num_sampled_fraction": 0.1, "num_sampled": None}, 670091) == 67009 == 670091 // 10
    assert resolve_num_sampled({"num_sampled_fraction": 0.1, "num_sampled": 123}, 1000) == 123
    with pytest.raises(ValueError, match="num_sampled"):
        resolve_num_sampled({"num_sampled": 20}, 20)
    calls = []
    real = sampling.log_uniform_unique

    def spy(rng, num_sampled, range_max):
        cands, tries = real(rng, num_sampled, range_max)
        calls.append((num_sampled, range_max, len(cands)))
        return cands, tries

    monkeypatch.setattr(sampling, "log_uniform_unique", spy)
    m = model("sampled", num_sampled=7)
    args = m.feed(toy[0].rows(np.arange(32)))
    assert len(args[-3]) == 7 and len(args[-1]) == 7 and len(args[-2]) == len(args[4])
    m.train_step(args)
    assert calls == [(7, L, 7)] and m.info()["num_sampled"] == 7


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_batch_without_any_labels_has_zero_loss(loss, toy):
    empty = toy[0].rows(np.arange(9, 200, 10))  # every 10th toy row has no labels
    assert len(empty.labels) == 0
    assert model(loss).train_batch(empty) == 0.0


def test_cpu_only_one_thread(toy):
    m = model("full", cpu_only=True)
    info = m.info()
    assert info["threads"] == 1 and info["inter_op_threads"] == 1 and not info["gpu"]
    assert all("GPU" not in d for d in info["devices"])
    assert np.isfinite(m.train_batch(toy[0].rows(np.arange(16))))
    top = m.predict_topk(toy[1], 5)
    assert top.shape == (toy[1].n, 5) and top.min() >= 0 and top.max() < L


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_checkpoint_round_trip_continues_identically(loss, toy, tmp_path):
    train = toy[0]
    batches = [train.rows(np.arange(s, s + 32)) for s in range(0, 160, 32)]
    a = model(loss)
    for bt in batches[:3]:
        a.train_batch(bt)
    a.save(tmp_path / "m")
    a.save(tmp_path / "m")  # overwriting an existing save is fine
    want = [a.train_batch(bt) for bt in batches[3:]]
    b = model(loss, seed=99)  # other weights and sampler seed: everything must come from the checkpoint
    b.load(tmp_path / "m")
    assert [b.train_batch(bt) for bt in batches[3:]] == want
    for pa, pb in zip(a.params + a.adam_m + a.adam_v, b.params + b.adam_m + b.adam_v):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())


def test_load_rejects_other_shapes(tmp_path):
    model("full").save(tmp_path / "m")
    with pytest.raises(ValueError, match="does not match"):
        TFBaseline(D, L + 1, hidden=[32], threads=1).load(tmp_path / "m")
    with pytest.raises(ValueError, match="not a saved TF baseline"):
        model("full").load(tmp_path / "missing")


class _Killed(Exception):
    pass


def test_resumed_run_matches_uninterrupted(toy, tmp_path):
    """run_training resumes a killed sampled run from its checkpoint and ends with the same metrics."""
    train, test = toy
    cfg = TrainConfig(batch_size=64, epochs=1, eval_every=4, eval_samples=50, eval_batch_size=64,
                      checkpoint_every=5, max_steps=12)
    run_training(model("sampled"), "tf_sampled", train, test, cfg, tmp_path / "ref", progress=False)

    dying = model("sampled")
    real_train = dying.train_batch

    def train_then_die(batch):
        if dying._host_step == 7:
            raise _Killed
        return real_train(batch)

    dying.train_batch = train_then_die
    with pytest.raises(_Killed):
        run_training(dying, "tf_sampled", train, test, cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "checkpoint" / "step-000000000005" / "state.json").exists()
    run_training(model("sampled", seed=3), "tf_sampled", train, test, cfg, tmp_path / "run", progress=False)

    def metrics(d):
        with open(d / "metrics.csv", newline="") as f:
            return list(csv.DictReader(f))

    run, ref = metrics(tmp_path / "run"), metrics(tmp_path / "ref")
    assert [r["step"] for r in run] == [r["step"] for r in ref] == ["0", "4", "8", "12"]
    for k in ("p_at_1", "p_at_3", "p_at_5"):
        assert [r[k] for r in run] == [r[k] for r in ref]
    # the protocol's loss column averages the steps since the last evaluation; after a resume the
    # steps between that evaluation and the checkpoint are gone, so only the next window compares
    assert run[3]["loss"] == ref[3]["loss"]


def test_train_tf_from_prepared_files(toy, tmp_path):
    train, test = toy
    save_split(tmp_path / "train.npz", train)
    save_split(tmp_path / "test.npz", test)
    (tmp_path / "meta.json").write_text(json.dumps({"n": train.n, "d": D, "l": L}))
    train_cfg = {"batch_size": 64, "epochs": 1, "lr": 1e-2, "seed": 0, "eval_every": 5, "eval_samples": 50,
                 "max_steps": 6}
    final = train_tf("sampled", tmp_path / "train.npz", tmp_path / "test.npz", tmp_path / "meta.json",
                     tmp_path / "out", {"hidden": [16]}, train_cfg,
                     {"num_sampled_fraction": 0.25, "num_sampled": None}, threads=1, progress=False)
    assert final["system"] == "tf_sampled" and final["num_sampled"] == 5 and final["steps"] == 6
    assert (tmp_path / "out" / "metrics.csv").exists()
    (tmp_path / "meta.json").write_text("{broken")
    with pytest.raises(ValueError, match="meta.json"):
        train_tf("full", tmp_path / "train.npz", tmp_path / "test.npz", tmp_path / "meta.json",
                 tmp_path / "out2", {"hidden": [16]}, train_cfg, {}, threads=1, progress=False)
