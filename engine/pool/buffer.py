"""The ready buffer: tasks claimed ahead of the worker slots (the ``prefetch``
setting) and held, leased but unstarted, until a slot frees.

Held tasks are ordered as a claim orders them (highest priority first, then by id),
so a task claimed later with a higher priority still starts first. Every claim
confirms the whole buffer in its own transaction (see ``Store.claim``'s ``held``),
so one time, :attr:`ReadyBuffer.confirmed_at`, says how fresh all of it is.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.store.base import ClaimedTask


@dataclass(eq=False, slots=True)
class Held:
    """A claimed task waiting for a slot."""

    claimed: ClaimedTask
    claim_gen: int
    since: float  # time.monotonic() when it was claimed


class ReadyBuffer:
    """Held tasks, best first; removal by id is O(1) (the heap drops it lazily)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Held]] = []  # (-priority, id, seq, held)
        self._seq = 0  # a stale entry of a task held again must never tie with the new one
        self._by_id: dict[int, Held] = {}
        #: time.monotonic() when the store last confirmed every held task (the
        #: claim that did it was sent then)
        self.confirmed_at = 0.0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, task_id: int) -> bool:
        return task_id in self._by_id

    def add(self, claimed: ClaimedTask, claim_gen: int) -> None:
        held = Held(claimed, claim_gen, time.monotonic())
        self._by_id[claimed.id] = held
        self._seq += 1
        heapq.heappush(self._heap, (-claimed.priority, claimed.id, self._seq, held))

    def pop(self) -> Held | None:
        """The best held task, taken out; None when empty."""
        while self._heap:
            _, task_id, _, held = heapq.heappop(self._heap)
            if self._by_id.get(task_id) is held:
                del self._by_id[task_id]
                return held
        return None

    def remove(self, task_id: int) -> Held | None:
        held = self._by_id.pop(task_id, None)
        if held is not None and len(self._heap) > 2 * len(self._by_id) + 64:
            self._heap = [e for e in self._heap if self._by_id.get(e[1]) is e[3]]
            heapq.heapify(self._heap)
        return held

    def take(self, which: Callable[[ClaimedTask], bool]) -> list[Held]:
        """Take out every held task ``which`` picks."""
        return self.take_held(lambda held: which(held.claimed))

    def take_lost(self, live: set[int], gen: int) -> list[Held]:
        """Take out the tasks claimed by generation ``gen`` or before that a lease
        renewal did not find leased to us any more (``live``: those it did)."""
        return self.take_held(lambda h: h.claim_gen <= gen and h.claimed.id not in live)

    def take_held(self, which: Callable[[Held], bool]) -> list[Held]:
        taken = [held for held in self._by_id.values() if which(held)]
        for held in taken:
            self.remove(held.claimed.id)
        return taken

    def ids(self) -> list[int]:
        return list(self._by_id)

    def per_queue(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for held in self._by_id.values():
            out[held.claimed.queue] = out.get(held.claimed.queue, 0) + 1
        return out
