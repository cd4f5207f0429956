"""Mergeable histograms: fixed log-spaced buckets stored as counts.

Bucket ``i`` holds values up to ``BOUNDS[i]`` seconds (each bound is √2 times the one
before, from 1 ms to about a day and a half; the last bucket holds everything
longer). Two histograms merge by adding counts, so minute histograms roll up into
hours and days, and several nodes' histograms into one, exactly; a percentile is
read from the merged counts (never an average of averages) and is off by at most
one bucket (a bucket spans a factor of √2, so at most 41 %).

In memory a histogram is a list of ``BUCKETS`` counts (merging is one C-level
``map``); stored, it is the run from the first to the last non-zero bucket:
``"12:3,0,5"`` (bucket 12 holds 3, bucket 14 holds 5).
"""

from __future__ import annotations

import bisect
import math
import operator

FACTOR = math.sqrt(2.0)
BOUNDS: tuple[float, ...] = tuple(0.001 * FACTOR**i for i in range(54))  # 1 ms .. ~1.6 d
BUCKETS = len(BOUNDS) + 1  # the last one: longer than every bound

Counts = list[int]  # BUCKETS counts


def empty() -> Counts:
    return [0] * BUCKETS


def bucket_of(seconds: float) -> int:
    """The index of the bucket ``seconds`` falls in."""
    return bisect.bisect_left(BOUNDS, max(0.0, seconds))


def add(counts: Counts, seconds: float, n: int = 1) -> None:
    counts[bucket_of(seconds)] += n


def merge(into: Counts, other: Counts) -> Counts:
    into[:] = map(operator.add, into, other)
    return into


def percentile(counts: Counts, q: float) -> float | None:
    """The ``q`` quantile (0..1), nearest rank, as the upper bound of its bucket (the
    longest bound for the last bucket); None when empty."""
    total = sum(counts)
    if total <= 0:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return BOUNDS[min(i, len(BOUNDS) - 1)]
    return BOUNDS[-1]  # not reached: seen ends at total >= rank


def encode(counts: Counts) -> str:
    """``"first:count,count,…"`` from the first to the last non-zero bucket; ``""``
    when empty."""
    used = [i for i, n in enumerate(counts) if n]
    if not used:
        return ""
    return f"{used[0]}:" + ",".join(map(str, counts[used[0] : used[-1] + 1]))


def add_text(into: Counts, text: str | None) -> Counts:
    """Add a stored histogram to ``into``; a malformed one adds nothing (never raises)."""
    first, _, body = (text or "").partition(":")
    if not body:
        return into
    try:
        start, values = int(first), list(map(int, body.split(",")))
    except ValueError:
        return into
    end = start + len(values)
    if start < 0 or end > BUCKETS or min(values) < 0:
        return into
    into[start:end] = map(operator.add, into[start:end], values)
    return into


def decode(text: str | None) -> Counts:
    """The inverse of :func:`encode` (empty for a malformed text)."""
    return add_text(empty(), text)
