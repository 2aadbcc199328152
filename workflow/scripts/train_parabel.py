"""train_parabel: Parabel-style label trees (omikuji), a non-neural reference system (slide.baselines.parabel)."""
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.baselines.parabel import train_parabel

    sm = snakemake  # noqa: F821
    # a thread sweep's count (params.threads); otherwise the rule's threads (all cores)
    threads = getattr(sm.params, "threads", None) or sm.threads
    out_dir = Path(sm.output.final).parent
    assert Path(sm.output.metrics).parent == out_dir, "final.json and metrics.csv must share a run directory"
    # params.model is part of the rule's contract (the shared model section) but Parabel has no network to size
    train_parabel(sm.input.train, sm.input.test, sm.input.meta, out_dir, parabel_cfg=dict(sm.params.parabel),
                  train_cfg=dict(sm.params.train), threads=threads)
