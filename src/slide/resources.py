"""What each rule asks the scheduler for: memory computed from the data's shape and the run's config, threads
capped at a node's cores, runtime, partition and account (config `cluster:`). The workflow's rules take their
`resources:` and `threads:` from here, so every profile (local, SLURM, Kubernetes) requests the same, and no
command-line `--default-resources` / `--set-resources` is needed.

Memory is an estimate of the largest structures a job holds, in bytes, plus a fixed interpreter base, times
MARGIN. The constants were measured with the peak RSS that each job records (final.json `peak_rss_bytes`,
`ru_maxrss` of prepare/shuffle/synthesize) on the tiny and the default configs and on a 250k-row synthetic
set; docs/scale-out.md has the numbers.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .atomic import read_json

MIB = 2**20
MARGIN = 1.25            # on top of every estimate: allocator slack, thread stacks, what the terms below omit
PY_BASE = 200 * MIB      # Python, numpy, this package and Snakemake's script preamble (measured 151-167 MiB)
TF_BASE = 900 * MIB      # the same plus TensorFlow (`import tensorflow` alone: ~600 MiB; tiny TF runs: 644-818 MiB)
SMALL = 500 * MIB        # figures, summary, report, provenance, verify, host check: matplotlib and small tables
# Text per non-zero of an XMLRepository file ("12:0.084556 " is 12 bytes) against 8 bytes in CSR (int32 index,
# float32 value): bounding the text at >= 7 bytes per non-zero keeps the CSR estimate from raw files on the safe side.
TEXT_BYTES_PER_NNZ = 7

TRAIN_RULES = ("train_slide", "train_tf", "train_tf_full", "train_tf_sampled", "train_parabel")


@dataclass(frozen=True)
class Shape:
    """What memory depends on: sizes of the data. None = not known yet (e.g. before a download)."""
    n_features: int | None = None
    n_labels: int | None = None
    data_bytes: int | None = None   # both splits as CSR in memory (indptr, indices, values, labels)
    source: str = "config"          # where the numbers came from: prepared | raw | config


@dataclass(frozen=True)
class Cluster:
    """Config `cluster:` (all optional): the node a job runs on and where jobs are submitted."""
    cores: int | None = None        # cores of one node: caps the threads of training and build jobs
    mem_mb: int | None = None       # memory of one node: a job needing more stops the run before it starts
    partition: str | None = None
    account: str | None = None
    runtime_train: int = 1440       # minutes, training rules
    runtime_other: int = 120        # minutes, every other rule

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Cluster":
        cfg = dict(cfg or {})
        runtime = dict(cfg.pop("runtime", None) or {})
        return cls(cores=cfg.get("cores"), mem_mb=cfg.get("mem_mb"), partition=cfg.get("partition"),
                   account=cfg.get("account"), runtime_train=runtime.get("train", cls.runtime_train),
                   runtime_other=runtime.get("other", cls.runtime_other))


# --- the data's shape ---------------------------------------------------------------------------------------

def _raw_header(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """`N D L` from the first line of an XMLRepository file (None when it is not such a header)."""
    with open(path, "rb") as f:
        parts = f.readline().split()
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        n, d, l = (int(p) for p in parts)
        return n, d, l
    return None


def synthetic_data_bytes(spec: dict) -> int:
    """CSR bytes of a synthetic dataset from its spec (slide.data.synthetic defaults for missing keys)."""
    from .data.synthetic import SyntheticSpec

    s = SyntheticSpec.from_config(spec)
    rows = s.n_train + s.n_test
    nnz = rows * (s.nnz_min + s.nnz_max) / 2  # tokens drawn per row; repeats merge, so this bounds the non-zeros
    return int(nnz * 8 + rows * s.labels_per_sample * 4 + rows * 16)


def dataset_shape(dataset_cfg: dict, data_dir: str | os.PathLike, raw_files: list[str]) -> Shape:
    """The best-known shape of the configured dataset: the prepared splits (exact), else the raw files' header
    and size, else the config (the synthetic spec, or dataset.n_features / n_labels)."""
    data_dir = Path(data_dir)
    meta = data_dir / "meta.json"
    for split_dir in (data_dir, data_dir / "unshuffled"):
        npz = [split_dir / "train.npz", split_dir / "test.npz"]
        if all(p.is_file() for p in npz):
            n_features = n_labels = None
            if meta.is_file():
                m = read_json(meta)
                n_features, n_labels = m.get("n_features"), m.get("n_labels")
            # np.savez stores the arrays uncompressed: the files' size is the CSR's size in memory
            return Shape(n_features or dataset_cfg.get("n_features"), n_labels or dataset_cfg.get("n_labels"),
                         sum(p.stat().st_size for p in npz), "prepared")
    if raw_files and all(Path(p).is_file() for p in raw_files):
        header = next(filter(None, (_raw_header(p) for p in raw_files)), None)
        raw = sum(Path(p).stat().st_size for p in raw_files)
        return Shape(header[1] if header else dataset_cfg.get("n_features"),
                     header[2] if header else dataset_cfg.get("n_labels"),
                     raw * 8 // TEXT_BYTES_PER_NNZ, "raw")
    if dataset_cfg.get("source") == "synthetic":
        from .data.synthetic import SyntheticSpec

        s = SyntheticSpec.from_config(dataset_cfg.get("synthetic"))
        return Shape(s.n_features, s.n_labels, synthetic_data_bytes(dataset_cfg.get("synthetic") or {}), "config")
    return Shape(dataset_cfg.get("n_features"), dataset_cfg.get("n_labels"), None, "config")


# --- memory per rule -----------------------------------------------------------------------------------------

def _layer_sizes(shape: Shape, model: dict) -> list[tuple[int, int]]:
    """(fan_in, size) of every layer: hidden layers, then the output layer."""
    dims = [shape.n_features or 0, *model["hidden"], shape.n_labels or 0]
    return list(zip(dims[:-1], dims[1:]))


def hash_settings(spec: dict, size: int, min_active: int) -> tuple[int, int, int]:
    """K, L, range_pow of a sparse layer of `size` neurons, with `auto` values resolved by the native core."""
    from .native import native

    return tuple(native().resolve_lsh({**spec, "size": max(int(size), 1)}, int(min_active)))


def slide_bytes(shape: Shape, cfg: dict, threads: int) -> int:
    """train_slide: parameters with Adam state, LSH tables, per-thread and per-batch buffers, the data."""
    layers = _layer_sizes(shape, cfg["model"])
    specs = cfg["slide"]["layers"]
    train = cfg["train"]
    total = 0
    for (fan_in, size), spec in zip(layers, specs):
        total += 3 * 4 * (fan_in * size + size)  # weights, Adam m and v (and the biases')
        if spec["sparsity"] < 1:  # an LSH layer
            _, L, range_pow = hash_settings(spec, size, cfg["slide"].get("min_active", 1000))
            buckets = 2 ** range_pow
            total += L * size * 4 * 2                        # table ids + bucket codes while rebuilding
            total += L * (buckets + 1) * 4                   # bucket offsets
            total += size * 4 * 3                            # insertion order, row <-> id permutation
            total += threads * (2 * buckets * 4 + fan_in * 8 * 4)  # per-thread bucket counters, weight tiles
            if spec["hash"] == "kmeans":                     # centroids (hash vectors: fan_in + 2), a copy
                total += 2 * buckets * (fan_in + 2) * 4 + threads * buckets * 4 * 2  # + per-thread cell ranks
    hidden = sum(cfg["model"]["hidden"])
    batch = max(train["batch_size"], train.get("eval_batch_size", 1024))
    total += batch * hidden * 4 * 2                                        # activations and their gradients
    total += threads * (shape.n_labels or 0) * 4 * 4                      # per-thread marks, logits, gradients
    total += (max(shape.n_features or 0, shape.n_labels or 0) + 1) * 4    # gradient transposition counters
    return PY_BASE + total + (shape.data_bytes or 0)


def tf_bytes(shape: Shape, cfg: dict) -> int:
    """train_tf_*: weights, gradients and Adam's two moments (4x the weights), full logits of the largest batch
    (training or evaluation) three times (logits, softmax / gradient, top-k), the data."""
    weights = sum(4 * (fan_in * size + size) for fan_in, size in _layer_sizes(shape, cfg["model"]))
    train = cfg["train"]
    batch = max(train["batch_size"], train.get("eval_batch_size", 1024))
    return TF_BASE + 4 * weights + 3 * batch * (shape.n_labels or 0) * 4 + (shape.data_bytes or 0)


def need_bytes(rule: str, shape: Shape, cfg: dict, threads: int = 1) -> int:
    """Estimated peak memory of one job of `rule` (a sweep rule counts as its base rule), before MARGIN."""
    rule = rule.removesuffix("_sweep")
    data = shape.data_bytes or 0
    if rule == "train_slide":
        return slide_bytes(shape, cfg, threads)
    if rule in ("train_tf_full", "train_tf_sampled"):
        return tf_bytes(shape, cfg)
    if rule == "train_parabel":  # omikuji: the data, its normalized copy and label representations, the trees
        return PY_BASE + 6 * data
    if rule == "synthesize":   # keeps every row's text in Python objects: measured 9.1x this CSR estimate
        return PY_BASE + 10 * synthetic_data_bytes(cfg["dataset"].get("synthetic") or {})
    if rule == "prepare":      # both splits parsed into growing vectors: measured 1.3x the CSR
        return PY_BASE + int(1.5 * data)
    if rule == "shuffle":      # both splits, their permuted copies, the writer's buffers: measured 2.8-3.1x
        return PY_BASE + int(3.2 * data)
    if rule == "build_native":  # one compiler per source file (8 at most), ~300 MiB each for the bindings
        return PY_BASE + 300 * MIB * min(threads, 8)
    if rule == "download":     # streams to disk, extracts member by member
        return PY_BASE + 64 * MIB
    return SMALL


def mem_mb(rule: str, shape: Shape, cfg: dict, threads: int, cluster: Cluster) -> int:
    """The request in MB (10^6 bytes, Snakemake's mem_mb): need_bytes with MARGIN. A need above the node's
    memory (cluster.mem_mb) fails here, naming the rule, instead of a job that pends or is killed."""
    mb = math.ceil(need_bytes(rule, shape, cfg, threads) * MARGIN / 1e6)
    if cluster.mem_mb is not None and mb > cluster.mem_mb:
        raise ValueError(f"{rule} needs {gb(mb)}, a node has {gb(cluster.mem_mb)} (config cluster.mem_mb); "
                         f"use nodes with more memory or a smaller dataset/model")
    return mb


def gb(mb: float) -> str:
    return f"{mb / 1000:.1f} GB" if mb < 10_000 else f"{mb / 1000:.0f} GB"


def threads(available: int | None, cluster: Cluster) -> int:
    """Threads of the training and build rules: every core Snakemake may use, at most one node's."""
    if available is None:
        return cluster.cores or 1
    return min(available, cluster.cores) if cluster.cores else available


def scheduler_resources(rule: str, cluster: Cluster) -> dict:
    """runtime (minutes), --exclusive for training and, when configured, the SLURM partition and account."""
    train = rule.removesuffix("_sweep") in TRAIN_RULES
    out = {"runtime": cluster.runtime_train if train else cluster.runtime_other}
    if train:  # timed runs get a node to themselves on SLURM (other executors ignore slurm_extra)
        out["slurm_extra"] = "'--exclusive'"
    if cluster.partition:
        out["slurm_partition"] = cluster.partition
    if cluster.account:
        out["slurm_account"] = cluster.account
    return out
