"""Training to convergence (slide.training.protocol): the validation split, early stopping on a crafted
validation curve, the caps, the best-validation model as the reported one, and resuming in between."""
import json
import time

import numpy as np
import pytest

from slide.data.csr import Split
from slide.training.protocol import TrainConfig, evaluation_rows, run_training, validation_split

# P@1 the fake model scores after `step` batches (on any rows): a peak at step 2, then lower
CURVE = [0.1, 0.3, 0.6, 0.5, 0.55, 0.4, 0.7, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]


def split(n: int) -> Split:
    """n rows, one feature each, every row labelled 0."""
    ptr = np.arange(n + 1, dtype=np.int64)
    return Split(ptr, np.zeros(n, np.int32), np.ones(n, np.float32), ptr.copy(), np.zeros(n, np.int32), 4, 3)


class CurveModel:
    """Predicts label 0 (a hit) for the first CURVE[step] share of a batch's rows; its state is its step."""

    def __init__(self, die_at=None, sleep=0.0):
        self.step, self.die_at, self.sleep = 0, die_at, sleep

    def train_batch(self, batch):
        if self.step == self.die_at:
            raise KeyboardInterrupt("killed")
        time.sleep(self.sleep)
        self.step += 1
        return 1.0

    def predict_topk(self, batch, k):
        hits = int(round(CURVE[min(self.step, len(CURVE) - 1)] * batch.n))
        out = np.tile(np.arange(1, k + 1), (batch.n, 1))
        out[:hits, 0] = 0
        return out

    def save(self, path):
        path.write_text(json.dumps({"step": self.step}))

    def load(self, path):
        self.step = json.loads(path.read_text())["step"]

    def info(self):
        return {"threads": 1}


def cfg(**kw):
    base = dict(batch_size=10, epochs=3, eval_every=1, eval_samples=20, eval_batch_size=1000, validation=0.2,
                patience=2, seed=0)
    return TrainConfig(**{**base, **kw})


