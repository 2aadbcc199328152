"""Log-uniform candidate sampling for sampled softmax, on the host and seeded per step.

Same distribution, uniqueness rule and expected counts as TensorFlow's
`tf.random.log_uniform_candidate_sampler(unique=True)` (range_sampler.cc), but driven by a numpy
generator seeded with (seed, step): a resumed run draws exactly the candidates an uninterrupted run
would have drawn, which TF's stateful sampler op (its state is not checkpointable) cannot do.
"""
from __future__ import annotations

import numpy as np

# Unique sampling from a Zipf-like law needs ever more draws as num_sampled nears range_max;
# stop with a clear error instead of looping (TF's op would spin forever).
_MAX_DRAWS_PER_SAMPLE = 1000


def log_uniform_probability(classes: np.ndarray, range_max: int) -> np.ndarray:
    """P(class) = log((c+2)/(c+1)) / log(range_max+1): the log-uniform (Zipfian) law over [0, range_max)."""
    c = np.asarray(classes, dtype=np.float64)
    return np.log((c + 2.0) / (c + 1.0)) / np.log1p(range_max)


def log_uniform_unique(rng: np.random.Generator, num_sampled: int, range_max: int) -> tuple[np.ndarray, int]:
    """Draw log-uniform classes until `num_sampled` distinct ones are seen.

    Returns (candidates int64 in first-occurrence order, num_tries = draws needed), like TF's sampler.
    """
    if not 1 <= num_sampled <= range_max:
        raise ValueError(f"num_sampled must be in [1, {range_max}] (the number of classes), got {num_sampled}")
    log_range = np.log1p(range_max)
    seen = np.zeros(range_max, dtype=bool)
    parts, count, tries = [], 0, 0
    chunk = max(2 * num_sampled, 1024)
    while tries < _MAX_DRAWS_PER_SAMPLE * num_sampled:
        # TF: static_cast<int64>(exp(u * log_range)) - 1, then % range (float round-off guard)
        draws = (np.exp(rng.random(chunk) * log_range).astype(np.int64) - 1) % range_max
        uniq, first = np.unique(draws, return_index=True)
        fresh = ~seen[uniq]
        uniq, first = uniq[fresh], first[fresh]
        order = np.argsort(first, kind="stable")
        uniq, first = uniq[order], first[order]
        need = num_sampled - count
        if len(uniq) >= need:
            parts.append(uniq[:need])
            return np.concatenate(parts), tries + int(first[need - 1]) + 1
        parts.append(uniq)
        seen[uniq] = True
        count += len(uniq)
        tries += chunk
    raise ValueError(f"could not draw {num_sampled} distinct log-uniform classes out of {range_max} "
                     f"in {tries} draws; lower tf.num_sampled / tf.num_sampled_fraction")


def expected_count(classes: np.ndarray, num_sampled: int, num_tries: int, range_max: int) -> np.ndarray:
    """Expected number of times each class appears among the candidates (TF's ExpectedCountHelper).

    With unique sampling a class is in the set with probability 1 - (1-p)^num_tries.
    """
    p = log_uniform_probability(classes, range_max)
    if num_tries == num_sampled:  # no duplicates were drawn: TF's shortcut
        return (p * num_sampled).astype(np.float32)
    return (-np.expm1(num_tries * np.log1p(-p))).astype(np.float32)
