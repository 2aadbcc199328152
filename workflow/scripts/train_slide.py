"""train_slide: SLIDE on the prepared dataset under the shared protocol (slide.training.slide_model)."""
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.training.slide_model import train_slide

    sm = snakemake  # noqa: F821
    # a thread sweep's count (params.threads); otherwise the rule's threads (all cores)
    threads = getattr(sm.params, "threads", None) or sm.threads
    train_slide(sm.input.train, sm.input.test, sm.input.meta, Path(sm.output.final).parent,
                config={"model": dict(sm.params.model), "train": dict(sm.params.train),
                        "slide": dict(sm.params.slide)},
                threads=threads, build_dir=Path(sm.input.build).parent)
