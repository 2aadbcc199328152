"""Checking the pipeline's configuration before any job runs (workflow/rules/common.smk calls `check_config`).

Every section is closed: an unknown key is an error that suggests the nearest valid one
(`train.epcohs: unknown key; did you mean epochs?`), so a typo cannot silently fall back to a default.
Then the schema's value rules, numbers that are not finite, and the SLIDE rules that need two sections
(one LSH spec per layer) are checked, so that nothing fails late, inside a training job, for a
configuration reason.

Datasets: `datasets:` (a list) or `dataset:` (one) name what to train on. Each entry may carry its own
`model`, `train`, `slide`, `tf` and `parabel` blocks, merged over the top-level sections for that dataset
only (`dataset_config`); every dataset's merged configuration is checked like a whole one.
"""
from __future__ import annotations

import difflib
import math
import os
from pathlib import Path



class ConfigError(ValueError):
    """A configuration problem, as one line: `<section.key>: <what is wrong>`."""


def load_schema(path: str | os.PathLike) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


# sections a dataset entry may override for itself
DATASET_OVERRIDES = ("model", "train", "slide", "tf", "parabel")


def check_config(config: dict, schema: dict, files=(), cli=None) -> None:
    """Raise ConfigError for the first problem found: unknown keys, then schema values, then cross-section rules
    (for every dataset, with its own overrides). `files`/`cli`: as for `dataset_entries`."""
    for problem in unknown_keys(config, schema, everywhere=_declared_keys(schema)):
        raise ConfigError(problem)
    for path, value in _numbers(config, ""):
        if not math.isfinite(value):
            raise ConfigError(f"{path}: must be a finite number, got {value}")
    _check_schema(config, schema)
    entries = dataset_entries(config, files, cli)
    many = len(entries) > 1 or "dataset" not in config
    for i, entry in enumerate(entries):
        where = f"datasets[{i}] ({entry['name']}): " if many else ""
        cfg = dataset_config(config, entry)
        try:
            for problem in unknown_keys(cfg, schema, everywhere=_declared_keys(schema)):
                raise ConfigError(problem)
            _check_schema(cfg, schema)
            _check_slide(cfg)
            if cfg["dataset"]["source"] == "synthetic":  # the generator's own rules (e.g. nnz_min <= nnz_max)
                from .data.synthetic import SyntheticSpec

                try:
                    SyntheticSpec.from_config(cfg["dataset"].get("synthetic"))
                except ValueError as e:
                    raise ConfigError(str(e)) from None
        except ConfigError as e:
            raise ConfigError(f"{where}{e}") from None


def dataset_entries(config: dict, files=(), cli=None) -> list[dict]:
    """The configured datasets, in order: `datasets:` or `dataset:` (a list of one).

    When both are set (config/config.yaml lists two datasets; a preset given with --configfile names one),
    the one set last wins: `cli` (--config values) over `files` (config files, lowest precedence first).
    Dataset names must be unique (they name the results folders)."""
    import yaml

    if "dataset" in config and "datasets" in config:
        winner = None
        for source in [*map(str, files), "--config"]:
            try:
                data = dict(cli or {}) if source == "--config" else (yaml.safe_load(Path(source).read_text()) or {})
            except OSError:  # not readable from here: it cannot decide
                continue
            keys = [k for k in ("dataset", "datasets") if k in data]
            if len(keys) == 2:
                raise ConfigError(f"{source}: sets both dataset and datasets; keep one (datasets: a list of entries)")
            winner = keys[0] if keys else winner
        entries = [config["dataset"]] if winner in (None, "dataset") else list(config["datasets"])
    elif "dataset" in config:
        entries = [config["dataset"]]
    elif "datasets" in config:
        entries = list(config["datasets"])
    else:
        raise ConfigError("config: no dataset; set datasets: (a list of entries) or dataset: (one)")
    if not entries:
        raise ConfigError("datasets: empty; list at least one dataset")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ConfigError(f"datasets[{i}]: expected a dataset entry with a name (see config/config.yaml)")
    names = [e["name"] for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"datasets: name(s) {', '.join(dup)} used more than once; each dataset needs its own name "
                          "(it names results/data/<name>/ and every other results folder)")
    return entries


