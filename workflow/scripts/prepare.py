"""rule prepare: parse + validate the raw text into unshuffled CSR splits (slide.data.prepare)."""
from slide.data.prepare import prepare
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    sources = {key: snakemake.input[key] for key in snakemake.input.keys()}
    prepare(sources, snakemake.output.train, snakemake.output.test, snakemake.output.info,
            n_features=snakemake.params.n_features, n_labels=snakemake.params.n_labels,
            split_column=snakemake.params.split_column)
