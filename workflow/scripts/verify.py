# Rule verify: every dataset's recorded files against its provenance manifest (logic in slide.verify).
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.verify import verify

    lines = verify()  # every dataset's manifest; raises, listing every mismatch, when a file differs
    print("\n".join(lines))
    print(f"verify passed: {sum(line.startswith('ok') for line in lines)} file(s) match results/provenance/")