def dataset_config(config: dict, entry: dict) -> dict:
    """The whole configuration one dataset trains with: `dataset` = the entry (without its overrides), and its
    `model`/`train`/`slide`/`tf`/`parabel` blocks merged over the top-level sections (lists are replaced)."""
    cfg = {k: v for k, v in config.items() if k != "datasets"}
    cfg["dataset"] = {k: v for k, v in entry.items() if k not in DATASET_OVERRIDES}
    for section in DATASET_OVERRIDES:
        if section in entry:
            cfg[section] = _merge(config.get(section) or {}, entry[section])
    return cfg


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def unknown_keys(value, schema: dict, path: str = "", everywhere: dict[str, list[str]] | None = None) -> list[str]:
    """One message per key that its section's schema does not declare (sections with
    `additionalProperties: false`), with the nearest declared key when one is close; failing that, a
    similar key of another section (`everywhere`: key -> the sections declaring it)."""
    problems = []
    if isinstance(value, dict) and isinstance(schema, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for key, sub in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key in props:
                problems += unknown_keys(sub, props[key], where, everywhere)
            elif isinstance(extra, dict):  # a map: every value follows one schema
                problems += unknown_keys(sub, extra, where, everywhere)
            elif extra is False:
                problems.append(f"{where}: unknown key; {_suggest(str(key), list(props), everywhere or {})}")
    elif isinstance(value, list) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        for i, sub in enumerate(value):
            problems += unknown_keys(sub, schema["items"], f"{path}[{i}]", everywhere)
    return problems


def _suggest(key: str, valid: list[str], everywhere: dict[str, list[str]]) -> str:
    close = _closest(key, valid)
    if close:
        return f"did you mean {close}?"
    other = _closest(key, list(everywhere))
    hint = f" ({other} is a key of {' and '.join(everywhere[other])})" if other else ""
    return f"expected one of {', '.join(valid)}{hint}"


def _closest(key: str, valid: list[str]) -> str | None:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:  # case slips (`k` for `K`) are typos too
        lower = {v.lower(): v for v in valid}
        close = [lower[m] for m in difflib.get_close_matches(key.lower(), list(lower), n=1, cutoff=0.6)]
    return close[0] if close else None


def _declared_keys(schema: dict, path: str = "", out: dict | None = None) -> dict[str, list[str]]:
    """key -> the sections (dotted paths) whose schema declares it."""
    out = {} if out is None else out
    for key, sub in (schema.get("properties") or {}).items():
        out.setdefault(key, []).append(path or "the top level")
        if isinstance(sub, dict):
            _declared_keys(sub, f"{path}.{key}" if path else key, out)
    for nested in ("items", "additionalProperties"):
        if isinstance(schema.get(nested), dict):
            _declared_keys(schema[nested], f"{path}[]" if nested == "items" else f"{path}.<name>", out)
    return out


def _numbers(value, path: str):
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")


def _check_schema(config: dict, schema: dict) -> None:
    import jsonschema

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if errors:
        e = jsonschema.exceptions.best_match(errors)
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".")
        raise ConfigError(f"{where or 'config'}: {e.message}")


def _check_slide(config: dict) -> None:
    """The rules of the native core that the schema cannot express (Network's constructor repeats them)."""
    hidden = config["model"]["hidden"]
    layers = config["slide"]["layers"]
    if len(layers) != len(hidden) + 1:
        raise ConfigError(f"slide.layers: {len(layers)} entries, but model.hidden has {len(hidden)} layer(s): need "
                          f"one LSH entry per hidden layer plus one for the output layer ({len(hidden) + 1})")
    for i, spec in enumerate(layers[:-1]):
        if spec["sparsity"] != 1:
            raise ConfigError(f"slide.layers[{i}].sparsity: {spec['sparsity']}, but hidden layers must have sparsity "
                              "1 (LSH-sparse hidden layers are not supported; only the output layer is sparse)")
