"""Bring your own dataset (README, "Your own data"): an Extreme Classification Repository-style sample (one
`*_data.txt` with CRLF endings, empty-label lines, duplicate rows, unsorted features, `1.000000` values, plus
`*_trSplit.txt` / `*_tstSplit.txt` with several split columns) through the real pipeline; the header drives the
model sizes; the shipped dataset presets validate and plan.

Also the README's worked example: `python tests/test_own_data.py resources/raw/sample` writes the sample and
resources/raw/sample/sample.yaml; then `snakemake --cores 2 --configfile resources/raw/sample/sample.yaml`.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from workflow_copy import snakemake, workflow_copy
import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ["bibtex", "delicious", "mediamill", "eurlex4k", "wiki10-31k", "amazoncat13k", "delicious200k"]

# ---- the sample: generated rows written the way the repository's files look ----------------------

N_ROWS, USED_FEATURES, USED_LABELS = 480, 200, 50
HEADER_D, HEADER_L = USED_FEATURES + 9, USED_LABELS + 3  # the header, not the largest index, sets the sizes
N_TRAIN, N_TEST, N_SPLITS = 340, 110, 3                   # 30 rows are in neither split of a column


def sample_rows(seed: int = 0) -> list[tuple[tuple[int, ...], list[tuple[int, float]]]]:
    """(labels, [(feature, value), ...]) per row: learnable synthetic rows plus the real files' quirks."""
    from slide.data.synthetic import SyntheticSpec, write_synthetic
    from slide.data.xmlrepo import read_xmlrepo

    spec = SyntheticSpec(n_train=N_ROWS - 40, n_test=40, n_features=USED_FEATURES, n_labels=USED_LABELS,
                         seed=seed + 11, nnz_min=8, nnz_max=24, labels_per_cluster=5, words_per_cluster=10)
    with tempfile.TemporaryDirectory() as d:
        write_synthetic(spec, Path(d) / "a.txt", Path(d) / "b.txt")
        parts = [read_xmlrepo(Path(d) / "a.txt"), read_xmlrepo(Path(d) / "b.txt")]
    rows = []
    for s in parts:
        for i in range(s.n):
            f = slice(s.indptr[i], s.indptr[i + 1])
            rows.append((tuple(int(x) for x in s.row_labels(i)),
                         [(int(j), round(float(v), 6)) for j, v in zip(s.indices[f], s.data[f])]))
    rng = np.random.default_rng(seed)
    for i in range(0, N_ROWS, 23):                       # points without labels: an empty label field
        rows[i] = ((), rows[i][1])
    for i in range(5, N_ROWS, 31):                       # binary rows, written as 1.000000
        rows[i] = (rows[i][0], [(j, 1.0) for j, _ in rows[i][1]])
    for i in range(7, N_ROWS, 41):                       # exact duplicates of the previous row
        rows[i] = rows[i - 1]
    for i in range(3, N_ROWS, 13):                       # features in any order
        feats = list(rows[i][1])
        rng.shuffle(feats)
        rows[i] = (rows[i][0], feats)
    return rows


def _line(labels, feats, trailing: str = "") -> str:
    return ",".join(map(str, labels)) + " " + " ".join(f"{j}:{v:.6f}" for j, v in feats) + trailing


