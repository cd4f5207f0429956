"""Mergeable histograms: fixed log-spaced buckets stored as counts.

Bucket ``i`` holds values up to ``BOUNDS[i]`` seconds (each bound is √2 times the one
before, from 1 ms to about a day; the last bucket holds everything longer). Two
histograms merge by adding counts, so minute histograms roll up into hours and
days, and several nodes' histograms into one, exactly; a percentile is read from
the merged counts (never an average of averages) and is off by at most one bucket
(a bucket spans a factor of √2, so at most 41 %).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

FACTOR = math.sqrt(2.0)
BOUNDS: tuple[float, ...] = tuple(0.001 * FACTOR**i for i in range(54))  # 1 ms .. ~1.6 d
BUCKETS = len(BOUNDS) + 1  # the last one: longer than every bound

Counts = dict[int, int]  # bucket index -> count (only non-zero buckets)


def bucket_of(seconds: float) -> int:
    """The index of the bucket ``seconds`` falls in."""
    return bisect.bisect_left(BOUNDS, max(0.0, seconds))


def add(counts: Counts, seconds: float, n: int = 1) -> None:
    i = bucket_of(seconds)
    counts[i] = counts.get(i, 0) + n


def merge(into: Counts, other: Counts) -> Counts:
    for i, n in other.items():
        into[i] = into.get(i, 0) + n
    return into


def merged(parts: Iterable[Counts]) -> Counts:
    out: Counts = {}
    for part in parts:
        merge(out, part)
    return out


def percentile(counts: Counts, q: float) -> float | None:
    """The ``q`` quantile (0..1), nearest rank, as the upper bound of its bucket (the
    longest bound for the last bucket); None when empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for i in sorted(counts):
        seen += counts[i]
        if seen >= rank:
            return BOUNDS[min(i, len(BOUNDS) - 1)]
    return BOUNDS[-1]  # not reached: seen ends at total >= rank


def encode(counts: Counts) -> str:
    """``"3:10,7:2"`` (bucket:count, ascending); ``""`` when empty."""
    return ",".join(f"{i}:{n}" for i, n in sorted(counts.items()) if n)


def decode(text: str | None) -> Counts:
    """The inverse of :func:`encode`; a malformed part is skipped (never raises)."""
    out: Counts = {}
    for part in (text or "").split(","):
        index, _, count = part.partition(":")
        try:
            i, n = int(index), int(count)
        except ValueError:
            continue
        if 0 <= i < BUCKETS and n > 0:
            out[i] = out.get(i, 0) + n
    return out
