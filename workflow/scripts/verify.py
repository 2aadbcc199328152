# Rule verify: re-check dataset and result sha256s against the provenance manifest (logic in slide.verify).
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.verify import verify

    lines = verify(snakemake.params.manifest)  # raises, listing every mismatch, when a file differs
    print("\n".join(lines))
    print(f"verify passed: {len(lines)} file(s) match {snakemake.params.manifest}")
