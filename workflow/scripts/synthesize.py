"""rule synthesize: seeded synthetic XMLRepository train/test files (slide.data.synthetic)."""
from slide.data.synthetic import SyntheticSpec, write_synthetic
from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    spec = SyntheticSpec.from_config(snakemake.params.synthetic)
    print(f"synthesize: {spec}")
    write_synthetic(spec, snakemake.output.train, snakemake.output.test)
