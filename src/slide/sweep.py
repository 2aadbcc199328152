"""Sweeps from config (`sweep:` section): seeds x thread counts x SLIDE output-layer hash settings.

Each combination is one *variant*, trained into results/runs/{dataset}/{system}/{variant}/ (the default,
sweep-less run stays at results/runs/{dataset}/{system}/). A variant's directory name lists only the swept
dimensions, joined by "-", and parses back to the same variant:

    seed1-t2            seeds and threads swept
    K6-L50-s0.005-t4    a hash setting (K, L, sparsity; r<range_pow> when given) and threads swept
    srp-K8-L32-s0.005   a hash setting that also names the hash family (dwta, srp, kmeans)

Hash settings apply to SLIDE only; TensorFlow runs get the seed x thread variants. For figures and the
summary, runs are grouped by `group_key`: the system, plus the hash setting when one was swept (a
different hash setting is a different curve); seeds are averaged and thread counts split by slide.report.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

SWEEP_KEYS = ("seeds", "threads", "slide_hash")
HASH_KEYS = ("hash", "K", "L", "sparsity", "range_pow")
HASH_FAMILIES = ("dwta", "srp", "kmeans")
_TOKEN = re.compile(r"^(K|L|s|r|seed|t)(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Variant:
    """One sweep point; None in a field = not swept (the config's value / the rule's threads)."""
    seed: int | None = None
    threads: int | None = None
    hash: tuple[tuple[str, float], ...] | None = None   # output-layer overrides, in HASH_KEYS order

    @property
    def name(self) -> str:
        parts = []
        if self.hash is not None:
            h = dict(self.hash)
            if "hash" in h:
                parts.append(h["hash"])
            parts += [f"K{h['K']}", f"L{h['L']}", f"s{_plain(h['sparsity'])}"]
            if "range_pow" in h:
                parts.append(f"r{h['range_pow']}")
        if self.seed is not None:
            parts.append(f"seed{self.seed}")
        if self.threads is not None:
            parts.append(f"t{self.threads}")
        if not parts:
            raise ValueError("a sweep variant needs at least one swept dimension")
        return "-".join(parts)

    @property
    def hash_label(self) -> str | None:
        """e.g. "K6-L50-s0.005" (None when no hash setting was swept)."""
        return None if self.hash is None else Variant(hash=self.hash).name


def is_active(sweep: dict | None) -> bool:
    return any((sweep or {}).get(k) for k in SWEEP_KEYS)


def variants(sweep: dict | None, system: str) -> list[Variant]:
    """Every variant of `system` (cartesian product of the swept lists, in config order)."""
    sweep = sweep or {}
    if not is_active(sweep):
        return []
    seeds = sweep.get("seeds") or [None]
    threads = sweep.get("threads") or [None]
    hashes = [normalize_hash(h) for h in (sweep.get("slide_hash") or [])] if system == "slide" else []
    out = [Variant(seed=s, threads=t, hash=h) for h, s, t in itertools.product(hashes or [None], seeds, threads)]
    # a TF system in a hash-only sweep has nothing to vary: it keeps only its default run
    out = [v for v in out if (v.seed, v.threads, v.hash) != (None, None, None)]
    names = [v.name for v in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"sweep: duplicate variant(s) {', '.join(dup)}; remove repeated entries from sweep")
    return out


def normalize_hash(h: dict) -> tuple[tuple[str, float], ...]:
    """A sweep.slide_hash entry as a hashable tuple; K, L and sparsity are required."""
    missing = [k for k in ("K", "L", "sparsity") if k not in h]
    extra = [k for k in h if k not in HASH_KEYS]
    if missing or extra:
        raise ValueError(f"sweep.slide_hash entry {h!r}: needs K, L, sparsity (optional hash, range_pow)"
                         + (f"; missing {', '.join(missing)}" if missing else "")
                         + (f"; unknown {', '.join(extra)}" if extra else ""))
    if "hash" in h and h["hash"] not in HASH_FAMILIES:
        raise ValueError(f"sweep.slide_hash entry {h!r}: hash must be one of {', '.join(HASH_FAMILIES)}")
    return tuple((k, h[k]) for k in HASH_KEYS if k in h)


def parse_variant(name: str) -> Variant:
    """Inverse of Variant.name; ValueError (naming the directory) when `name` is not a variant."""
    vals: dict[str, str] = {}
    for tok in name.split("-"):
        if tok in HASH_FAMILIES and "hash" not in vals:
            vals["hash"] = tok
            continue
        m = _TOKEN.match(tok)
        if not m or m.group(1) in vals:
            raise ValueError(f"{name!r} is not a sweep variant name (expected e.g. seed1-t2 or K6-L50-s0.005-t4)")
        vals[m.group(1)] = m.group(2)
    hkeys = {"K", "L", "s", "r"} & vals.keys()
    if hkeys and not {"K", "L", "s"} <= hkeys:
        raise ValueError(f"{name!r}: a hash setting needs K, L and s (sparsity)")
    try:
        h = None
        if hkeys:
            h = {"K": int(vals["K"]), "L": int(vals["L"]), "sparsity": float(vals["s"])}
            if "hash" in vals:
                h["hash"] = vals["hash"]
            if "r" in vals:
                h["range_pow"] = int(vals["r"])
        v = Variant(seed=int(vals["seed"]) if "seed" in vals else None,
                    threads=int(vals["t"]) if "t" in vals else None,
                    hash=normalize_hash(h) if h else None)
    except ValueError:
        raise ValueError(f"{name!r} is not a sweep variant name (integer expected)") from None
    if not vals or v.name != name:  # canonical form only: one directory per variant
        raise ValueError(f"{name!r} is not a canonical sweep variant name")
    return v


def run_config(config: dict, variant: Variant) -> dict:
    """The model/train/slide sections a variant trains with (copies; the config is not modified)."""
    train = copy.deepcopy(dict(config["train"]))
    slide = copy.deepcopy(dict(config.get("slide") or {}))
    if variant.seed is not None:
        train["seed"] = variant.seed
    if variant.hash is not None:
        layers = [dict(layer) for layer in slide["layers"]]
        layers[-1].update(dict(variant.hash))  # the output layer: where SLIDE's hash settings matter most
        slide["layers"] = layers
    return {"model": copy.deepcopy(dict(config["model"])), "train": train, "slide": slide}


def group_key(system: str, variant: Variant | None) -> str:
    """The curve a run belongs to: "slide", or "slide[K6-L50-s0.005]" for a swept hash setting."""
    label = variant.hash_label if variant is not None else None
    return system if label is None else f"{system}[{label}]"


def run_location(final_json: str | Path) -> tuple[str, Variant | None]:
    """(system, variant) of a run from its final.json path: …/{system}/final.json or …/{system}/{variant}/."""
    run_dir = Path(final_json).parent
    try:
        return run_dir.parent.name, parse_variant(run_dir.name)
    except ValueError:
        return run_dir.name, None


def load_runs(final_paths) -> list:
    """slide.report Runs for exactly these runs (by their final.json paths), grouped by `group_key`.

    Loading the listed runs, rather than every run found below a system directory, keeps stale runs of an
    earlier sweep (or the default run, during a sweep) out of the figures and the summary.
    """
    from .report.runs import load_run

    runs = []
    for f in final_paths:
        system, variant = run_location(f)
        runs.append(load_run(Path(f).parent, system=group_key(system, variant)))
    return runs


def _plain(x: float) -> str:
    """0.005 -> "0.005", 5e-05 -> "0.00005": no exponent (its "-" would split the name)."""
    s = format(Decimal(repr(float(x))), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s
