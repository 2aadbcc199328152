"""train_tf_full / train_tf_sampled: a TensorFlow baseline under the shared protocol (slide.baselines)."""
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.baselines.train import train_tf

    sm = snakemake  # noqa: F821
    # a thread sweep's count (params.threads); otherwise the rule's threads (all cores)
    threads = getattr(sm.params, "threads", None) or sm.threads
    out_dir = Path(sm.output.final).parent
    assert Path(sm.output.metrics).parent == out_dir, "final.json and metrics.csv must share a run directory"
    train_tf(sm.params.loss, sm.input.train, sm.input.test, sm.input.meta, out_dir,
             model_cfg=dict(sm.params.model), train_cfg=dict(sm.params.train), tf_cfg=dict(sm.params.tf),
             threads=threads)
