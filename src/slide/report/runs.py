"""Load training runs (metrics.csv + final.json) and the side files the report reads (meta, host check).

A *run* is one directory written by `slide.training.protocol.run_training`. Several runs of one system
(seeds, thread counts from later sweeps) are *grouped*: seeds are averaged, distinct thread counts stay
apart. Side files written by other stages are read defensively: their key names may still move.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..atomic import read_json
from ..training.protocol import METRICS_COLUMNS

SYSTEM_LABELS = {"slide": "SLIDE", "tf_full": "TF full softmax", "tf_sampled": "TF sampled softmax",
                 "parabel": "Parabel (omikuji)"}
_NUMERIC = [c for c in METRICS_COLUMNS if c != "system"]


def system_label(system: str) -> str:
    return SYSTEM_LABELS.get(system, system)


@dataclass
class Run:
    system: str
    path: Path
    metrics: pd.DataFrame | None = None   # None: no metrics.csv
    final: dict | None = None             # None: no final.json (a failed or unfinished run)

    @property
    def ok(self) -> bool:
        return self.final is not None

    @property
    def threads(self) -> int | None:
        return _as_int(_first(self.final, [("threads",), ("info", "threads"), ("config", "threads")]))

    @property
    def seed(self) -> int | None:
        return _as_int(_first(self.final, [("config", "seed"), ("seed",), ("info", "seed")]))


@dataclass
class Group:
    """Runs of one system (and one thread count when several exist) that a figure draws as one curve."""
    system: str
    threads: int | None
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        name = system_label(self.system)
        if self.threads is None:
            return name
        return f"{name} ({self.threads} thread{'s' if self.threads != 1 else ''})"

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.ok]




def read_json_optional(path: str | os.PathLike | None) -> dict | None:
    """Like read_json, but None when the file (or the path) does not exist."""
    if path is None or not Path(path).exists():
        return None
    return read_json(path)


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read a metrics.csv (protocol.METRICS_COLUMNS), sorted by step; one-line errors name the file."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable metrics CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in METRICS_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(METRICS_COLUMNS)}")
    if df.empty:
        raise ValueError(f"{path}: no evaluation rows (header only)")
    for col in _NUMERIC:
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna() if col == "loss" else num.isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(f"{path}:{row + 2}: column {col} must be numeric, got {df[col].iloc[row]!r}")
        df[col] = num
    df["system"] = df["system"].astype(str)
    return df.sort_values("step", kind="stable").reset_index(drop=True)


def load_run(path: str | os.PathLike, system: str | None = None) -> Run:
    """Load one run directory; missing files leave the corresponding field None (never an exception)."""
    path = Path(path)
    metrics = read_metrics(path / "metrics.csv") if (path / "metrics.csv").exists() else None
    final = read_json_optional(path / "final.json")
    if system is None:
        system = (final or {}).get("system") or (metrics["system"].iloc[0] if metrics is not None else path.name)
    return Run(system=str(system), path=path, metrics=metrics, final=final)


def discover_runs(root: str | os.PathLike, systems: list[str] | None = None) -> list[Run]:
    """Every run under results/runs/{dataset}/, for `systems` (in that order) or all system directories."""
    root = Path(root)
    if systems is None:
        systems = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return runs_in([root / s for s in systems])


def runs_in(system_dirs: list[str | os.PathLike]) -> list[Run]:
    """Runs below each system directory (results/runs/{dataset}/{system}), in the given order.

    A system directory is one run today; sweeps nest runs below it (…/slide/t8/s1/), found the same way:
    every directory holding metrics.csv or final.json (checkpoints excluded). The system is the directory
    name. A missing directory has no runs (the summary lists the system as missing).
    """
    runs = []
    for sdir in map(Path, system_dirs):
        if not sdir.is_dir():
            continue
        found = sorted({p.parent for name in ("metrics.csv", "final.json") for p in sdir.rglob(name)
                        if "checkpoint" not in p.relative_to(sdir).parts})
        runs += [load_run(d, system=sdir.name) for d in found]
    return runs


def group_runs(runs: list[Run], by_threads: bool | None = None) -> list[Group]:
    """Group runs per system; split by thread count when several thread counts occur (auto) or asked.

    Order: systems in first-seen order (pass runs in config order), thread counts ascending.
    """
    if by_threads is None:
        by_threads = len({r.threads for r in runs if r.ok}) > 1
    groups: dict[tuple, Group] = {}
    for r in runs:
        key = (r.system, r.threads if by_threads else None)
        groups.setdefault(key, Group(*key)).runs.append(r)
    order = {s: i for i, s in enumerate(dict.fromkeys(r.system for r in runs))}
    return sorted(groups.values(), key=lambda g: (order[g.system], g.threads or 0))


def aggregate_curve(runs: list[Run], x: str = "train_seconds", y: str = "p_at_1") -> pd.DataFrame:
    """Mean curve of several runs: per evaluation step, mean x and mean/min/max/sd of y.

    Runs share the evaluation steps (same protocol); only steps every run reached are kept, so a
    shorter run does not make the tail of the band look narrower than it is.
    """
    frames = [pd.DataFrame({"step": r.metrics["step"], "xv": r.metrics[x], "yv": r.metrics[y], "run": i})
              for i, r in enumerate(runs) if r.metrics is not None]
    cols = ["step", "x", "mean", "min", "max", "sd", "n"]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)
    g = df.groupby("step", sort=True)
    out = pd.DataFrame({"x": g["xv"].mean(), "mean": g["yv"].mean(), "min": g["yv"].min(), "max": g["yv"].max(),
                        "sd": g["yv"].std(ddof=1).fillna(0.0), "n": g["run"].nunique()}).reset_index()
    out = out[out["n"] == len(frames)]
    return out[cols].reset_index(drop=True)


# --- side files of other stages: key names may vary, so look for them tolerantly -----------------

def majority_p1(meta: dict | None) -> float | None:
    """P@1 of always predicting the most frequent training label, from meta.json (None if absent).

    The key name is not fixed yet, so: any key containing "majority" (or any key inside a dict under
    such a key) holding a share in [0, 1]; keys naming P@3/P@5 and integer ids/counts are ignored.
    Preference: a key naming P@1, then one under/naming "test" (the baseline is measured on the test set).
    """
    if not meta:
        return None
    hits: list[tuple[int, float]] = []

    def visit(obj, path: tuple[str, ...], in_majority: bool):
        if not isinstance(obj, dict):
            return
        for k, v in obj.items():
            key = str(k).lower()
            inside = in_majority or "majority" in key
            if isinstance(v, dict):
                visit(v, path + (key,), inside)
                continue
            names_p1 = bool(_P1.search(key))
            if not inside or _OTHER_K.search(key) or not _is_share(v):
                continue
            if isinstance(v, int) and not names_p1 and "share" not in key:
                continue  # e.g. majority_label: 1 is a label id, not a share
            test = any("test" in p for p in path + (key,))
            hits.append((2 * names_p1 + test, float(v)))

    visit(meta, (), False)
    return max(hits, key=lambda h: h[0])[1] if hits else None


def majority_pk(meta: dict | None) -> dict[str, float]:
    """The majority baseline's P@1 (as majority_p1) and, when meta.json has them under a "majority" key,
    P@3 and P@5 (predicting the 3 / 5 most frequent labels): {"p_at_1": ..., "p_at_3": ..., ...}."""
    p1 = majority_p1(meta)
    if p1 is None:
        return {}
    out = {"p_at_1": p1}

    def visit(obj, in_majority: bool):
        if isinstance(obj, dict):
            for k, v in obj.items():
                key = str(k).lower()
                inside = in_majority or "majority" in key
                m = _PK.search(key)
                if inside and m and m.group(2) in "35" and _is_share(v) and not isinstance(v, bool):
                    out.setdefault(f"p_at_{m.group(2)}", float(v))
                visit(v, inside)

    visit(meta, False)
    return out


_PK = re.compile(r"(p_?at_?|p@|precision_?at_?)([1-9])(?!\d)")
_P1 = re.compile(r"(p_?at_?1|p@1|p1|precision_?at_?1)(?!\d)")
_OTHER_K = re.compile(r"(p_?at_?|p@|p|precision_?at_?)[2-9]")


def host_summary(check: dict | None) -> dict:
    """CPU model, core count and ISA from check.json, whatever the exact nesting."""
    check = check or {}
    model = _first(check, [("cpu", "model"), ("cpu", "model_name"), ("cpu_model",), ("model_name",), ("model",)])
    cores = _first(check, [("cpu", "physical_cores"), ("cpu", "cores"), ("physical_cores",), ("cores",)])
    logical = _first(check, [("cpu", "logical_cores"), ("cpu", "logical_cpus"), ("cpu", "cpus"), ("logical_cores",),
                             ("logical_cpus",), ("cpus",), ("n_cpus",), ("cpu_count",)])
    isa = _first(check, [("isa",), ("cpu", "isa"), ("best_isa",)])
    return {"cpu_model": model.strip() if isinstance(model, str) else None, "cores": _as_int(cores),
            "logical_cpus": _as_int(logical), "isa": isa if isinstance(isa, str) else None}


def host_label(check: dict | None) -> str:
    """e.g. "Intel(R) Xeon(R) ... @ 2.90GHz, 1 core (2 hardware threads)"."""
    h = host_summary(check)
    parts = [h["cpu_model"] or "unknown CPU"]
    cores, logical = h["cores"], h["logical_cpus"]
    if cores:
        text = f"{cores} core{'s' if cores != 1 else ''}"
        if logical and logical != cores:
            text += f" ({logical} hardware threads)"
        parts.append(text)
    elif logical:
        parts.append(f"{logical} logical CPUs")
    return ", ".join(parts)


def _first(obj: dict | None, paths: list[tuple[str, ...]]):
    for p in paths:
        cur = obj
        for k in p:
            cur = cur.get(k) if isinstance(cur, dict) else None
        if cur is not None and not isinstance(cur, dict):
            return cur
    return None


def _as_int(v) -> int | None:
    try:
        return int(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def _is_share(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1

