"""rule download: fetch, verify and extract the configured distribution (slide.data.download)."""
from slide.data.download import fetch_dataset
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    digests = fetch_dataset(snakemake.params.download, snakemake.output.train, snakemake.output.test,
                            snakemake.params.cache)
    for name, digest in digests.items():
        print(f"download: {name} sha256 {digest}")
