"""The native core's kernel paths, in order, and those this CPU runs (tests run every one of them)."""
from __future__ import annotations

from slide.native import native

ISAS = ["scalar", "avx2", "avx512", "avx512_bf16"]
SUPPORTED = ISAS[:ISAS.index(native().best_isa()) + 1]
