"""SLIDE under the shared protocol: the `Model` adapter around slide.Network and the train_slide entry point."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import read_json
from ..data.csr import Split
from .protocol import TrainConfig, load_prepared, run_fingerprint, run_training


class SlideModel:
    """Adapts slide.Network to slide.training.protocol.Model."""

    def __init__(self, net):
        self.net = net

    def train_batch(self, batch: Split) -> float:
        return self.net.train_batch(batch)

    def predict_topk(self, batch: Split, k: int) -> np.ndarray:
        return self.net.predict_topk(batch, k)[0]

    def save(self, path: Path) -> None:
        self.net.save(path)

    def load(self, path: Path) -> None:
        self.net.load_state(path)

    def info(self) -> dict:
        info = self.net.info()
        return {"threads": info["threads"], "isa": info["isa"], "best_isa": info["best_isa"],
                "memory_pages": info["pages"], "phase_seconds": info["phase_seconds"],
                "rehashes": info["rehashes"], "rebuilds": info["rebuilds"],
                "inference": self.net.inference, "native_module": info["native_module"],
                "slide_version": _version()}


def train_slide(train_path, test_path, meta_path, out_dir, config: dict, threads: int,
                build_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train SLIDE on prepared splits; `config` holds the pipeline's model, train and slide sections.

    `build_dir` (the pipeline's results/build) selects the host-tuned extension over the installed one.
    """
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
    return run_training(SlideModel(net), "slide", train, test, cfg, out_dir, progress=progress,
                        fingerprint=fingerprint)


def _version() -> str:
    from .. import __version__

    return __version__
