"""Parabel-style label trees (the `omikuji` package): a non-neural reference system for the same prepared data.

Parabel (Prabhu et al., WWW 2018) is what extreme-classification practitioners compare against: a few balanced
2-means label trees with a linear classifier at every node. `omikuji` implements it (its default
hyper-parameters are Parabel's); this module trains it on a prepared split, evaluates it like every other
system and writes the same run files:

    final.json    system "parabel", P@1/3/5 on the whole test set, train_seconds, predict_ms_per_row, threads,
                  the omikuji version and its settings
    metrics.csv   protocol.METRICS_COLUMNS, one row: Parabel has no steps, so its only point is the trained
                  model at its training time (step 0, epoch 0, train_seconds = training time), evaluated on
                  the same rows as the other systems' curves (protocol.evaluation_rows: the seeded subset of
                  the validation rows, or of the test set when train.validation is 0)
    model/        the omikuji model directory

It trains on the rows the other systems train on: with train.validation > 0 the validation rows are held out
(they select nothing here; the reported model is the only one, final.json "selected": "last").

omikuji trains from a file in the Extreme Classification Repository's text format (header `N D L`, then
`l1,l2 f:v f:v` per row, 0-based indices, the format `prepare` reads), so the training split is written to a
temporary file in that format first. `train_seconds` is omikuji's training alone; writing and parsing that
file are reported separately (`data_write_seconds`, `data_load_seconds`).

omikuji draws its clustering's random start from the system's randomness and takes no seed, so two runs
differ a little (Bibtex, 2 threads: test P@1 0.633 to 0.642 over ten runs).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, write_json
from ..data.csr import Split
from ..training.protocol import (METRICS_COLUMNS, TOPK, TrainConfig, evaluation_rows, load_prepared,
                                 peak_rss_bytes, precision_at_k, write_csv)

SYSTEM = "parabel"
# Parabel's settings, as omikuji's defaults: 3 trees, depth up to 20, balanced 2-means clustering of labels.
DEFAULTS = {"trees": 3, "max_depth": 20, "cluster_k": 2}
_MINIMUM = {"trees": 1, "max_depth": 1, "cluster_k": 2}
BEAM_SIZE = 10  # omikuji's default beam width at prediction
_PROGRESS = re.compile(r"\[[=>-]*\]\s+[\d.]+ %")  # omikuji's progress-bar updates (one per example on stderr)


def parabel_settings(cfg: dict | None) -> dict:
    """The settings (trees, max_depth, cluster_k) with defaults filled in; a bad key or value raises ValueError."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"parabel: unknown setting(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < _MINIMUM[key]:
            raise ValueError(f"parabel: {key} must be an integer >= {_MINIMUM[key]}, got {value!r}")
        out[key] = int(value)
    return out


def write_xc_file(split: Split, path: str | os.PathLike) -> None:
    """`split` as Extreme Classification Repository text (0-based labels and features, as omikuji reads them).

    Features are written sorted, duplicates summed; a row without labels starts with a space (the format's
    convention)."""
    indptr, indices, data = _canonical_rows(split)
    lab_ptr, labels = split.label_indptr, split.labels
    with open(path, "w") as f:
        f.write(f"{split.n} {split.n_features} {split.n_labels}\n")
        for i in range(split.n):
            a, b = indptr[i], indptr[i + 1]
            feats = " ".join(f"{j}:{v:.9g}" for j, v in zip(indices[a:b].tolist(), data[a:b].tolist()))
            f.write(",".join(map(str, labels[lab_ptr[i]:lab_ptr[i + 1]].tolist())) + " " + feats + "\n")


def _canonical_rows(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR with each row's features sorted and duplicates summed (omikuji requires strictly increasing indices)."""
    from scipy.sparse import csr_matrix

    m = csr_matrix((split.data, split.indices, split.indptr), shape=(split.n, split.n_features))
    m.sum_duplicates()  # also sorts the indices
    return m.indptr, m.indices, m.data


@contextlib.contextmanager
def _quiet_progress():
    """omikuji draws a progress bar on stderr with an update per example and per label (tens of MB in a log at
    Amazon-670K's size): capture file descriptor 2 while it runs and pass on everything but the bar's updates."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            kept = [p.strip() for p in re.split(r"[\r\n]", text) if p.strip() and not _PROGRESS.search(p)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class ParabelModel:
    """A trained omikuji model with batch top-k prediction on slide.data.Split rows."""

    def __init__(self, model, threads: int):
        self.model = model
        self.threads = threads
        model.init_prediction_thread_pool(threads)

    @classmethod
    def train(cls, train: Split, settings: dict, threads: int, workdir: str | os.PathLike) -> tuple["ParabelModel", dict]:
        """Train on `train` with `settings` (parabel_settings); returns the model and its timings."""
        import omikuji

        if train.n == 0:
            raise ValueError("the train split has no data points; it needs at least one")
        if train.labels.size == 0:
            raise ValueError("the train split has no labels at all; Parabel needs at least one labelled row")
        hp = omikuji.Model.default_hyper_param()
        hp.n_trees, hp.max_depth, hp.cluster_k = settings["trees"], settings["max_depth"], settings["cluster_k"]
        path = Path(workdir) / "train.txt"
        t0 = time.perf_counter()
        write_xc_file(train, path)
        t1 = time.perf_counter()
        # omikuji.Model.train_on_data does these steps in one call; they are separate here so that training is
        # timed without parsing the file (the other systems' train_seconds exclude loading data too).
        lib, ffi = omikuji.lib, omikuji.ffi
        pool = ffi.gc(lib.init_omikuji_thread_pool(threads), lib.free_omikuji_thread_pool)
        with _quiet_progress():
            dataset = lib.load_omikuji_data_set(ffi.new("char[]", os.fsencode(path)), pool)
        if dataset == ffi.NULL:
            raise RuntimeError(f"omikuji could not read the training data written to {path}")
        dataset = ffi.gc(dataset, lib.free_omikuji_data_set)
        t2 = time.perf_counter()
        with _quiet_progress():
            ptr = lib.train_omikuji_model(dataset, hp, pool)
        t3 = time.perf_counter()
        if ptr == ffi.NULL:
            raise RuntimeError("omikuji failed to train a model (details above in the log)")
        del dataset
        path.unlink()
        hyper = {name: getattr(hp, name) for name in dir(hp)}
        hyper["linear_loss_type"] = "hinge" if hyper["linear_loss_type"] == lib.Hinge else "log"
        timings = {"data_write_seconds": t1 - t0, "data_load_seconds": t2 - t1, "train_seconds": t3 - t2,
                   "hyper_parameters": hyper}
        return cls(omikuji.Model(ptr), threads), timings

    def predict_topk(self, batch: Split, k: int = TOPK) -> np.ndarray:
        """(rows, k) label ids, best first; -1 where the trees return fewer than k labels."""
        indptr, indices, data = _canonical_rows(batch)
        out = np.full((batch.n, k), -1, dtype=np.int64)
        predict = self.model.predict
        for i in range(batch.n):
            a, b = indptr[i], indptr[i + 1]
            pred = predict(list(zip(indices[a:b].tolist(), data[a:b].tolist())), beam_size=max(BEAM_SIZE, k), top_k=k)
            if pred:
                out[i, :len(pred)] = [label for label, _ in pred]
        return out

    def save(self, path: str | os.PathLike) -> None:
        """The omikuji model directory at `path`, replaced only once it is complete."""
        with atomic_dir(path) as tmp:
            self.model.save(str(tmp))


def train_parabel(train_path, test_path, meta_path, out_dir, parabel_cfg: dict | None = None,
                  train_cfg: dict | None = None, threads: int | None = None) -> dict:
    """Train Parabel on prepared splits; write final.json, metrics.csv and model/ in out_dir.

    `train_cfg` (the pipeline's `train` section) supplies only the rows: validation share, evaluation subset
    (eval_samples) and seed; `parabel_cfg` the settings (trees, max_depth, cluster_k). Returns the final.json
    dict."""
    import omikuji

    settings = parabel_settings(parabel_cfg)
    cfg = TrainConfig.from_config(dict(train_cfg or {}))
    threads = int(threads or os.cpu_count() or 1)
    train, test, _meta = load_prepared(train_path, test_path, meta_path)
    if test.n == 0:
        raise ValueError(f"{test_path}: the test split has no data points; it needs at least one")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".parabel-data.*"):  # what a killed run left
        shutil.rmtree(stale, ignore_errors=True)
    fit, eval_split, n_validation = evaluation_rows(train, test, cfg)
    fit = fit.split()  # omikuji reads it from a file
    print(f"Parabel (omikuji {omikuji.__version__}): {fit.n} train ({n_validation} more held out for validation) / "
          f"{test.n} test samples, {train.n_features} features, {train.n_labels} labels, {settings}, {threads} threads")

    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".parabel-data.", dir=out) as work:
        model, timings = ParabelModel.train(fit, settings, threads, work)
    print(f"trained in {timings['train_seconds']:.2f} s (writing its input {timings['data_write_seconds']:.2f} s, "
          f"omikuji reading it {timings['data_load_seconds']:.2f} s)")

    p_eval = precision_at_k(model.predict_topk(eval_split), eval_split)
    row = {"system": SYSTEM, "step": 0, "epoch": 0.0, "train_seconds": timings["train_seconds"],
           "wall_seconds": time.perf_counter() - wall0, "p_at_1": p_eval[1], "p_at_3": p_eval[3],
           "p_at_5": p_eval[5], "eval_samples": eval_split.n, "loss": float("nan")}

    t_final = time.perf_counter()
    p = precision_at_k(model.predict_topk(test), test)
    predict_seconds = time.perf_counter() - t_final
    model.save(out / "model")
    wall_seconds = time.perf_counter() - wall0
    last = {"step": 0, "epoch": 0.0, "train_seconds": timings["train_seconds"], "wall_seconds": wall_seconds,
            "p_at_1": p[1], "p_at_3": p[3], "p_at_5": p[5]}
    final = {"system": SYSTEM, "p_at_1": p[1], "p_at_3": p[3], "p_at_5": p[5],
             "selected": "last", "best": None, "last": last, "stopped": "trained",
             "curve": "validation" if n_validation else "test", "validation_samples": n_validation,
             "test_samples": test.n, "steps": 0, "epochs": 0.0, "train_seconds": timings["train_seconds"],
             "data_write_seconds": timings["data_write_seconds"], "data_load_seconds": timings["data_load_seconds"],
             "wall_seconds": wall_seconds, "final_eval_seconds": predict_seconds,
             "predict_ms_per_row": 1e3 * predict_seconds / test.n, "peak_rss_bytes": peak_rss_bytes(),
             "threads": threads, "omikuji_version": omikuji.__version__, "parabel": settings,
             "beam_size": max(BEAM_SIZE, TOPK), "hyper_parameters": timings["hyper_parameters"],
             "config": asdict(cfg)}
    write_csv(out / "metrics.csv", METRICS_COLUMNS, [row])
    write_json(out / "final.json", final)
    return final


__all__ = ["DEFAULTS", "ParabelModel", "parabel_settings", "train_parabel", "write_xc_file"]
