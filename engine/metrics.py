"""Cheap, always-on counters: per-second buckets over a rolling window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RollingCounter:
    """Counts events in 1-second buckets and reports rates over recent windows."""

    __slots__ = ("_buckets", "_clock", "_horizon", "total")

    def __init__(self, horizon: int = 600, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: deque[list[int]] = deque()  # [second, count]
        self._horizon = horizon
        self._clock = clock
        self.total = 0

    def add(self, n: int = 1) -> None:
        second = int(self._clock())
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += n
        else:
            buckets.append([second, n])
            while buckets and buckets[0][0] <= second - self._horizon:
                buckets.popleft()
        self.total += n

    def count(self, window: float) -> int:
        """Events in the last ``window`` seconds (whole buckets)."""
        since = int(self._clock()) - int(window)
        return sum(n for second, n in reversed(self._buckets) if second > since)

    def rate(self, window: float = 10.0) -> float:
        """Events per second over the last ``window`` seconds."""
        return self.count(window) / window if window > 0 else 0.0
