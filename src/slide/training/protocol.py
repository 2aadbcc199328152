"""The shared protocol: same batches, same evaluation samples and steps, same files for every system.

A system plugs in as a `Model` (train one batch, predict top-k, save/load); `run_training` owns the
loop, the clocks, evaluation, checkpoints and the output files (metrics.csv, final.json).

Training to convergence: with `validation` > 0 a seeded share of the training rows is held out; the
periodic evaluation (the curve in metrics.csv) then runs on it, the best-validation model is kept, training
stops after `patience` evaluations without a new best (or at the `epochs` / `max_seconds` cap), and the
reported test P@k are those of the best-validation model (the last step's are reported too). The test set
is never looked at to pick anything.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import defaults
from ..atomic import atomic_path, current_umask, fsync_path, fsync_tree, read_json, sha256_file, write_json
from ..data.csr import RowView, Split, load_split
from ..memory import network_bytes, require_memory

METRICS_COLUMNS = ["system", "step", "epoch", "train_seconds", "wall_seconds",
                   "p_at_1", "p_at_3", "p_at_5", "eval_samples", "loss"]
TOPK = 5
_COLUMN_TYPES = {"system": str, "step": int, "eval_samples": int}


class Model(Protocol):
    def train_batch(self, batch: Split) -> float: ...            # returns the batch's mean loss
    def predict_topk(self, batch: Split, k: int) -> np.ndarray: ...  # (n, k) label ids, best first
    def save(self, path: Path) -> None: ...
    def load(self, path: Path) -> None: ...
    def info(self) -> dict: ...                                   # threads, versions, ISA, ... for final.json
    # Optional: `diagnostics(step, eval_split)` at every evaluation (outside the training clock) and
    # `final_extras(test, batch_size) -> dict` merged into final.json.


@dataclass
class TrainConfig:
    """The `train:` section (defaults: slide.defaults, the same as config/config.yaml's)."""
    batch_size: int = defaults.BATCH_SIZE
    epochs: int = defaults.EPOCHS              # cap in epochs
    eval_every: int = defaults.EVAL_EVERY      # steps between periodic evaluations
    eval_samples: int = defaults.EVAL_SAMPLES  # size of the fixed, seeded evaluation rows (same rows for every system)
    eval_batch_size: int = defaults.EVAL_BATCH_SIZE
    checkpoint_every: int = defaults.CHECKPOINT_EVERY  # steps; 0 = only at the end of each epoch
    max_steps: int | None = None   # stop early (tests, smoke runs)
    seed: int = defaults.SEED
    validation: float = defaults.VALIDATION  # share of the training rows held out for the curve and model selection; 0: none
                                   # (the curve is then a test subset and the last step is reported)
    patience: int = defaults.PATIENCE  # evaluations without a new best validation P@1 before stopping; 0: never early
    max_seconds: float | None = None  # cap in wall-clock seconds of the training loop (evaluation included)

    def __post_init__(self):
        if not 0 <= self.validation < 1:
            raise ValueError(f"train.validation must be in [0, 1), got {self.validation}")
        if self.patience < 0:
            raise ValueError(f"train.patience must be >= 0, got {self.patience}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"train.max_seconds must be > 0 (or null), got {self.max_seconds}")

    @classmethod
    def from_config(cls, cfg: dict) -> "TrainConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in cfg.items() if k in known})


def load_prepared(train_path, test_path, meta_path, hidden=None) -> tuple[Split, Split, dict]:
    """The prepared dataset every trainer reads: both splits (same dimensions) and meta.json.

    With `hidden`, a network of those layers on the data's dimensions must fit in memory (checked
    before anything that large is allocated)."""
    train, test = load_split(train_path), load_split(test_path)
    meta = read_json(meta_path)
    if (train.n_features, train.n_labels) != (test.n_features, test.n_labels):
        raise ValueError(f"{test_path}: {test.n_features} features / {test.n_labels} labels, but {train_path} has "
                         f"{train.n_features} / {train.n_labels}")
    if hidden is not None:
        require_memory(network_bytes(train.n_features, train.n_labels, hidden),
                       f"{train_path}: a network {train.n_features} -> {' -> '.join(map(str, hidden))} -> "
                       f"{train.n_labels} (weights and Adam moments)")
    return train, test, meta


def run_fingerprint(*parts) -> str:
    """Digest of everything that defines a run (not the thread count): a checkpoint of another run is not resumed."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def eval_subset(n_test: int, size: int, seed: int) -> np.ndarray:
    """Fixed, seeded, sorted subset of test rows used for periodic evaluation."""
    size = min(size, n_test)
    return np.sort(np.random.default_rng([seed, 0xE5A1]).choice(n_test, size=size, replace=False))


def validation_split(n_train: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): a seeded share `fraction` of the training split held out, both sorted.

    fraction 0: every row trains and none validates."""
    if fraction <= 0:
        return np.arange(n_train), np.zeros(0, dtype=np.int64)
    n_val = max(1, int(round(fraction * n_train)))
    if n_val >= n_train:
        raise ValueError(f"train.validation {fraction} of {n_train} training rows leaves none to train on")
    perm = np.random.default_rng([seed, 0x7A1D]).permutation(n_train)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def evaluation_rows(train: Split, test: Split, cfg: TrainConfig) -> tuple[RowView, Split, int]:
    """(rows to train on, as a view of `train`; rows of the periodic evaluation; number of validation rows)
    under `cfg`: with cfg.validation > 0 the evaluation subset comes from the held-out training rows, else from
    the test set. Every system (also one that is not trained by `run_training`) evaluates its curve on these
    rows."""
    train_rows, val_rows = validation_split(train.n, cfg.validation, cfg.seed)
    if val_rows.size:
        valid = RowView(train, val_rows)
        return (RowView(train, train_rows), valid.rows(eval_subset(valid.n, cfg.eval_samples, cfg.seed)),
                int(val_rows.size))
    return RowView(train, np.arange(train.n)), test.rows(eval_subset(test.n, cfg.eval_samples, cfg.seed)), 0


def batch_order(n_train: int, epoch: int, seed: int) -> np.ndarray:
    """Row order of one epoch: a seeded permutation, identical for every system."""
    return np.random.default_rng([seed, epoch]).permutation(n_train)


def precision_at_k(topk: np.ndarray, split: Split, ks=(1, 3, 5)) -> dict[int, float]:
    """P@k = mean over rows of |top-k ∩ labels| / k (rows with no labels count as 0, as in XMLRepository)."""
    n = split.n
    if topk.shape[0] != n:
        raise ValueError(f"predictions for {topk.shape[0]} rows, split has {n}")
    hits = np.zeros((n, topk.shape[1]), dtype=bool)
    lab_ptr, labels = split.label_indptr, split.labels
    for i in range(n):
        row = labels[lab_ptr[i]:lab_ptr[i + 1]]
        if len(row):
            hits[i] = np.isin(topk[i], row)
    return {k: float(hits[:, :k].sum(axis=1).mean() / k) if n else 0.0 for k in ks}


def evaluate(model: Model, split: Split, batch_size: int) -> dict[int, float]:
    preds = [model.predict_topk(split.rows(np.arange(s, min(s + batch_size, split.n))), TOPK)
             for s in range(0, split.n, batch_size)]
    return precision_at_k(np.concatenate(preds) if preds else np.zeros((0, TOPK), np.int64), split)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process's own address space, reserved hugepages included (see
    `status_peak_bytes`); getrusage's ru_maxrss where /proc is missing."""
    core = sys.modules.get("slide._native")  # loaded by whoever trained SLIDE here; never loaded just for this
    peak_of = getattr(core, "hugetlb_peak_bytes", None)  # absent from builds of older sources (benchmarks load them)
    mapped = peak_of() if peak_of is not None else 0
    try:
        peak = status_peak_bytes(Path("/proc/self/status").read_text(), mapped)
        if peak is not None:
            return peak
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + mapped  # Linux reports KiB


def status_peak_bytes(status: str, hugetlb_peak: int = 0) -> int | None:
    """VmHWM from a /proc/<pid>/status text plus the reserved hugepages, in bytes; None without VmHWM.

    VmHWM, not ru_maxrss: that one survives exec, so a job started by a large process (Snakemake, pytest)
    would report its parent's size. Neither counts pages from the host's reserved hugepage pool, where the
    native core maps its large arrays when there is one. So the larger of the hugepages mapped now
    (HugetlbPages) and the core's own peak of them (`hugetlb_peak`, bytes) is added: a network freed before
    the call still counts."""
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmHWM" not in fields:
        return None
    kib = {key: int(fields.get(key, "0 kB").split()[0]) for key in ("VmHWM", "HugetlbPages")}
    return kib["VmHWM"] * 1024 + max(kib["HugetlbPages"] * 1024, hugetlb_peak)


@dataclass
class _State:
    step: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    fingerprint: str = ""
    pending_losses: list | None = None  # training losses since the last evaluation (for the next row's mean)
    files: dict | None = None  # sha256 of every other file of the checkpoint (model, metrics.csv), checked on resume
    best: dict | None = None   # the best validation evaluation so far: step, epoch, train/wall seconds, P@1/3/5
    evals_since_best: int = 0  # evaluations since `best` (early stopping)


def run_training(model: Model, system: str, train: Split, test: Split, cfg: TrainConfig,
                 out_dir: str | os.PathLike, progress: bool = True, fingerprint: str = "") -> dict:
    """Train `model` under the shared protocol; write metrics.csv, final.json and checkpoints in out_dir.

    Resumes from out_dir/checkpoint if a killed run with the same `fingerprint` (a digest of
    everything that defines the run: config, data) left one; the checkpoint is removed on success.
    The checkpoint carries the metrics rows written so far, so a rerun rebuilds metrics.csv even
    when Snakemake deleted it (docs/robustness.md). With a validation split, the best-validation model
    lives in out_dir/best/step-<N>/ (written atomically, like a checkpoint, and kept as long as a
    checkpoint refers to it); out_dir/model is the reported model. Returns the final.json dict.
    """
    from tqdm import tqdm

    if train.n == 0 or test.n == 0:  # `prepare` refuses such data; direct callers get the same message
        raise ValueError(f"the {'train' if train.n == 0 else 'test'} split has no data points; it needs at least one")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir, best_dir, metrics_path = out / "checkpoint", out / "best", out / "metrics.csv"
    train, eval_split, n_validation = evaluation_rows(train, test, cfg)
    validating = n_validation > 0
    steps_per_epoch = -(-train.n // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)

    fingerprint = fingerprint or json.dumps(asdict(cfg), sort_keys=True)
    _remove_partial_outputs(out)
    state, rows = _resume(model, ckpt_dir, fingerprint)
    if state.step:
        print(f"[{system}] resuming from step {state.step} ({ckpt_dir})", file=sys.stderr)
        _write_metrics(metrics_path, rows)  # the rows so far, also when metrics.csv was deleted
    _resume_best(best_dir, state)
    saved_best = state.best["step"] if state.best else None  # the best model the newest checkpoint refers to
    wall0 = time.perf_counter() - state.wall_seconds
    losses: list[float] = list(state.pending_losses or [])

    def record(step: int):
        nonlocal saved_best
        t_eval = time.perf_counter()
        p = evaluate(model, eval_split, cfg.eval_batch_size)
        eval_time = time.perf_counter() - t_eval
        rows.append({"system": system, "step": step, "epoch": step / steps_per_epoch,
                     "train_seconds": state.train_seconds,
                     "wall_seconds": time.perf_counter() - wall0,
                     "p_at_1": p[1], "p_at_3": p[3], "p_at_5": p[5],
                     "eval_samples": eval_split.n,
                     "loss": float(np.mean(losses)) if losses else float("nan")})
        losses.clear()
        _write_metrics(metrics_path, rows)
        if validating:
            if state.best is None or p[1] > state.best["validation_p_at_1"]:
                state.best = {"step": step, "epoch": step / steps_per_epoch, "train_seconds": state.train_seconds,
                              "wall_seconds": rows[-1]["wall_seconds"], "validation_p_at_1": p[1],
                              "validation_p_at_3": p[3], "validation_p_at_5": p[5]}
                state.evals_since_best = 0
                _save_best(model, best_dir, step, keep={saved_best})
            else:
                state.evals_since_best += 1
        if hasattr(model, "diagnostics"):
            model.diagnostics(step, eval_split)
        bar.set_postfix(p1=f"{p[1]:.3f}", eval_s=f"{eval_time:.1f}")

    def stop_reason() -> str:
        """Why training stops after the evaluation just recorded ("" = it goes on)."""
        if validating and cfg.patience and state.evals_since_best >= cfg.patience:
            return "patience"
        if cfg.max_seconds is not None and time.perf_counter() - wall0 >= cfg.max_seconds:
            return "max_seconds"
        return ""

    bar = tqdm(total=total, initial=state.step, desc=f"train {system}", unit="batch",
               disable=not progress, file=sys.stderr, mininterval=2.0)
    if state.step == 0:
        record(0)
    order_epoch, order = -1, None
    stopped = ""
    while state.step < total and not stopped:
        epoch, b = divmod(state.step, steps_per_epoch)
        if epoch != order_epoch:
            order, order_epoch = batch_order(train.n, epoch, cfg.seed), epoch
        t0 = time.perf_counter()
        batch = train.rows(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
        losses.append(float(model.train_batch(batch)))
        state.train_seconds += time.perf_counter() - t0
        state.step += 1
        bar.update(1)
        over_time = cfg.max_seconds is not None and time.perf_counter() - wall0 >= cfg.max_seconds
        if state.step % cfg.eval_every == 0 or state.step == total or over_time:
            record(state.step)
            stopped = stop_reason()
        end_of_epoch = state.step % steps_per_epoch == 0
        if (not stopped and state.step < total
                and ((cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0) or end_of_epoch)):
            state.wall_seconds = time.perf_counter() - wall0
            state.pending_losses = list(losses)
            _checkpoint(model, ckpt_dir, state, rows, fingerprint)
            saved_best = state.best["step"] if state.best else None
            if saved_best is not None:
                _remove_all_but(best_dir, {best_dir / _step_name(saved_best)}, marker="best.json")
    bar.close()
    stopped = stopped or ("max_steps" if cfg.max_steps is not None and total == cfg.max_steps else "epochs")

    t_final = time.perf_counter()
    wall_seconds = t_final - wall0
    p = evaluate(model, test, cfg.eval_batch_size)
    last = {"step": state.step, "epoch": state.step / steps_per_epoch, "train_seconds": state.train_seconds,
            "wall_seconds": wall_seconds, "p_at_1": p[1], "p_at_3": p[3], "p_at_5": p[5]}
    best = None
    if validating:  # the reported model: the best on the validation rows, tested once
        if state.best["step"] != state.step:
            model.load(best_dir / _step_name(state.best["step"]) / "model")
            p = evaluate(model, test, cfg.eval_batch_size)
        best = {**state.best, "p_at_1": p[1], "p_at_3": p[3], "p_at_5": p[5]}
    final = {"system": system, "p_at_1": p[1], "p_at_3": p[3], "p_at_5": p[5],
             "selected": "best_validation" if validating else "last", "best": best, "last": last,
             "stopped": stopped, "curve": "validation" if validating else "test",
             "validation_samples": n_validation,
             "test_samples": test.n, "steps": state.step, "epochs": state.step / steps_per_epoch,
             "train_seconds": state.train_seconds,
             "seconds_per_batch": state.train_seconds / max(state.step, 1),
             "wall_seconds": wall_seconds,
             "final_eval_seconds": time.perf_counter() - t_final,
             "peak_rss_bytes": peak_rss_bytes(), "config": asdict(cfg), **model.info()}
    if hasattr(model, "final_extras"):
        final.update(model.final_extras(test, cfg.eval_batch_size))
    model.save(out / "model")
    write_json(out / "final.json", final)
    _remove_checkpoints(ckpt_dir)
    _remove_checkpoints(best_dir, marker="best.json")
    return final


def _step_name(step: int) -> str:
    return f"step-{step:012d}"


def _publish_step(parent: Path, step: int, fill) -> Path:
    """Create parent/step-<N> atomically: fill(tmp) writes it in a temporary folder, which is fsync'd and then
    renamed into place, so a kill at any moment leaves either no folder or a complete one. A folder already
    there (a resumed deterministic run saved this step before) is kept. Returns the folder."""
    parent.mkdir(parents=True, exist_ok=True)
    dest = parent / _step_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=".step-", dir=parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700; give it the permissions of a plain mkdir
        fill(tmp)
        fsync_tree(tmp)
        if dest.exists():
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, dest)
        fsync_path(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _save_best(model: Model, best_dir: Path, step: int, keep: set) -> None:
    """Write best/step-<N>/{model, best.json} atomically (like a checkpoint: a temporary folder renamed into
    place), then remove the other best models except those in `keep` (steps a checkpoint still refers to)."""
    def fill(tmp: Path) -> None:
        model.save(tmp / "model")
        write_json(tmp / "best.json", {"step": step, "files": _digests(tmp)})

    dest = _publish_step(best_dir, step, fill)
    _remove_all_but(best_dir, {dest} | {best_dir / _step_name(s) for s in keep if s is not None}, marker="best.json")


def _resume_best(best_dir: Path, state: _State) -> None:
    """Keep exactly the best model the resumed state refers to (checked against its sha256); a fresh start
    removes any best models a killed run left."""
    if not best_dir.is_dir():
        if state.best is not None:
            raise ValueError(f"{best_dir}: missing, but the checkpoint refers to the best model of step "
                             f"{state.best['step']}; delete {best_dir.parent / 'checkpoint'} to start the run over")
        return
    if state.best is None:
        _remove_checkpoints(best_dir, marker="best.json")
        return
    keep = best_dir / _step_name(state.best["step"])
    _remove_all_but(best_dir, {keep}, marker="best.json")
    try:
        recorded = read_json(keep / "best.json")["files"]
        if _digests(keep, exclude="best.json") != recorded:
            raise ValueError("its files differ from the sha256 recorded in best.json")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{keep}: cannot resume with this best-validation model ({e}); delete "
                         f"{best_dir.parent / 'checkpoint'} and {best_dir} to start the run over") from None


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Rows as CSV, atomically (a reader never sees a half-written file)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def read_csv(path: Path, columns: list[str], types: dict) -> list[dict]:
    """Rows of a write_csv file; each column converted by types[column] (float when absent)."""
    with open(path, newline="") as f:
        return [{k: types.get(k, float)(r[k]) for k in columns} for r in csv.DictReader(f)]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    write_csv(path, METRICS_COLUMNS, rows)


def _remove_partial_outputs(out: Path) -> None:
    """Temporaries of the final model that a killed run left (the model saves through `.model.*`)."""
    for entry in out.glob(".model.*"):
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _checkpoint(model: Model, ckpt_dir: Path, state: _State, rows: list[dict], fingerprint: str) -> None:
    """Write checkpoint/step-<N>/{model, metrics.csv, state.json} so that a kill at any moment leaves a
    complete checkpoint: everything is written and fsync'd in a temporary folder that is then renamed
    into place; only then are the previous checkpoint and any leftovers removed.

    The metrics rows come from memory, not from metrics.csv: Snakemake deletes a rerun job's outputs.
    """
    def fill(tmp: Path) -> None:
        model.save(tmp / "model")
        _write_metrics(tmp / "metrics.csv", rows)
        state.fingerprint = fingerprint
        state.files = _digests(tmp)
        write_json(tmp / "state.json", asdict(state))

    dest = _publish_step(ckpt_dir, state.step, fill)
    _remove_all_but(ckpt_dir, {dest})


def _digests(folder: Path, exclude: str = "") -> dict[str, str]:
    """sha256 of every file below `folder` by relative path (a TF model is a directory)."""
    return {f.relative_to(folder).as_posix(): sha256_file(f) for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != exclude}


def _remove_all_but(ckpt_dir: Path, keep: set[Path], marker: str = "state.json") -> None:
    if not ckpt_dir.is_dir():
        return
    for entry in ckpt_dir.iterdir():
        if entry in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            # the marker first: a folder whose removal is killed half-way must not look complete
            (entry / marker).unlink(missing_ok=True)
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _remove_checkpoints(ckpt_dir: Path, marker: str = "state.json") -> None:
    if ckpt_dir.is_dir():
        _remove_all_but(ckpt_dir, set(), marker)
        ckpt_dir.rmdir()


def _resume(model: Model, ckpt_dir: Path, fingerprint: str) -> tuple[_State, list[dict]]:
    """The newest complete checkpoint (a step-* folder; they only appear complete), after removing leftovers."""
    if not ckpt_dir.is_dir():
        return _State(), []
    complete = sorted(p for p in ckpt_dir.glob("step-*") if (p / "state.json").is_file())
    latest = complete[-1] if complete else None
    _remove_all_but(ckpt_dir, {latest})  # temporary folders of a killed write, superseded checkpoints
    if latest is None:
        return _State(), []
    saved = read_json(latest / "state.json")
    if saved.get("fingerprint") != fingerprint:
        print(f"ignoring checkpoint {latest}: it belongs to a different configuration", file=sys.stderr)
        _remove_checkpoints(ckpt_dir)
        return _State(), []
    try:
        state = _State(**saved)
        if _digests(latest, exclude="state.json") != state.files:
            raise ValueError("its files differ from the sha256 recorded in state.json")
        model.load(latest / "model")
        rows = read_csv(latest / "metrics.csv", METRICS_COLUMNS, _COLUMN_TYPES)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ValueError(f"{latest}: cannot resume from this checkpoint ({e}); "
                         f"delete {ckpt_dir} to start the run over") from None
    return state, rows
