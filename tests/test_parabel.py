"""The Parabel reference system (omikuji label trees): our 0-based features and labels reach omikuji unchanged,
the run files follow the shared protocol, bad input fails with one line, and the rule script runs."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from slide.baselines.parabel import ParabelModel, parabel_settings, train_parabel, write_xc_file
from slide.data.csr import Split, save_split
from slide.data.xmlrepo import read_xmlrepo
from slide.training.protocol import METRICS_COLUMNS, eval_subset, precision_at_k, validation_split

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "scripts" / "train_parabel.py"


def one_feature_per_label(n_labels: int, n_features: int, rows_per_label: int, seed: int) -> Split:
    """Label j is present exactly when feature (7j + 3) mod D is (a shifted, scattered map, so an off-by-one
    in features or labels scores 0); every row also has a feature shared by all rows and values other than 1."""
    assert np.gcd(7, n_features) == 1 and n_labels < n_features - 1
    owner = (7 * np.arange(n_labels) + 3) % n_features
    common = next(f for f in range(n_features) if f not in set(owner.tolist()))
    rng = np.random.default_rng(seed)
    ys = rng.permutation(np.repeat(np.arange(n_labels), rows_per_label))
    indptr, indices, data = [0], [], []
    for y in ys:
        feats = sorted([int(owner[y]), common])
        indices += feats
        data += rng.uniform(0.5, 2.0, size=2).tolist()
        indptr.append(len(indices))
    return Split(np.array(indptr, np.int64), np.array(indices, np.int32), np.array(data, np.float32),
                 np.arange(len(ys) + 1, dtype=np.int64), ys.astype(np.int32), n_features, n_labels)


def write_prepared(d: Path, train: Split, test: Split) -> tuple[Path, Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    save_split(d / "train.npz", train)
    save_split(d / "test.npz", test)
    (d / "meta.json").write_text(json.dumps({"n": train.n, "d": train.n_features, "l": train.n_labels}))
    return d / "train.npz", d / "test.npz", d / "meta.json"


@pytest.mark.parametrize("n_labels, n_features", [(12, 40), (260, 600)])  # one leaf; a real tree (> 100 labels)
def test_each_label_determined_by_one_feature_gives_p1_of_one(tmp_path, n_labels, n_features):
    train = one_feature_per_label(n_labels, n_features, rows_per_label=4, seed=0)
    test = one_feature_per_label(n_labels, n_features, rows_per_label=1, seed=1)
    model, timings = ParabelModel.train(train, parabel_settings({}), threads=2, workdir=tmp_path)
    top = model.predict_topk(test, 5)
    assert top.shape == (test.n, 5) and top.dtype == np.int64
    assert np.array_equal(top[:, 0], test.labels)  # P@1 = 1.0, row by row
    assert precision_at_k(top, test)[1] == 1.0
    assert timings["train_seconds"] > 0 and not (tmp_path / "train.txt").exists()
    if n_labels > 100:
        assert model.model.n_trees == 3


def test_fewer_labels_than_k_are_padded_with_minus_one(tmp_path):
    train = one_feature_per_label(3, 10, rows_per_label=5, seed=0)
    model, _ = ParabelModel.train(train, parabel_settings({"trees": 1}), threads=1, workdir=tmp_path)
    top = model.predict_topk(train.rows(np.arange(4)), 5)
    assert (top[:, 3:] == -1).all() and (top[:, :3] >= 0).all()
    assert sorted(top[0, :3].tolist()) == [0, 1, 2]


def test_xc_file_round_trips_through_our_parser(tmp_path):
    # unsorted and duplicate features, a row without labels, a row without features
    s = Split(np.array([0, 3, 4, 4], np.int64), np.array([5, 1, 5, 0], np.int32),
              np.array([0.25, 1.5, 0.5, 3.0], np.float32), np.array([0, 2, 2, 3], np.int64),
              np.array([2, 0, 1], np.int32), 6, 3)
    write_xc_file(s, tmp_path / "d.txt")
    text = (tmp_path / "d.txt").read_text().splitlines()
    assert text == ["3 6 3", "2,0 1:1.5 5:0.75", " 0:3", "1 "]
    back = read_xmlrepo(tmp_path / "d.txt")
    assert (back.n, back.n_features, back.n_labels) == (3, 6, 3)
    assert back.indices.tolist() == [1, 5, 0] and back.data.tolist() == [1.5, 0.75, 3.0]
    assert sorted(back.row_labels(0).tolist()) == [0, 2] and back.row_labels(1).size == 0


def test_train_parabel_writes_protocol_files(tmp_path):
    train = one_feature_per_label(30, 101, rows_per_label=4, seed=0)
    test = one_feature_per_label(30, 101, rows_per_label=3, seed=1)
    paths = write_prepared(tmp_path / "data", train, test)
    out = tmp_path / "run"
    final = train_parabel(*paths, out, parabel_cfg={"trees": 2, "max_depth": 5},
                          train_cfg={"eval_samples": 40, "seed": 3, "lr": 1e-3, "validation": 0}, threads=1)
    assert json.loads((out / "final.json").read_text()) == json.loads(json.dumps(final))
    assert final["system"] == "parabel" and final["p_at_1"] == 1.0 and final["test_samples"] == test.n
    assert final["parabel"] == {"trees": 2, "max_depth": 5, "cluster_k": 2} and final["threads"] == 1
    assert final["hyper_parameters"]["n_trees"] == 2 and final["hyper_parameters"]["max_depth"] == 5
    assert final["omikuji_version"] == __import__("omikuji").__version__
    assert final["curve"] == "test" and final["validation_samples"] == 0 and final["selected"] == "last"
    assert final["last"]["p_at_1"] == final["p_at_1"] and final["last"]["step"] == 0 and final["best"] is None
    assert final["train_seconds"] > 0 and final["predict_ms_per_row"] > 0 and final["peak_rss_bytes"] > 0
    with open(out / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == METRICS_COLUMNS and len(rows) == 1
    row = rows[0]
    assert row["system"] == "parabel" and int(row["step"]) == 0 and float(row["epoch"]) == 0.0
    assert float(row["train_seconds"]) == pytest.approx(final["train_seconds"])
    assert int(row["eval_samples"]) == len(eval_subset(test.n, 40, 3)) == 40
    assert float(row["p_at_1"]) == 1.0 and row["loss"] == "nan"
    assert (out / "model" / "settings.json").exists()
    assert not list(out.glob(".*")), "temporary files left in the run directory"


def test_eval_row_uses_the_shared_seeded_subset(tmp_path):
    """Half the test rows get a label the trees cannot predict: the row's P@1 must be the subset's, not the set's."""
    train = one_feature_per_label(20, 101, rows_per_label=4, seed=0)
    test = one_feature_per_label(20, 101, rows_per_label=5, seed=1)
    wrong = np.arange(test.n) % 2 == 0
    labels = np.where(wrong, (test.labels + 1) % 20, test.labels).astype(np.int32)
    test = Split(test.indptr, test.indices, test.data, test.label_indptr, labels, test.n_features, test.n_labels)
    out = tmp_path / "run"
    final = train_parabel(*write_prepared(tmp_path / "data", train, test), out, {},
                          {"eval_samples": 30, "seed": 0, "validation": 0}, threads=1)
    sub = eval_subset(test.n, 30, 0)
    with open(out / "metrics.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["p_at_1"]) == pytest.approx(1.0 - wrong[sub].mean())
    assert final["p_at_1"] == pytest.approx(0.5)


def test_validation_rows_are_held_out_and_give_the_curve_point(tmp_path):
    """With train.validation, Parabel trains on the other systems' training rows only: a label that only the
    validation rows carry is never learnt, and the metrics row is measured on the validation subset."""
    base = one_feature_per_label(12, 41, rows_per_label=6, seed=0)
    _, val_rows = validation_split(base.n, 0.25, 0)
    labels = base.labels.copy()
    labels[val_rows] = 12                                # only validation rows have label 12
    train = Split(base.indptr, base.indices, base.data, base.label_indptr, labels, 41, 13)
    test = one_feature_per_label(12, 41, rows_per_label=2, seed=1)
    test = Split(test.indptr, test.indices, test.data, test.label_indptr, test.labels, 41, 13)
    out = tmp_path / "run"
    final = train_parabel(*write_prepared(tmp_path / "data", train, test), out, {},
                          {"eval_samples": 10, "seed": 0, "validation": 0.25}, threads=1)
    assert final["curve"] == "validation" and final["validation_samples"] == len(val_rows) == 18
    assert final["p_at_1"] == 1.0                        # test rows: every label but 12 was learnt
    with open(out / "metrics.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert int(row["eval_samples"]) == 10 and float(row["p_at_1"]) == 0.0  # label 12 is never predicted first


@pytest.mark.parametrize("cfg, message", [
    ({"tress": 3}, "parabel: unknown setting(s) tress; known: trees, max_depth, cluster_k"),
    ({"trees": 0}, "parabel: trees must be an integer >= 1, got 0"),
    ({"cluster_k": 1}, "parabel: cluster_k must be an integer >= 2, got 1"),
    ({"max_depth": 2.5}, "parabel: max_depth must be an integer >= 1, got 2.5"),
    ({"trees": True}, "parabel: trees must be an integer >= 1, got True"),
])
def test_bad_settings_are_one_line_errors(cfg, message):
    with pytest.raises(ValueError) as e:
        parabel_settings(cfg)
    assert str(e.value) == message


def test_bad_data_is_a_clear_error(tmp_path):
    train = one_feature_per_label(5, 20, rows_per_label=2, seed=0)
    other = one_feature_per_label(5, 22, rows_per_label=2, seed=1)
    with pytest.raises(ValueError, match=r"test.npz: 22 features / 5 labels, but .*train.npz has 20 / 5"):
        train_parabel(*write_prepared(tmp_path / "a", train, other), tmp_path / "run", threads=1)
    unlabelled = Split(train.indptr, train.indices, train.data, np.zeros(train.n + 1, np.int64),
                       np.zeros(0, np.int32), 20, 5)
    with pytest.raises(ValueError, match="the train split has no labels at all"):
        train_parabel(*write_prepared(tmp_path / "b", unlabelled, train), tmp_path / "run", threads=1)
    paths = write_prepared(tmp_path / "c", train, train)
    paths[2].write_text("{broken")
    with pytest.raises(ValueError, match=r"meta.json:1: invalid JSON"):
        train_parabel(*paths, tmp_path / "run", threads=1)
    assert not (tmp_path / "run" / "final.json").exists()


def _run_script(tmp_path, parabel: dict) -> tuple[subprocess.CompletedProcess, Path]:
    """workflow/scripts/train_parabel.py as Snakemake runs it: a `snakemake` object in its globals."""
    train = one_feature_per_label(15, 50, rows_per_label=4, seed=0)
    test = one_feature_per_label(15, 50, rows_per_label=2, seed=1)
    tr, te, meta = write_prepared(tmp_path / "data", train, test)
    out, log = tmp_path / "runs" / "parabel", tmp_path / "logs" / "train_parabel.log"
    code = textwrap.dedent(f"""
        import runpy
        from types import SimpleNamespace as NS
        sm = NS(input=NS(train={str(tr)!r}, test={str(te)!r}, meta={str(meta)!r}),
                output=NS(final={str(out / "final.json")!r}, metrics={str(out / "metrics.csv")!r}),
                params=NS(model={{"hidden": [128]}}, train={{"eval_samples": 20, "seed": 0, "validation": 0}},
                          parabel={parabel!r}),
                threads=2, log=[{str(log)!r}])
        runpy.run_path({str(SCRIPT)!r}, init_globals={{"snakemake": sm}})
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120), out


def test_rule_script_with_a_snakemake_object(tmp_path):
    r, out = _run_script(tmp_path, {"trees": 2, "max_depth": 20, "cluster_k": 2})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""  # everything went to the log
    final = json.loads((out / "final.json").read_text())
    assert final["p_at_1"] == 1.0 and final["threads"] == 2 and final["parabel"]["trees"] == 2
    log = (tmp_path / "logs" / "train_parabel.log").read_text()
    assert "Parabel (omikuji" in log and "Model training complete" in log
    assert "Examples 1 /" not in log and " %" not in log, "omikuji's progress bar reached the log"


def test_rule_script_error_is_one_terminal_line(tmp_path):
    r, out = _run_script(tmp_path, {"trees": 3, "depth": 4})
    assert r.returncode == 1
    log = tmp_path / "logs" / "train_parabel.log"
    assert r.stderr.strip().splitlines() == [
        f"error: parabel: unknown setting(s) depth; known: trees, max_depth, cluster_k (details: {log})"]
    assert not (out / "final.json").exists()

