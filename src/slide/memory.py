"""Memory that a dataset's dimensions imply, checked before anything that large is allocated: a header
that declares absurd dimensions fails with the size it would need instead of an out-of-memory kill."""
from __future__ import annotations

from collections.abc import Sequence


def network_bytes(n_features: int, n_labels: int, hidden: Sequence[int]) -> int:
    """Weights, biases and both Adam moments (float32) of a network n_features -> hidden... -> n_labels."""
    sizes = [int(n_features), *map(int, hidden), int(n_labels)]
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    return 3 * 4 * params


def dataset_bytes(n_features: int, n_labels: int) -> int:
    """The least any run on these dimensions allocates: the smallest network (one hidden unit) and the
    per-label counts of the data statistics (int64)."""
    return network_bytes(n_features, n_labels, [1]) + 8 * int(n_labels)


def total_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def gib(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GiB"


def require_memory(needed: int, what: str) -> None:
    """ValueError `<what> needs X GiB, more than this machine's Y GiB of memory` when it cannot fit at all."""
    total = total_memory()
    if needed > total:
        raise ValueError(f"{what} needs {gib(needed)}, more than this machine's {gib(total)} of memory")
