"""Which handlers no node serves (attached console): queued tasks that name a handler
no alive node has registered wait for ever, so the console looks for them every few
seconds (``Engine.unserved``) and keeps the answer in the :class:`Cluster` for the
Bottlenecks panel ("No node serves images.x — 12 tasks queued") and the queue table
(a "⚠ no node" mark on those rows)."""

from __future__ import annotations

import contextlib
import time

from console.cluster.state import Cluster
from engine import Engine, EngineNotRunning, StoreError, TaskState

#: Seconds between two looks, at least; the look scans queued tasks, so a slow one (a
#: huge backlog) spaces the next ones out (COST_SHARE of the time at most).
EVERY = 5.0
COST_SHARE = 0.05


class UnservedWatch:
    def __init__(self, engine: Engine, cluster: Cluster) -> None:
        self.engine = engine
        self.cluster = cluster
        self._next = 0.0

    async def read(self) -> None:
        """Look again if it is time (call it after each read of the node rows)."""
        now = time.monotonic()
        if now < self._next:
            return
        if not self.engine.snapshot().counts.get(TaskState.QUEUED):
            self.cluster.unserved = {}
            self._next = now + EVERY
            return
        # on a store error, keep the last answer (the store's trouble shows as a finding)
        with contextlib.suppress(StoreError, EngineNotRunning):
            self.cluster.unserved = await self.engine.unserved(self.cluster.nodes)
        took = time.monotonic() - now
        self._next = time.monotonic() + max(EVERY, took / COST_SHARE)
