"""SLIDE under the shared protocol: the `Model` adapter around slide.Network and the train_slide entry point."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import read_json
from ..data.csr import Split
from .protocol import TrainConfig, load_prepared, read_csv, run_fingerprint, run_training, write_csv


LSH_COLUMNS = ["step", "candidates", "recall", "top1", "k", "labels_per_sample", "retrieved_per_sample",
               "random_per_sample", "retrieved_share"]
LSH_ROWS = 500  # evaluation rows the retrieval is measured on (a dense pass each time)


class SlideModel:
    """Adapts slide.Network to slide.training.protocol.Model. With `lsh_csv`, every evaluation also records
    how well the output layer's tables retrieve the dense top-20 and where the training active sets came from."""

    def __init__(self, net, lsh_csv: str | Path | None = None, cpu_share: dict | None = None):
        self.net = net
        self.cpu_share = cpu_share  # slide.cpu_share's decision, recorded in final.json
        self.lsh_csv = Path(lsh_csv) if lsh_csv is not None else None
        self._lsh_rows: list[dict] = []
        self._counts = dict(net.active_counts)

    def diagnostics(self, step: int, eval_split: Split) -> None:
        if self.lsh_csv is None:
            return
        stats = self.net.lsh_stats(eval_split.rows(np.arange(min(LSH_ROWS, eval_split.n))), k=min(20, self.net.native.n_labels))
        now = dict(self.net.active_counts)
        d = {k: now[k] - self._counts[k] for k in now}
        self._counts = now
        per = max(d["samples"], 1)
        active = d["labels"] + d["retrieved"] + d["random"]
        self._lsh_rows.append({"step": step, "candidates": stats["candidates"], "recall": stats["recall"],
                               "top1": stats["top1"], "k": stats["k"],
                               "labels_per_sample": d["labels"] / per, "retrieved_per_sample": d["retrieved"] / per,
                               "random_per_sample": d["random"] / per,
                               "retrieved_share": d["retrieved"] / active if active else float("nan")})
        write_csv(self.lsh_csv, LSH_COLUMNS, self._lsh_rows)

    def final_extras(self, test: Split, batch_size: int) -> dict:
        """Test P@1/3/5 and milliseconds per row of dense (every neuron) and sparse (retrieved neurons) inference."""
        from .protocol import TOPK, precision_at_k

        out = {}
        for mode in ("dense", "sparse"):
            t0 = time.perf_counter()
            preds = [self.net.predict_topk(test.rows(np.arange(s, min(s + batch_size, test.n))), TOPK,
                                           sparse=mode == "sparse")[0] for s in range(0, test.n, batch_size)]
            seconds = time.perf_counter() - t0
            p = precision_at_k(np.concatenate(preds) if preds else np.zeros((0, TOPK), np.int64), test)
            out[mode] = {"p_at_1": p[1], "p_at_3": p[3], "p_at_5": p[5],
                         "ms_per_row": 1e3 * seconds / max(test.n, 1)}
        return {"inference_modes": out}

    def train_batch(self, batch: Split) -> float:
        return self.net.train_batch(batch)

    def predict_topk(self, batch: Split, k: int) -> np.ndarray:
        return self.net.predict_topk(batch, k)[0]

    def save(self, path: Path) -> None:
        self.net.save(path)

    def load(self, path: Path) -> None:
        self.net.load_state(path)
        # a resumed run keeps the retrieval rows up to its checkpoint (a killed run may have written more)
        if self.lsh_csv is not None and self.lsh_csv.exists():
            rows = read_csv(self.lsh_csv, LSH_COLUMNS, {"step": int, "k": int})
            self._lsh_rows = [r for r in rows if r["step"] <= self.net.step]

    def info(self) -> dict:
        info = self.net.info()
        return {"threads": info["threads"], "isa": info["isa"], "best_isa": info["best_isa"],
                "memory_pages": info["pages"], "phase_seconds": info["phase_seconds"],
                "rehashes": info["rehashes"], "rebuilds": info["rebuilds"],
                "inference": self.net.inference, "native_module": info["native_module"],
                "slide_version": _version(), **({"cpu_share": self.cpu_share} if self.cpu_share else {})}


def train_slide(train_path, test_path, meta_path, out_dir, config: dict, threads: int,
                build_dir: str | Path | None = None, progress: bool = True, keep_threads: bool = False) -> dict:
    """Train SLIDE on prepared splits; `config` holds the pipeline's model, train and slide sections.

    `build_dir` (the pipeline's results/build) selects the host-tuned extension over the installed one.
    `keep_threads`: train with `threads` even on busy cores (a thread sweep measures that count).
    """
    from ..cpu_share import share_cores

    share = share_cores(threads, keep_threads=keep_threads)  # before the native core (and OpenMP) loads
    print(f"cores: {share['reason']} (OpenMP wait policy: {share['wait_policy']})", file=sys.stderr)
    threads = share["threads"]
    if build_dir is not None:
        from ..native import use_build

        use_build(build_dir)
    from ..network import Network

    train, test, meta = load_prepared(train_path, test_path, meta_path, hidden=config["model"]["hidden"])
    net = Network.from_config(config, train.n_features, train.n_labels, threads=threads)
    cfg = TrainConfig.from_config(config["train"])
    print(f"SLIDE: {train.n} train / {test.n} test samples, {train.n_features} features, {train.n_labels} labels, "
          f"hidden {config['model']['hidden']}, {net.info()['isa']} kernels, {threads} threads")
    build = Path(build_dir) / "build.json" if build_dir is not None else None
    fingerprint = run_fingerprint("slide", config, meta, read_json(build) if build and build.exists() else None)
    return run_training(SlideModel(net, Path(out_dir) / "lsh.csv", cpu_share=share), "slide", train, test, cfg, out_dir,
                        progress=progress, fingerprint=fingerprint)


def _version() -> str:
    from .. import __version__

    return __version__

