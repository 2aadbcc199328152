"""train_slide: SLIDE on the prepared dataset under the shared protocol (slide.training.slide_model)."""
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.training.slide_model import train_slide

    sm = snakemake  # noqa: F821
    # a thread sweep's count (params.threads), kept even on busy cores since it is what the sweep measures;
    # otherwise the rule's threads (all cores), fewer where other work holds some of them
    swept = getattr(sm.params, "threads", None)
    train_slide(sm.input.train, sm.input.test, sm.input.meta, Path(sm.output.final).parent,
                config={"model": dict(sm.params.model), "train": dict(sm.params.train),
                        "slide": dict(sm.params.slide)},
                threads=swept or sm.threads, build_dir=Path(sm.input.build).parent, keep_threads=bool(swept))
