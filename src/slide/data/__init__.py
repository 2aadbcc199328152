"""Data stage: XMLRepository text <-> CSR splits, synthetic data, download, shuffle."""
from .csr import Split, load_split, save_split

__all__ = ["Split", "load_split", "save_split"]
