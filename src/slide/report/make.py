"""Entry points of the figures/summary/provenance rules (workflow/scripts call these) and of the CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_path, write_json
from .runs import host_label, majority_p1, majority_pk, read_json_optional, runs_in


def make_figures(system_dirs: list, *, dataset: str, meta=None, check=None, time_paths=(),
                 steps_paths=(), scaling_paths=(), band: str = "minmax", dpi: int = 200, runs=None,
                 target_fraction: float | None = None, scaling_required: bool = False) -> list[str]:
    """Write P@1-vs-time and P@1-vs-steps figures (and thread scaling when asked and possible).

    Returns the paths written. The thread-scaling figure is written only when several thread counts exist;
    with `scaling_required` (the pipeline's thread_scaling rule) their absence is an error that says so.
    `runs` (e.g. slide.sweep.load_runs) replaces the runs found below `system_dirs`. With `target_fraction`,
    the summary's target P@1 is drawn as a line.
    """
    from .figures import figure_title, plot_p1_curves, plot_thread_scaling, save_figure, several_thread_counts

    runs = runs_in(system_dirs) if runs is None else runs
    if not any(r.metrics is not None for r in runs):
        raise ValueError(f"no metrics.csv in any of {', '.join(map(str, system_dirs))}")
    host, base = host_label(read_json_optional(check)), majority_p1(read_json_optional(meta))
    target = _target(runs, target_fraction)
    written: list[str] = []
    for what, x, paths in (("P@1 vs training time", "train_seconds", time_paths), ("P@1 vs iterations", "step",
                                                                                    steps_paths)):
        if paths:
            save_figure(plot_p1_curves(runs, x, figure_title(what, dataset, host), base, band, target=target),
                        paths, dpi)
            written += map(str, paths)
    if scaling_paths and several_thread_counts(runs):
        save_figure(plot_thread_scaling(runs, figure_title("time per epoch vs threads", dataset, host)),
                    scaling_paths, dpi)
        written += map(str, scaling_paths)
    elif scaling_paths and scaling_required:
        counts = sorted({r.threads for r in runs if r.ok and r.threads})
        raise ValueError(f"thread scaling needs finished runs with at least two thread counts; these ran with "
                         f"{counts or 'none'} ({', '.join(str(r.path) for r in runs)})")
    return written


def _target(runs, target_fraction):
    if target_fraction is None:
        return None
    from .runs import group_runs
    from .summary import target_p1

    return target_p1(group_runs(runs), target_fraction)


def make_paper_figure(runs_by_dataset: dict, metas: dict, *, paths, check=None, target_fraction: float | None = None,
                      band: str = "minmax", dpi: int = 200) -> list[str]:
    """The paper's Figure 5: one panel per dataset (dict order) of P@1 against training time, every system, the
    majority-label baseline and the target. `runs_by_dataset`: dataset -> its Runs; `metas`: dataset -> meta.json."""
    from .figures import plot_paper_figure, save_figure

    panels = [(ds, runs, majority_p1(read_json_optional(metas.get(ds))), _target(runs, target_fraction))
              for ds, runs in runs_by_dataset.items()]
    empty = [ds for ds, runs, _, _ in panels if not any(r.metrics is not None for r in runs)]
    if empty:
        raise ValueError(f"no metrics.csv for dataset(s) {', '.join(empty)}")
    title = f"P@1 vs training time (log scale; evaluation excluded)\n{host_label(read_json_optional(check))}"
    save_figure(plot_paper_figure(panels, title, band), paths, dpi)
    return list(map(str, paths))


def make_combined_summary(csv_paths: dict, *, csv_path, md_path, html_path=None, target_fraction: float = 0.9):
    """Every dataset's summary.csv (dataset -> path) as one table with a leading dataset column."""
    import pandas as pd

    from .summary import write_combined

    frames = []
    for ds, path in csv_paths.items():
        try:
            df = pd.read_csv(path, keep_default_na=False, na_values=[""])
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise ValueError(f"{path}: not a readable summary CSV ({str(e).splitlines()[0]})") from None
        frames.append(df.assign(dataset=ds)[["dataset", *df.columns]])
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_combined(df, csv_path, md_path, html_path, target_fraction=target_fraction)
    return df


def make_summary(system_dirs: list, *, dataset: str, target_fraction: float, csv_path, md_path,
                 html_path=None, meta=None, check=None, rule: str = "first", runs=None):
    from .summary import summarize, write_summary

    # every configured system keeps its row, in config order, even when its directory is missing
    # given `runs` (slide.sweep.load_runs), their systems (curve keys) in first-seen order
    systems = [Path(d).name for d in system_dirs] if runs is None else list(dict.fromkeys(r.system for r in runs))
    runs = runs_in(system_dirs) if runs is None else runs
    df = summarize(runs, systems, target_fraction, majority_pk(read_json_optional(meta)), rule=rule)
    write_summary(df, csv_path, md_path, html_path, dataset=dataset, host=host_label(read_json_optional(check)),
                  target_fraction=target_fraction, rule=rule)
    return df


def make_provenance(config: dict, out_path, *, system_dirs: list, meta=None, data_files=(),
                    check=None, build=None, root: str | os.PathLike = ".", runs=None, outputs=()) -> dict:
    from .provenance import collect

    prov = collect(config, meta_path=meta, data_files=data_files, check_path=check, build_path=build,
                   runs=runs_in(system_dirs) if runs is None else runs, root=root, outputs=outputs)
    write_json(out_path, prov)
    return prov


def make_environment(out_path, *, check=None, build=None, provenance=None) -> None:
    from .provenance import environment_html

    prov = json.loads(Path(provenance).read_text()) if provenance and Path(provenance).exists() else None
    with atomic_path(out_path) as tmp:
        tmp.write_text(environment_html(read_json_optional(check), read_json_optional(build), prov))