def write_sample(out_dir: str | Path, name: str = "sample", seed: int = 0) -> dict:
    """Write <Name>_data.txt (CRLF) + <name>_trSplit.txt / <name>_tstSplit.txt (N_SPLITS columns, 1-based).

    Returns the rows and, per split column (1-based), the 0-based train/test row numbers.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = sample_rows(seed)
    lines = [f"{N_ROWS} {HEADER_D} {HEADER_L}"]
    lines += [_line(lab, feats, "  " if i % 17 == 0 else "") for i, (lab, feats) in enumerate(rows)]
    data = out / f"{name.capitalize()}_data.txt"
    data.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    rng = np.random.default_rng(seed + 1)
    perms = [rng.permutation(N_ROWS) for _ in range(N_SPLITS)]
    splits = {c + 1: (p[:N_TRAIN], p[N_TRAIN:N_TRAIN + N_TEST]) for c, p in enumerate(perms)}
    files = {}
    for role, k in (("train_split", 0), ("test_split", 1)):
        path = out / f"{name}_{'trSplit' if k == 0 else 'tstSplit'}.txt"
        cols = np.stack([splits[c][k] + 1 for c in sorted(splits)], axis=1)
        path.write_text("".join(" ".join(map(str, r)) + "\n" for r in cols))
        files[role] = path
    return {"rows": rows, "splits": splits, "data": data, **files}


def sample_config(sample: dict, name: str = "sample", split_column: int = 2, root: Path = ROOT) -> dict:
    """A pipeline config for the sample: local data + split files; sizes from the header; a tiny run."""
    rel = lambda p: str(Path(p).resolve().relative_to(root.resolve()))  # noqa: E731 - paths from the repo root
    return {
        "dataset": {"name": name, "source": "local", "shuffle_seed": 0, "n_features": None, "n_labels": None,
                    "local": {"data": rel(sample["data"]), "train_split": rel(sample["train_split"]),
                              "test_split": rel(sample["test_split"]), "split_column": split_column}},
        "systems": ["slide", "tf_full", "tf_sampled"],
        "model": {"hidden": [32]},
        "train": {"batch_size": 32, "epochs": 2, "lr": 0.005, "seed": 0, "eval_every": 4, "eval_samples": 110,
                  "eval_batch_size": 128, "checkpoint_every": 0, "max_steps": None},
        # a smoke setting that still exercises the LSH output layer (53 outputs: a real preset would be dense)
        "slide": {"layers": [{"hash": "dwta", "K": 2, "L": 20, "range_pow": 6, "sparsity": 1.0},
                             {"hash": "dwta", "K": 2, "L": 8, "range_pow": 6, "sparsity": 0.5}],
                  "min_active": 16, "pad_below": 24, "rehash": 320, "rebuild": 1280},
        "figures": {"target_fraction": 0.9, "target_rule": "first", "band": "minmax", "dpi": 60},
    }


def signature(labels, feats) -> tuple:
    return tuple(sorted(labels)), tuple(sorted((int(j), round(float(v), 6)) for j, v in feats))


def split_signatures(split) -> Counter:
    out = Counter()
    for i in range(split.n):
        f = slice(split.indptr[i], split.indptr[i + 1])
        out[signature(split.row_labels(i).tolist(), zip(split.indices[f].tolist(), split.data[f].tolist()))] += 1
    return out


# ---- fast: the header drives the sizes; a config that disagrees names the file ---------------------

def _prepare(sample, tmp_path, column=2, **dims):
    from slide.data.prepare import prepare, shuffle

    u, o = tmp_path / "unshuffled", tmp_path / "out"
    src = {k: str(sample[k]) for k in ("data", "train_split", "test_split")}
    prepare(src, u / "train.npz", u / "test.npz", u / "info.json", split_column=column, **dims)
    return shuffle(u / "train.npz", u / "test.npz", u / "info.json", o / "train.npz", o / "test.npz",
                   o / "meta.json", seed=0, dataset="sample"), o


def test_sample_has_the_quirks_it_claims(tmp_path):
    s = write_sample(tmp_path)
    raw = s["data"].read_bytes()
    assert raw.count(b"\r\n") == N_ROWS + 1 and b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.decode().split("\r\n")
    assert lines[0] == f"{N_ROWS} {HEADER_D} {HEADER_L}"
    assert sum(ln.startswith(" ") for ln in lines[1:]) >= N_ROWS // 23      # empty label field
    assert any(ln.endswith("  ") for ln in lines) and ":1.000000" in raw.decode()
    assert len({ln.strip() for ln in lines[1:-1]}) < N_ROWS                  # duplicate rows
    assert any([j for j, _ in r[1]] != sorted(j for j, _ in r[1]) for r in s["rows"])
    assert max(j for _, f in s["rows"] for j, _ in f) < HEADER_D - 1            # the header is larger than
    assert max(max(lab, default=0) for lab, _ in s["rows"]) < HEADER_L - 1     # the largest index used


def test_header_drives_the_dimensions(tmp_path):
    from slide.data.csr import load_split
    from slide.network import Network

    meta, out = _prepare(write_sample(tmp_path / "src"), tmp_path)
    assert (meta["n_features"], meta["n_labels"]) == (HEADER_D, HEADER_L)  # not the largest index used + 1
    train = load_split(out / "train.npz")
    cfg = sample_config({"data": ROOT, "train_split": ROOT, "test_split": ROOT})
    net = Network.from_config(cfg, train.n_features, train.n_labels, threads=1)
    assert net.config["n_features"] == HEADER_D and net.config["layers"][-1]["size"] == HEADER_L
    ids, _ = net.predict_topk(train.rows(np.arange(4)), 5)
    assert ids.shape == (4, 5) and ids.max() < HEADER_L


@pytest.mark.parametrize("dims,says", [
    ({"n_labels": HEADER_L + 1}, f"header declares L={HEADER_L} labels but n_labels={HEADER_L + 1} was expected"),
    ({"n_features": 7}, f"header declares D={HEADER_D} features but n_features=7 was expected"),
], ids=["n_labels", "n_features"])
def test_config_dimension_that_disagrees_names_the_data_file(tmp_path, dims, says):
    s = write_sample(tmp_path / "src")
    with pytest.raises(ValueError) as err:
        _prepare(s, tmp_path, **dims)
    msg = str(err.value)
    assert msg.startswith(f"{s['data']}:1: ") and says in msg and "\n" not in msg
    assert not (tmp_path / "unshuffled").exists()  # nothing half-written
    meta, _ = _prepare(s, tmp_path / "ok", n_features=HEADER_D, n_labels=HEADER_L)  # matching sizes pass
    assert meta["n_labels"] == HEADER_L


# ---- fast: the dataset presets ----------------------------------------------------------------------

def _merged(preset: str) -> dict:
    """config.yaml with the preset merged over it, as `snakemake --configfile config/<preset>.yaml` does."""
    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(dict(a[k]), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return merge(base, yaml.safe_load((ROOT / "config" / f"{preset}.yaml").read_text()))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_is_valid_and_sized_to_its_labels(preset):
    from snakemake.utils import validate

    cfg = _merged(preset)
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    ds, s, t = cfg["dataset"], cfg["slide"], cfg["train"]
    assert ds["name"] == preset and ds["source"] == "local"
    assert ds["n_features"] and ds["n_labels"]            # documented shape, checked against the header
    for path in ds["local"].values():
        if isinstance(path, str):                        # the repository's file names, under resources/raw/<name>/
            assert path.startswith(f"resources/raw/{preset}/"), path
    out = s["layers"][-1]
    assert len(s["layers"]) == len(cfg["model"]["hidden"]) + 1
    if out["sparsity"] < 1:   # LSH output layer: the active set must leave most outputs inactive
        assert ds["n_labels"] >= 1000
        if s["select"] == "topk":
            assert s["min_active"] < ds["n_labels"] // 4
        else:
            assert s["min_active"] <= s["pad_below"] < ds["n_labels"] // 4
        if out["hash"] == "dwta" and out["K"] != "auto":
            assert out["range_pow"] <= 3 * out["K"]  # DWTA gives 3 bits per hash: more buckets are unreachable
    else:                     # dense output layer: only where the original's padding activates everything
        assert ds["n_labels"] < 1000
    assert 1 <= t["eval_every"] and t["eval_samples"] >= 1000 and 1e-5 <= t["lr"] <= 1e-2


# ---- slow: the real pipeline in a scratch copy of the workflow ---------------------------------------

def _workdir(tmp_path: Path) -> Path:
    return workflow_copy(tmp_path / "wf")


def _snakemake(wd: Path, *args, timeout=900) -> subprocess.CompletedProcess:
    return snakemake(wd, *args, timeout=timeout)


@pytest.mark.slow
def test_round_trip_through_figures(tmp_path):
    from slide.data.csr import load_split
    from slide.network import Network

    wd = _workdir(tmp_path)
    sample = write_sample(wd / "resources" / "raw" / "sample")
    cfg = sample_config(sample, root=wd)
    (wd / "sample.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    r = _snakemake(wd, "--cores", "2", "--configfile", "sample.yaml")
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-4000:]
    print(f"round trip: snakemake --cores 2 on the sample took {seconds:.1f} s")

    data = wd / "results" / "data" / "sample"
    train, test = load_split(data / "train.npz"), load_split(data / "test.npz")
    tr_rows, te_rows = sample["splits"][2]
    for split, rows in ((train, tr_rows), (test, te_rows)):
        want = Counter(signature(*sample["rows"][r]) for r in rows)
        assert split.n == len(rows) and split_signatures(split) == want  # the rows of column 2, order aside
        assert int((np.diff(split.label_indptr) == 0).sum()) == sum(not sample["rows"][r][0] for r in rows)
    other = Counter(signature(*sample["rows"][r]) for r in sample["splits"][1][0])
    assert split_signatures(train) != other                              # the column matters
    meta = json.loads((data / "meta.json").read_text())
    assert (meta["n_features"], meta["n_labels"], meta["split_column"]) == (HEADER_D, HEADER_L, 2)
    assert (train.n_features, train.n_labels) == (HEADER_D, HEADER_L)

    runs = wd / "results" / "runs" / "sample"
    net = Network.load(runs / "slide" / "model")
    assert net.config["n_features"] == HEADER_D and net.config["layers"][-1]["size"] == HEADER_L
    for system in cfg["systems"]:
        final = json.loads((runs / system / "final.json").read_text())
        assert final["test_samples"] == N_TEST
    for f in ("figures/sample/time_vs_p1.png", "figures/sample/steps_vs_p1.pdf", "summary/sample/summary.csv",
              "summary/sample/summary.md", "provenance/sample.json"):
        assert (wd / "results" / f).stat().st_size > 0, f
    summary = (wd / "results" / "summary" / "sample" / "summary.csv").read_text()
    assert all(s in summary for s in cfg["systems"])

    # the same pipeline with a config size that disagrees with the header: one line naming the data file
    cfg["dataset"]["n_labels"] = HEADER_L + 1
    (wd / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(wd, "results/data/sample/meta.json", "--cores", "1", "--configfile", "bad.yaml")  # target first
    log = (wd / "results" / "logs" / "prepare" / "sample.log").read_text()
    assert r.returncode != 0
    line = f"{cfg['dataset']['local']['data']}:1: header declares L={HEADER_L} labels but n_labels={HEADER_L + 1}"
    assert line in r.stderr and line in log, (r.stderr[-2000:], log[-2000:])  # terminal and the rule's log


@pytest.mark.slow
def test_every_preset_plans_once_its_files_are_in_place(tmp_path):
    wd = _workdir(tmp_path)
    for preset in PRESETS:
        local = _merged(preset)["dataset"]["local"]
        files = [local[k] for k in ("data", "train_split", "test_split", "train", "test") if k in local]
        r = _snakemake(wd, "-n", "--configfile", f"config/{preset}.yaml", timeout=120)
        # before the files are there: Snakemake names them, and our hint says where they come from
        assert r.returncode != 0 and files[0] in r.stderr and "Your own data" in r.stderr, r.stderr[-2000:]
        for f in files:
            (wd / f).parent.mkdir(parents=True, exist_ok=True)
            (wd / f).touch()
        r = _snakemake(wd, "-n", "--configfile", f"config/{preset}.yaml", timeout=120)
        assert r.returncode == 0 and "Your own data" not in r.stderr, (preset, r.stderr[-3000:])
        for rule in ("prepare", "shuffle", "train_slide", "train_tf", "figures"):
            assert f"rule {rule}:" in r.stdout, (preset, rule, r.stdout[-2000:])


if __name__ == "__main__":  # the README's worked example: write the sample and its config
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "resources/raw/sample")
    sample = write_sample(out)
    cfg_path = out / "sample.yaml"
    cfg_path.write_text("# written by tests/test_own_data.py (the README's worked example)\n"
                        + yaml.safe_dump(sample_config(sample, root=Path.cwd()), sort_keys=False))
    print(f"wrote {sample['data']}, {sample['train_split']}, {sample['test_split']} and {cfg_path}\n"
          f"run: snakemake --cores 2 --configfile {cfg_path}")
