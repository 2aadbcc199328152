"""`slide.Network`: the Python face of the native SLIDE engine.

    net = slide.Network(n_features=135909, n_labels=670091)        # the paper's Amazon-670K setup
    loss = net.train_batch(split.rows(batch_ids))                  # or (scipy CSR, list of label lists)
    ids, scores = net.predict_topk(test_csr, k=5)
    net.save("model.slide"); net = slide.Network.load("model.slide")

Arrays go to C++ without copies when they already have the contract dtypes (int64 indptr, int32
indices, float32 values); the GIL is released while the core computes.
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from . import defaults
from .native import native

# Keys of the core's config that Network takes as arguments of its own; every other option, its type, default,
# allowed values and meaning is in the core's option table (native().OPTIONS; see `help(slide.Network)`).
_SET_BY_NETWORK = {"n_features", "layers", "lr", "seed", "threads"}


class _OptionsDoc(type):
    """Gives slide.Network a docstring and signature built from the core's option table when asked (help(),
    inspect.signature), so the defaults shown are the ones the core uses; the extension loads lazily."""

    @property
    def __doc__(cls):
        return (_NETWORK_DOC + "\n\nOptions (keyword arguments; defaults from the core's option table):\n"
                + options_help())

    @property
    def __signature__(cls):
        import inspect

        P = inspect.Parameter
        params = [P("n_features", P.POSITIONAL_OR_KEYWORD, annotation=int),
                  P("n_labels", P.POSITIONAL_OR_KEYWORD, annotation=int),
                  P("hidden", P.POSITIONAL_OR_KEYWORD, default=defaults.HIDDEN),
                  P("layers", P.POSITIONAL_OR_KEYWORD, default=None)]
        types = {"int": int, "float": float, "bool": bool, "str": str}
        for name, o in option_table().items():
            if name not in ("n_features", "layers"):
                params.append(P(name, P.KEYWORD_ONLY, default=o["default"], annotation=types[o["type"]]))
        return inspect.Signature(params)


_NETWORK_DOC = """A SLIDE network: sparse input -> dense ReLU hidden layers -> LSH-sampled output layer.

    hidden: sizes of the hidden layers; layers: one dict per layer (hash, K, L, range_pow, sparsity), or None for
    native().DEFAULT_LAYERS (dense hidden layers, a k-means output layer). Keys a dict leaves out: hash dwta,
    K/L/range_pow auto, sparsity 1."""


class Network(metaclass=_OptionsDoc):
    def __init__(self, n_features: int, n_labels: int, hidden: Sequence[int] = defaults.HIDDEN,
                 layers: Sequence[dict] | None = None, lr: float | None = None, seed: int = defaults.SEED,
                 threads: int | None = None, **options: Any):
        layers = list(layers) if layers is not None else _default_layers(len(hidden))
        if len(layers) != len(hidden) + 1:
            raise ValueError(f"need one LSH entry per layer: {len(hidden)} hidden + 1 output = "
                             f"{len(hidden) + 1}, got {len(layers)}")
        table = option_table()
        unknown = set(options) - (set(table) - _SET_BY_NETWORK)
        if unknown:
            raise ValueError(f"unknown SLIDE option(s): {', '.join(sorted(unknown))}")
        sizes = [*map(int, hidden), int(n_labels)]
        self.config = {
            "n_features": int(n_features),
            "layers": [{**spec, "size": size} for spec, size in zip(layers, sizes)],
            "lr": float(table["lr"]["default"] if lr is None else lr), "seed": int(seed),
            "threads": int(threads or 0), **options,
        }
        self._net = native().Network(self.config)  # checks every option against the table
        self.inference = self.config.get("inference", table["inference"]["default"])

    @classmethod
    def from_config(cls, config: dict, n_features: int, n_labels: int, threads: int | None = None) -> "Network":
        """Build from the pipeline's config (sections model, train, slide)."""
        s = dict(config["slide"])
        layers = s.pop("layers")
        init = {}
        if config["model"].get("init_std") is not None:  # the init shared with the baselines
            init = {"init_std": float(config["model"]["init_std"]), "init_bias_std": 0.0, "init_truncated": True}
        return cls(n_features, n_labels, hidden=config["model"]["hidden"], layers=layers,
                   lr=config["train"]["lr"], seed=config["train"].get("seed", defaults.SEED), threads=threads,
                   **s, **init)

    # ---- training and inference -----------------------------------------------------------------
    def train_batch(self, x, labels=None) -> float:
        """One Adam step. `x` is a slide.data.Split (labels included) or a scipy CSR matrix with
        `labels` as a list of label lists or an (indptr, labels) pair."""
        indptr, indices, data = _csr_arrays(x)
        lab_ptr, lab = _label_arrays(x, labels)
        return self._net.train_batch(indptr, indices, data, lab_ptr, lab)

    def predict_topk(self, x, k: int = 5, sparse: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), each (rows, k), best first. sparse=None uses the configured inference."""
        indptr, indices, data = _csr_arrays(x)
        use_sparse = self.inference == "sparse" if sparse is None else bool(sparse)
        return self._net.predict_topk(indptr, indices, data, int(k), use_sparse)

    def active_set(self, x, row: int, labels=(), salt: int = 0, pad: bool = True) -> np.ndarray:
        """The output layer's active neurons for one row, as training would select them for that row alone
        (pad=False: the labels and the LSH-retrieved neurons only, without random padding). In a training batch,
        option batch_shared adds the neurons retrieved for the batch's other rows after the row's own."""
        indptr, indices, data = _csr_arrays(x)
        return self._net.active_set(indptr, indices, data, int(row), np.asarray(labels, dtype=np.int32), int(salt),
                                    bool(pad))

    def lsh_stats(self, x, k: int = 20, budget: int = 0) -> dict:
        """How well the output layer's tables and hot list find the highest-scoring neurons, on these rows (no
        labels, no random neurons): mean candidates per row, recall of each row's dense top-k by score (`recall`) and
        the share of rows whose dense top-1 is among the candidates (`top1`). `budget`: neurons retrieved per
        row with select: topk (0 = the inference budget)."""
        indptr, indices, data = _csr_arrays(x)
        if not 1 <= int(k) <= self._net.n_labels:
            raise ValueError(f"k must be in [1, {self._net.n_labels}], got {k}")
        return self._net.lsh_stats(indptr, indices, data, int(k), int(budget))

    def hot_neurons(self, inference: bool = False) -> np.ndarray:
        """The output layer's hot list (option hot_neurons), best first: the neurons training scores exactly for
        every sample, chosen at the last rehash, or (inference=True) the list sparse inference and lsh_stats use,
        chosen again on the current weights when the network has trained since. Empty when off."""
        return self._net.hot_neurons(bool(inference))

    @property
    def active_counts(self) -> dict:
        """Output-layer active neurons summed over all samples trained so far, by origin: the true labels,
        retrieved from the tables, random (padding and random negatives)."""
        return self._net.active_counts

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Weights, Adam state and schedule counters (hash tables are rebuilt on load). Atomic."""
        meta = json.dumps({"config": self.config})
        self._net.save(str(path), meta)

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int | None = None) -> "Network":
        meta = _read_meta(path)
        cfg = dict(meta["config"])
        saved_threads = cfg.pop("threads", 0)
        if "inference" in meta:  # files written before inference was a core option kept it beside the config
            cfg.setdefault("inference", meta["inference"])
        layers = cfg.pop("layers")
        n_labels = layers[-1]["size"]
        hidden = [spec["size"] for spec in layers[:-1]]
        net = cls(cfg.pop("n_features"), n_labels, hidden=hidden,
                  layers=[{k: v for k, v in spec.items() if k != "size"} for spec in layers],
                  lr=cfg.pop("lr"), seed=cfg.pop("seed"),
                  threads=threads if threads is not None else saved_threads or None,
                  **cfg)
        net.load_state(path)
        return net

    def load_state(self, path: str | os.PathLike) -> None:
        """Restore into this network; it must have the saved network's configuration."""
        saved = _read_meta(path)["config"]
        defaults = {name: o["default"] for name, o in option_table().items()}

        def effective(cfg):  # options left out take their defaults; threads and inference leave the state alone
            return {k: v for k, v in {**defaults, **cfg}.items() if k not in ("threads", "inference")}

        mine, theirs = effective(self.config), effective(saved)
        if mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{path}: saved with a different configuration (differs in: {', '.join(diff)})")
        self._net.load(str(path))

    # ---- introspection ----------------------------------------------------------------------------
    def info(self) -> dict:
        n = native()
        return {"isa": self._net.isa, "best_isa": n.best_isa(), "threads": self._net.threads,
                "pages": n.page_stats(), "step": self._net.step, "rehashes": self._net.rehashes,
                "rebuilds": self._net.rebuilds, "phase_seconds": self._net.times,
                "native_module": n.__file__}

    @property
    def times(self) -> dict:
        return self._net.times

    @property
    def step(self) -> int:
        return self._net.step

    @property
    def native(self):
        """The underlying slide._native.Network (weights(), bias(), table_stats, ...)."""
        return self._net


