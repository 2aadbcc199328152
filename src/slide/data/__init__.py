"""Data stage: XMLRepository text <-> CSR splits, synthetic data, download, shuffle."""
from .csr import Split, load_split, save_split
from .xmlrepo import read_xmlrepo, write_xmlrepo

__all__ = ["Split", "load_split", "save_split", "read_xmlrepo", "write_xmlrepo"]
