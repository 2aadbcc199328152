"""rule shuffle: seeded permutation of both splits + meta.json (slide.data.prepare)."""
from slide.data.prepare import shuffle
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    meta = shuffle(snakemake.input.train, snakemake.input.test, snakemake.input.info,
                   snakemake.output.train, snakemake.output.test, snakemake.output.meta,
                   seed=snakemake.params.seed, dataset=snakemake.wildcards.dataset)
    print(f"shuffle: {meta['n_train']} train / {meta['n_test']} test rows, majority-label P@1 "
          f"{meta['majority_baseline']['p_at_1']:.4f}")