def _default_layers(n_hidden: int) -> list[dict]:
    hidden, output = native().DEFAULT_LAYERS
    return [dict(hidden) for _ in range(n_hidden)] + [dict(output)]


def option_table() -> dict[str, dict]:
    """The core's SLIDE options by name: type, default, choices, minimum/maximum, doc (one declaration each)."""
    return {row["name"]: dict(row) for row in native().OPTIONS}


def options_help() -> str:
    """The option table as text (slide.Network's docstring)."""
    lines = []
    for name, o in option_table().items():
        allowed = f" ({' | '.join(o['choices'])})" if o["choices"] else ""
        lines.append(f"    {name} = {o['default']!r}{allowed}: {o['doc']}")
    return "\n".join(lines)


def _read_meta(path) -> dict:
    try:
        meta = json.loads(native().Network.read_meta(str(path)))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: model metadata is not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:  # a ValueError too, but without the file name
        raise ValueError(f"{path}: model metadata is not valid UTF-8 (byte {e.start}); the file is corrupt") from None
    except (ValueError, RuntimeError) as e:
        raise ValueError(str(e)) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "layers" not in meta["config"]:
        raise ValueError(f"{path}: model metadata has no network configuration")
    return meta


def _csr_arrays(x):
    from .data.csr import Split

    if isinstance(x, Split):
        return x.indptr, x.indices, x.data
    if hasattr(x, "indptr") and hasattr(x, "indices") and hasattr(x, "data"):  # scipy.sparse CSR
        if getattr(x, "format", "csr") != "csr":
            raise ValueError(f"features must be CSR, got {x.format}")
        return (np.ascontiguousarray(x.indptr, dtype=np.int64), np.ascontiguousarray(x.indices, dtype=np.int32),
                np.ascontiguousarray(x.data, dtype=np.float32))
    raise ValueError("features must be a slide.data.Split or a scipy.sparse CSR matrix")


def _label_arrays(x, labels):
    from .data.csr import Split

    if labels is None:
        if not isinstance(x, Split):
            raise ValueError("labels are required unless x is a slide.data.Split")
        return x.label_indptr, x.labels
    if isinstance(labels, tuple) and len(labels) == 2 and isinstance(labels[0], np.ndarray):
        return (np.ascontiguousarray(labels[0], dtype=np.int64), np.ascontiguousarray(labels[1], dtype=np.int32))
    lengths = [len(row) for row in labels]
    ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    flat = np.fromiter((l for row in labels for l in row), dtype=np.int32, count=int(ptr[-1]))
    return ptr, flat
