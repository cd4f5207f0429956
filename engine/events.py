"""In-process event bus: every state change and operator action is an event.

Each subscriber gets its own bounded queue. Publishing never blocks and never
awaits: when a subscriber's queue is full, the event is dropped *for that
subscriber* and counted (``subscription.dropped`` and ``bus.dropped``), so a slow
reader can never slow the engine down. Abandoned subscriptions are garbage
collected (the bus only holds weak references).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class EventKind(enum.StrEnum):
    """What happened. Task events carry ``task_id``; engine events do not."""

    ENQUEUED = "enqueued"
    STARTED = "started"
    PROGRESS = "progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    CANCELLED = "cancelled"
    RESCUED = "rescued"
    INTERRUPTED = "interrupted"
    SOFT_TIMEOUT = "soft_timeout"
    TIMED_OUT = "timed_out"
    STALE_COMPLETION = "stale_completion"
    PROMOTED = "promoted"
    REPRIORITIZED = "reprioritized"
    RETRIED = "retried"
    EXPIRED = "expired"
    PURGED = "purged"
    QUEUE_PAUSED = "queue_paused"
    QUEUE_RESUMED = "queue_resumed"
    ALL_PAUSED = "all_paused"
    ALL_RESUMED = "all_resumed"
    WORKERS_CHANGED = "workers_changed"
    SETTINGS_CHANGED = "settings_changed"
    ENGINE_STARTED = "engine_started"
    ENGINE_STOPPING = "engine_stopping"
    ENGINE_STOPPED = "engine_stopped"
    STORE_ERROR = "store_error"
    HOOK_ERROR = "hook_error"
    FINDING = "finding"
    AUTOSCALED = "autoscaled"
    DEDUPLICATED = "deduplicated"
    WORKFLOW_ENQUEUED = "workflow_enqueued"
    SCHEDULE_FIRED = "schedule_fired"
    SCHEDULE_CHANGED = "schedule_changed"
    COMMAND_SENT = "command_sent"
    COMMAND_APPLIED = "command_applied"
    COMMAND_FAILED = "command_failed"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, with the time (Unix seconds) it happened."""

    kind: EventKind
    at: float
    task_id: str | None = None
    handler: str | None = None
    queue: str | None = None
    attempt: int | None = None
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.kind.value]
        if self.task_id is not None:
            parts.append(f"task {self.task_id}")
        if self.handler:
            parts.append(self.handler)
        if self.message:
            parts.append(self.message)
        return " · ".join(parts)


class Subscription:
    """A bounded stream of events. Use ``async for`` (and ``close()`` when done)."""

    def __init__(self, bus: EventBus, maxsize: int, kinds: frozenset[EventKind] | None) -> None:
        self._bus = bus
        self._items: deque[Event] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self.kinds = kinds
        self.dropped = 0
        self.closed = False

    def _offer(self, event: Event) -> bool:
        if len(self._items) >= self._maxsize:
            self.dropped += 1
            return False
        self._items.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def get_nowait(self) -> Event | None:
        """The next event if one is waiting, else None."""
        return self._items.popleft() if self._items else None

    def pending(self) -> int:
        return len(self._items)

    async def get(self) -> Event:
        """Wait for the next event. Raises ``StopAsyncIteration`` once closed and empty."""
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def close(self) -> None:
        """Stop receiving events; a pending ``get`` finishes the iteration."""
        if self.closed:
            return
        self.closed = True
        self._bus._unsubscribe(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """Fan-out of events to bounded subscriber queues; publish is O(subscribers)."""

    def __init__(self, default_maxsize: int = 10_000) -> None:
        self._subs: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self.default_maxsize = default_maxsize
        self.dropped = 0
        self.published = 0

    @property
    def has_subscribers(self) -> bool:
        return len(self._subs) > 0

    def subscribe(
        self, kinds: Iterable[EventKind | str] | None = None, maxsize: int | None = None
    ) -> Subscription:
        wanted = frozenset(EventKind(k) for k in kinds) if kinds is not None else None
        size = maxsize if maxsize is not None else self.default_maxsize
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"maxsize must be a whole number of events ≥ 1; got {size!r}")
        sub = Subscription(self, size, wanted)
        self._subs.add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber that wants it; never blocks."""
        self.published += 1
        for sub in list(self._subs):
            if (sub.kinds is None or event.kind in sub.kinds) and not sub._offer(event):
                self.dropped += 1
                if self.dropped in (1, 100, 10_000) or self.dropped % 1_000_000 == 0:
                    log.warning("a slow event subscriber has dropped %d events", self.dropped)

    def emit(self, kind: EventKind, **fields: Any) -> None:
        """Build and publish an event, but only if someone is listening."""
        if self._subs:
            self.publish(Event(kind, time.time(), **fields))