def steps(out):
    return [int(line.split(",")[1]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]


def test_validation_rows_are_a_seeded_disjoint_share_of_the_training_rows():
    tr, va = validation_split(100, 0.2, seed=3)
    assert len(va) == 20 and len(tr) == 80 and not set(tr) & set(va) and sorted([*tr, *va]) == list(range(100))
    assert np.array_equal(va, validation_split(100, 0.2, seed=3)[1])
    assert not np.array_equal(va, validation_split(100, 0.2, seed=4)[1])
    assert len(validation_split(100, 0.0, seed=3)[1]) == 0
    with pytest.raises(ValueError, match="leaves none to train on"):
        validation_split(1, 0.5, seed=0)


def test_early_stopping_stops_at_the_expected_step_and_reports_the_best_model(tmp_path):
    final = run_training(CurveModel(), "fake", split(100), split(50), cfg(), tmp_path, progress=False)
    # evaluations: 0.1 0.3 0.6 (best, step 2) 0.5 0.55 -> two without a new best: stop at step 4
    assert steps(tmp_path) == [0, 1, 2, 3, 4]
    assert final["steps"] == 4 and final["stopped"] == "patience" and final["selected"] == "best_validation"
    assert final["curve"] == "validation" and final["validation_samples"] == 20
    assert final["best"]["step"] == 2 and final["best"]["validation_p_at_1"] == pytest.approx(0.6)
    # test P@1 is that of the best-validation model (step 2), the last step's is reported beside it
    assert final["p_at_1"] == final["best"]["p_at_1"] == pytest.approx(0.6)
    assert final["last"]["step"] == 4 and final["last"]["p_at_1"] == pytest.approx(0.56)  # round(.55 * 50) / 50
    assert json.loads((tmp_path / "model").read_text()) == {"step": 2}  # the kept model is the reported one
    assert not (tmp_path / "best").exists() and not (tmp_path / "checkpoint").exists()


def test_without_validation_every_epoch_runs_and_the_last_step_is_reported(tmp_path):
    final = run_training(CurveModel(), "fake", split(100), split(50), cfg(validation=0.0), tmp_path, progress=False)
    assert final["steps"] == 30 and final["stopped"] == "epochs" and final["selected"] == "last"
    assert final["best"] is None and final["curve"] == "test" and final["p_at_1"] == final["last"]["p_at_1"]
    assert json.loads((tmp_path / "model").read_text()) == {"step": 30}


def test_no_patience_runs_to_the_epoch_cap_and_still_picks_the_best(tmp_path):
    final = run_training(CurveModel(), "fake", split(100), split(50), cfg(patience=0, epochs=1), tmp_path,
                         progress=False)
    assert final["steps"] == 8 and final["stopped"] == "epochs" and final["best"]["step"] == 6
    assert final["p_at_1"] == pytest.approx(0.7)


def test_the_seconds_cap_stops_training_with_an_evaluation_at_the_last_step(tmp_path):
    final = run_training(CurveModel(sleep=0.05), "fake", split(100), split(50),
                         cfg(eval_every=100, patience=0, max_seconds=0.12), tmp_path, progress=False)
    assert final["stopped"] == "max_seconds" and 2 <= final["steps"] < 24
    assert steps(tmp_path) == [0, final["steps"]]  # the cap forces the evaluation that ends the curve


def test_a_killed_run_resumes_with_the_best_model_its_checkpoint_refers_to(tmp_path):
    ref = run_training(CurveModel(), "fake", split(100), split(50), cfg(patience=4), tmp_path / "ref",
                       progress=False)
    assert ref["best"]["step"] == 6 and ref["steps"] == 10
    run = tmp_path / "run"
    # checkpoint at step 5 (best: step 2); killed at step 7, after the new best of step 6 was saved
    with pytest.raises(KeyboardInterrupt):
        run_training(CurveModel(die_at=7), "fake", split(100), split(50), cfg(patience=4, checkpoint_every=5), run,
                     progress=False)
    assert sorted(p.name for p in (run / "best").iterdir()) == ["step-000000000002", "step-000000000006"]
    assert [p.name for p in (run / "checkpoint").iterdir()] == ["step-000000000005"]
    final = run_training(CurveModel(), "fake", split(100), split(50), cfg(patience=4, checkpoint_every=5), run,
                         progress=False)
    assert steps(run) == steps(tmp_path / "ref")
    for key in ("p_at_1", "steps", "stopped"):
        assert final[key] == ref[key], key
    assert final["best"]["step"] == 6 and json.loads((run / "model").read_text()) == {"step": 6}


def test_a_damaged_best_model_stops_the_resume_with_its_name(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_training(CurveModel(die_at=7), "fake", split(100), split(50), cfg(patience=4, checkpoint_every=5),
                     tmp_path, progress=False)
    (tmp_path / "best" / "step-000000000002" / "model").write_text('{"step": 3}')
    with pytest.raises(ValueError, match=r"step-000000000002: cannot resume with this best-validation model"):
        run_training(CurveModel(), "fake", split(100), split(50), cfg(patience=4, checkpoint_every=5), tmp_path,
                     progress=False)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"train.validation must be in \[0, 1\)"):
        TrainConfig(validation=1.0)
    with pytest.raises(ValueError, match="train.max_seconds must be > 0"):
        TrainConfig(max_seconds=0)


def test_train_config_defaults_are_those_of_config_yaml():
    from dataclasses import asdict
    from pathlib import Path

    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())["train"]
    defaults = asdict(TrainConfig())
    assert {k: shipped[k] for k in defaults} == defaults


def test_the_training_rows_are_a_view_that_batches_like_the_copied_rows():
    """Holding out validation rows keeps one copy of the training data: the training rows are a view of the
    training split whose batches equal those of the copied rows."""
    train = split(100)
    view, _, n_val = evaluation_rows(train, split(50), cfg())
    kept, _ = validation_split(100, cfg().validation, cfg().seed)
    assert n_val == 100 - len(kept) and view.n == len(kept) and view.base is train
    copied = train.rows(kept)
    for idx in (np.arange(10), np.array([7, 3, 3, 0])):
        a, b = view.rows(idx), copied.rows(idx)
        for field in ("indptr", "indices", "data", "label_indptr", "labels"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    full = view.split()
    np.testing.assert_array_equal(full.indices, copied.indices)
    whole, _, _ = evaluation_rows(train, split(50), cfg(validation=0.0))
    assert whole.n == 100 and whole.split() is train  # nothing held out: no copy either
