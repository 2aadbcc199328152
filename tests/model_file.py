"""The model file's layout, for tests that damage files on purpose: a pure-Python XXH64 (the checksum the
core writes) and `reseal`, which recomputes both checksums so that a deliberately wrong value reaches the
core's value checks instead of failing the checksum."""
from __future__ import annotations

import struct

M = 2 ** 64 - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                      0x27D4EB2F165667C5)
HEADER = 8 + 4 + 8  # magic, format, meta length
COUNTERS = 8 * 8    # step, samples, rehashes, rebuilds (int64); next rehash/rebuild and intervals (double)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M


def _round(acc: int, v: int) -> int:
    return _rotl((acc + v * P2) & M, 31) * P1 & M


def xxh64(data: bytes, seed: int = 0) -> int:
    n, p = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while p + 32 <= n:
            for i in range(4):
                v[i] = _round(v[i], int.from_bytes(data[p + 8 * i:p + 8 * i + 8], "little"))
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M
        for x in v:
            h = ((h ^ _round(0, x)) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while p + 8 <= n:
        h = (_rotl(h ^ _round(0, int.from_bytes(data[p:p + 8], "little")), 27) * P1 + P4) & M
        p += 8
    if p + 4 <= n:
        h = (_rotl(h ^ (int.from_bytes(data[p:p + 4], "little") * P1 & M), 23) * P2 + P3) & M
        p += 4
    while p < n:
        h = (_rotl(h ^ (data[p] * P5 & M), 11) * P1) & M
        p += 1
    h ^= h >> 33
    h = h * P2 & M
    h ^= h >> 29
    h = h * P3 & M
    h ^= h >> 32
    return h


def meta_len(data: bytes) -> int:
    return int.from_bytes(data[12:20], "little")


def counters_at(data: bytes) -> int:
    """Offset of the training counters (after the header, the metadata and the header checksum)."""
    return HEADER + meta_len(data) + 8


def first_weights_at(data: bytes) -> int:
    """Offset of the first weight value of layer 0 (after its element count)."""
    return counters_at(data) + COUNTERS + 8


def reseal(data: bytes | bytearray) -> bytes:
    """Recompute the header checksum and the trailing checksum of every byte before it."""
    data = bytearray(data)
    end = HEADER + meta_len(data)
    data[end:end + 8] = struct.pack("<Q", xxh64(bytes(data[:end])))
    data[-8:] = struct.pack("<Q", xxh64(bytes(data[:-8])))
    return bytes(data)
