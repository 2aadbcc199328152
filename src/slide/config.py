"""Checking the pipeline's configuration before any job runs (workflow/rules/common.smk calls `check_config`).

Every section is closed: an unknown key is an error that suggests the nearest valid one
(`train.epcohs: unknown key; did you mean epochs?`), so a typo cannot silently fall back to a default.
Then the schema's value rules, numbers that are not finite, and the SLIDE rules that need two sections
(one LSH spec per layer) are checked, so that nothing fails late, inside a training job, for a
configuration reason.
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


def check_config(config: dict, schema: dict) -> None:
    """Raise ConfigError for the first problem found: unknown keys, then schema values, then cross-section rules."""
    for problem in unknown_keys(config, schema, everywhere=_declared_keys(schema)):
        raise ConfigError(problem)
    for path, value in _numbers(config, ""):
        if not math.isfinite(value):
            raise ConfigError(f"{path}: must be a finite number, got {value}")
    _check_schema(config, schema)
    _check_slide(config)
    if config["dataset"]["source"] == "synthetic":  # the generator's own rules (e.g. nnz_min <= nnz_max)
        from .data.synthetic import SyntheticSpec

        try:
            SyntheticSpec.from_config(config["dataset"].get("synthetic"))
        except ValueError as e:
            raise ConfigError(str(e)) from None


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
