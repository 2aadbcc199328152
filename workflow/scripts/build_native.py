"""build_native: CMake build of native/ tuned for this host into results/build/ (slide.build)."""
import json
from pathlib import Path

from slide.pipeline import logged

with logged(snakemake):  # noqa: F821 (injected by Snakemake)
    from slide.build import build

    sm = snakemake  # noqa: F821
    host = json.loads(Path(sm.input.check).read_text())
    info = build(Path(sm.output[0]).parent, portable=False, host=host, jobs=sm.threads)
    print(json.dumps(info, indent=2))
