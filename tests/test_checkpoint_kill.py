"""Crash safety of training: SIGKILL `train_slide` (in a child process, on tiny data) at random moments and
at chosen points inside a checkpoint write, rerun it, and require that every rerun resumes from the newest
complete checkpoint and that the finished run equals an uninterrupted one.

Training is deterministic for a fixed seed and thread count (1 here), so the model file must be
byte-identical and so must every metrics.csv column except the clocks (`train_seconds`, `wall_seconds`,
which measure time). Between tries, the outputs are deleted or kept at random: Snakemake deletes
metrics.csv and final.json of a failed job (and `--rerun-incomplete` those of a job whose Snakemake was
killed), a user running the function directly keeps them.
"""
from __future__ import annotations

import csv
import json
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slide.atomic import write_json
from slide.data.csr import save_split
from slide.data.synthetic import SyntheticSpec, generate
from slide.training.protocol import METRICS_COLUMNS

CLOCKS = {"train_seconds", "wall_seconds"}
CONFIG = {
    "model": {"hidden": [64], "init_std": None},
    "train": {"epochs": 2, "batch_size": 32, "lr": 1e-3, "seed": 3, "eval_every": 7, "eval_samples": 200,
              "eval_batch_size": 256, "checkpoint_every": 4, "validation": 0.1, "patience": 4},
    "slide": {"layers": [{"hash": "dwta", "K": 2, "L": 8, "range_pow": 6, "sparsity": 1.0},
                         {"hash": "dwta", "K": 3, "L": 8, "range_pow": 9, "sparsity": 0.1}],
              "min_active": 40, "pad_below": 60, "rehash": 640, "rebuild": 1920},
}
# Where a child kills itself inside a checkpoint write (the other kills come from outside at random times):
# after the model file of the new checkpoint, after its rename into place (old one still there), and
# halfway through writing the model file; and inside a write of the best-validation model: after its model file,
# after its rename into place (the previous best, which the newest checkpoint refers to, still there).
POINTS = ("after_save", "after_rename", "mid_model", "best_after_save", "best_after_rename")

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    import slide.training.protocol as P
    from slide.training.slide_model import train_slide

    data, out, point, nth = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    calls = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point.startswith("best_"):
        real_best, real_rename = P._save_best, P.os.rename

        def save_best(model, best_dir, *a, **k):
            calls["n"] += 1
            if calls["n"] == nth:
                if point == "best_after_save":
                    save = model.save
                    def wrapped(path):
                        save(path)
                        die()
                    model.save = wrapped
                else:
                    def rename(a_, b_):
                        real_rename(a_, b_)
                        die()
                    P.os.rename = rename
            return real_best(model, best_dir, *a, **k)

        P._save_best = save_best
    elif point != "none":
        real_checkpoint, real_rename = P._checkpoint, P.os.rename

        def checkpoint(model, ckpt_dir, *a, **k):
            calls["n"] += 1
            if calls["n"] == nth:
                save = model.save
                def wrapped(path):
                    if point == "mid_model":  # a partial model file, as a kill inside the native write leaves
                        save(path)
                        data_ = Path(path).read_bytes()
                        Path(path).write_bytes(data_[: len(data_) // 2])
                        die()
                    save(path)
                    if point == "after_save":
                        die()
                model.save = wrapped
                if point == "after_rename":
                    def rename(a_, b_):
                        real_rename(a_, b_)
                        die()
                    P.os.rename = rename
            return real_checkpoint(model, ckpt_dir, *a, **k)

        P._checkpoint = checkpoint
    cfg = json.loads(sys.argv[5])
    print("start", file=sys.stderr, flush=True)  # imports done: the parent's kill clock starts here
    train_slide(data / "train.npz", data / "test.npz", data / "meta.json", out, cfg, threads=1, progress=False)
""")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("killdata")
    train, test = generate(SyntheticSpec(n_train=1280, n_test=300, n_features=2000, n_labels=1000, seed=5,
                                         nnz_min=10, nnz_max=20))
    save_split(d / "train.npz", train)
    save_split(d / "test.npz", test)
    write_json(d / "meta.json", {"dataset": "kill"})
    return d


def start(data: Path, out: Path, point: str = "none", nth: int = 0, cfg: dict = CONFIG) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(out), point, str(nth), json.dumps(cfg)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr.readline() == "start\n"
    return p


def finish(p: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


def metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == METRICS_COLUMNS
    return [{k: v for k, v in r.items() if k not in CLOCKS} for r in rows]


def newest_checkpoint(out: Path) -> int:
    steps = [int(p.name.split("-")[1]) for p in (out / "checkpoint").glob("step-*") if (p / "state.json").is_file()]
    return max(steps, default=0)


def reference(data: Path, out: Path, cfg: dict = CONFIG) -> tuple[float, dict]:
    p = start(data, out, cfg=cfg)
    t0 = time.perf_counter()
    rc, err = finish(p)
    assert rc == 0, err
    return time.perf_counter() - t0, json.loads((out / "final.json").read_text())


def kill_campaign(data: Path, ref: Path, out: Path, kills: int, duration: float, rng: random.Random,
                  cfg: dict = CONFIG) -> int:
    """Kill and rerun until `kills` kills happened, then run to the end; compare with the reference run."""
    done = 0
    while True:
        before = newest_checkpoint(out)
        if done < kills and done % 2 == 0:  # from outside, at a random moment
            p = start(data, out, cfg=cfg)
            time.sleep(rng.uniform(0.0, duration))
            p.send_signal(signal.SIGKILL)
            rc, err = finish(p)
        elif done < kills:  # from inside, at a chosen point of a checkpoint write
            rc, err = finish(start(data, out, rng.choice(POINTS), rng.randint(1, 3), cfg=cfg))
        else:
            rc, err = finish(start(data, out, cfg=cfg))
        if before and (rc == 0 or done % 2):  # a rerun that got going resumes from the newest checkpoint
            assert f"resuming from step {before} " in err, (before, err[-2000:])
        assert "Traceback" not in err, err[-3000:]
        if rc == 0:
            if done >= kills:
                break
            continue  # finished before the kill: the next try starts over (a new run)
        assert rc == -signal.SIGKILL, err[-3000:]
        done += 1
        if rng.random() < 0.5:  # as Snakemake does for a failed job / --rerun-incomplete
            for name in ("metrics.csv", "final.json"):
                (out / name).unlink(missing_ok=True)
        if (out / "final.json").exists():  # a run that finished: the next one is a fresh start
            for name in ("metrics.csv", "final.json", "model"):
                (out / name).unlink()
    assert (out / "model").read_bytes() == (ref / "model").read_bytes()
    assert metrics(out / "metrics.csv") == metrics(ref / "metrics.csv")
    a, b = json.loads((out / "final.json").read_text()), json.loads((ref / "final.json").read_text())
    assert {k: a[k] for k in ("p_at_1", "p_at_3", "p_at_5", "steps")} == {k: b[k] for k in ("p_at_1", "p_at_3",
                                                                                            "p_at_5", "steps")}
    assert not (out / "checkpoint").exists() and not (out / "best").exists()
    assert a["best"] == {**b["best"], "train_seconds": a["best"]["train_seconds"],
                         "wall_seconds": a["best"]["wall_seconds"]}  # the same best-validation step and numbers
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return done


def test_kills_during_training_and_checkpoint_writes_resume_exactly(data, tmp_path):
    duration, _ = reference(data, tmp_path / "ref")
    rng = random.Random(12)
    assert kill_campaign(data, tmp_path / "ref", tmp_path / "run", 4, duration, rng) == 4


@pytest.mark.parametrize("point", ["best_after_save", "best_after_rename"])
def test_a_kill_inside_a_best_model_write_resumes_exactly(data, tmp_path, point):
    """Killed while writing the first best model (before any checkpoint) or the last one (checkpoints exist and
    refer to an older one): the rerun ends with the same best-validation step, numbers and model as an
    uninterrupted run."""
    cfg = json.loads(json.dumps(CONFIG))  # a model that learns quickly: several new best validation P@1
    cfg["model"]["init_std"], cfg["train"]["lr"], cfg["train"]["patience"] = 0.05, 0.005, 0
    _, ref = reference(data, tmp_path / "ref", cfg)
    best, saves = -1.0, 0  # best models the reference wrote: one per new best validation P@1
    for row in csv.DictReader(open(tmp_path / "ref" / "metrics.csv")):
        if float(row["p_at_1"]) > best:
            best, saves = float(row["p_at_1"]), saves + 1
    assert saves >= 3
    for nth in (1, saves):
        out = tmp_path / f"run{nth}"
        rc, err = finish(start(data, out, point, nth, cfg=cfg))
        assert rc == -signal.SIGKILL, err[-3000:]
        assert (out / "best").is_dir()
        rc, err = finish(start(data, out, cfg=cfg))
        assert rc == 0 and "Traceback" not in err, err[-3000:]
        final = json.loads((out / "final.json").read_text())
        assert final["best"]["step"] == ref["best"]["step"] and final["p_at_1"] == ref["p_at_1"], nth
        assert (out / "model").read_bytes() == (tmp_path / "ref" / "model").read_bytes()
        assert not (out / "best").exists() and not (out / "checkpoint").exists()


@pytest.mark.slow
@pytest.mark.parametrize("eval_every,checkpoint_every", [(7, 4), (3, 5), (30, 0)])
def test_twenty_kills_resume_exactly(data, tmp_path, eval_every, checkpoint_every):
    """20 kills per interval combination: checkpoints before evaluations, after them, and only per epoch."""
    cfg = json.loads(json.dumps(CONFIG))
    cfg["train"].update(eval_every=eval_every, checkpoint_every=checkpoint_every)
    duration, _ = reference(data, tmp_path / "ref", cfg)
    rng = random.Random(eval_every * 100 + checkpoint_every)
    assert kill_campaign(data, tmp_path / "ref", tmp_path / "run", 20, duration, rng, cfg) == 20


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    """A temporary of an atomic write whose process is gone (as `prepare` leaves `.train.npz.<pid>-<random>.npz`
    when killed) disappears at the next write of that file; one of a live writer stays."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".train.npz.{dead}-abc123.npz"
    stale.write_bytes(b"x" * 100)
    live = tmp_path / f".train.npz.{1}-def456.npz"  # pid 1 always exists
    live.write_bytes(b"y")
    import numpy as np

    from slide.data.csr import Split
    save_split(tmp_path / "train.npz", Split(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32),
                                             np.zeros(1, np.int64), np.zeros(0, np.int32), 2, 2))
    assert not stale.exists() and live.exists()
    assert re.fullmatch(r"train\.npz", " ".join(p.name for p in tmp_path.iterdir() if p != live))


@pytest.mark.slow
def test_killed_train_slide_job_resumes_under_snakemake(tmp_path):
    """The real rule: kill the train_slide script (Snakemake then deletes the job's outputs itself), rerun;
    kill Snakemake with the whole job (the outputs stay, marked incomplete), unlock, rerun with --rerun-incomplete.
    Each rerun resumes from the newest checkpoint; the result equals a forced fresh run (-R train_slide)."""
    import os

    import psutil
    import yaml

    from workflow_copy import snakemake, workflow_copy

    wd = workflow_copy(tmp_path / "wf")
    (wd / "kill.yaml").write_text(yaml.safe_dump({"train": {"epochs": 6, "eval_every": 7, "checkpoint_every": 5}}))
    args = ["--cores", "2", "--configfile", "config/tiny.yaml", "kill.yaml"]
    target = "results/runs/tiny/slide/final.json"
    # targets before --configfile (it takes several values)
    r = snakemake(wd, "results/build/build.json", "results/data/tiny/meta.json", *args, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    run, log = wd / "results/runs/tiny/slide", wd / "results/logs/train_slide/tiny.log"

    def start_and_kill(extra: list[str], after_step: int, whole_group: bool) -> int:
        """Run the target; once a checkpoint newer than `after_step` exists, SIGKILL; return its step."""
        out = open(tmp_path / "snakemake.out", "a")
        p = subprocess.Popen([sys.executable, "-m", "snakemake", target, *extra, *args], cwd=wd, stdout=out,
                             stderr=out, start_new_session=True)
        deadline = time.monotonic() + 600
        while newest_checkpoint(run) <= after_step:
            assert p.poll() is None and time.monotonic() < deadline, "the run ended before a kill could land"
            time.sleep(0.01)
        if whole_group:
            os.killpg(p.pid, signal.SIGKILL)
        else:
            (script,) = [c for c in psutil.Process(p.pid).children(recursive=True)
                         if any("train_slide" in part for part in c.cmdline())]
            script.send_signal(signal.SIGKILL)
        p.wait(timeout=300)
        assert p.returncode != 0
        return newest_checkpoint(run)

    first = start_and_kill([], 0, whole_group=False)
    assert not (run / "metrics.csv").exists()  # Snakemake removed the failed job's outputs
    second = start_and_kill([], first, whole_group=True)
    assert f"resuming from step {first} " in log.read_text()
    assert snakemake(wd, "--unlock", *args).returncode == 0  # what a user does after Snakemake was killed
    r = snakemake(wd, target, "--rerun-incomplete", *args, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming from step {second} " in log.read_text()
    model, rows = (run / "model").read_bytes(), metrics(run / "metrics.csv")
    assert not (run / "checkpoint").exists()

    r = snakemake(wd, target, *args, "-R", "train_slide", timeout=1200)  # uninterrupted, from step 0
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run / "model").read_bytes() == model
    assert metrics(run / "metrics.csv") == rows


def test_a_checkpoint_removal_killed_half_way_leaves_nothing_to_resume(tmp_path, monkeypatch):
    """The end of a run removes its checkpoint; killed in the middle of that, the next run must start over cleanly
    instead of finding a state.json beside a half-deleted model."""
    import slide.training.protocol as P

    step = tmp_path / "checkpoint" / "step-000000000040"
    step.mkdir(parents=True)
    for name in ("model", "metrics.csv", "state.json"):
        (step / name).write_text(name)
    real_rmtree = P.shutil.rmtree

    def killed_half_way(path, *a, **k):
        (Path(path) / "model").unlink()
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(P.shutil, "rmtree", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        P._remove_checkpoints(tmp_path / "checkpoint")
    monkeypatch.setattr(P.shutil, "rmtree", real_rmtree)
    state, rows = P._resume(None, tmp_path / "checkpoint", "fingerprint")
    assert (state.step, rows) == (0, [])
