"""SLIDE reproduction: LSH-sparse training of extreme-classification networks on CPUs.

Public API (see README):
    slide.Network           the native SLIDE engine (C++ core, pybind11)
    slide.data              XMLRepository parsing, synthetic data, download, CSR splits
    slide.system            host check (AVX-512, hugepages)
"""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy so that `import slide` works (data prep, host check) before the native core is built.
    if name == "Network":
        from .network import Network

        return Network
    raise AttributeError(f"module 'slide' has no attribute {name!r}")
