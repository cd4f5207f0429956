"""Batched, never-lost completion writes.

Workers hand finished attempts to the :class:`Completer` and move on at once. One
long-lived task writes whatever has gathered since its last write in a single
call (which usually shares a store transaction with the next claim). If the
store refuses (locked, full), the batch is kept and retried with backoff; the
pool stops claiming meanwhile, so nothing piles up and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from engine.aio import wait_event
from engine.store.base import Completion, CompletionReport, Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
FLUSH_SETTLE = 0.5  # seconds a write still out at a stop's deadline may take to come back


class Completer:
    def __init__(
        self,
        store: Store,
        on_report: Callable[[CompletionReport], None],
        on_error: Callable[[Exception], None],
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._store = store
        self._before = before  # run before each write (task logs go first)
        self._on_report = on_report
        self._on_error = on_error
        self._buffer: list[Completion] = []
        self._inflight = 0
        self._backoff = 0.0
        self._signal = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._quiet = asyncio.Event()  # set while no write is out
        self._quiet.set()
        self._hurry = asyncio.Event()  # a stop is flushing: no more backoff
        self._task: asyncio.Task[None] | None = None
        #: the store's latest refusal, kept until a write succeeds
        self.last_error: str | None = None
        self.writes = 0  # completion writes committed, and the completions in them
        self.written = 0

    @property
    def healthy(self) -> bool:
        """False while the store is refusing completions (the pool then stops claiming)."""
        return self._backoff == 0.0

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._inflight

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="taskdeck-completer")

    def add(self, completion: Completion) -> None:
        self._buffer.append(completion)
        self._idle.clear()
        self._signal.set()

    async def _run(self) -> None:
        while True:
            await self._signal.wait()
            self._signal.clear()
            while self._buffer:
                batch, self._buffer = self._buffer, []
                self._inflight = len(batch)
                self._quiet.clear()
                try:
                    if self._before is not None:
                        await self._before()
                    report = await self._store.complete(batch)
                except Exception as exc:
                    self._buffer[:0] = batch
                    self._inflight = 0
                    self._quiet.set()
                    self.last_error = str(exc)
                    self._backoff = min(MAX_BACKOFF, max(0.05, self._backoff * 2))
                    log.error(
                        "could not save %d completions (%s); retrying in %.2f s",
                        len(batch),
                        exc,
                        self._backoff,
                    )
                    self._on_error(exc)
                    if await wait_event(self._hurry, self._backoff):  # a stop: try again now
                        self._hurry.clear()
                    continue
                self._inflight = 0
                self._quiet.set()
                self._backoff = 0.0
                self.last_error = None
                self.writes += 1
                self.written += len(batch)
                self._on_report(report)
            self._idle.set()

    async def idle(self) -> None:
        """Wait until every completion handed over so far is committed."""
        await self._idle.wait()

    async def flush(self, deadline: float) -> int:
        """Wait until every completion handed over is committed, but not past
        ``deadline`` (``time.monotonic()``; the store gives up its blocked writes then);
        returns how many were not (their tasks stay ``running`` in the store until
        their leases expire, and the next start rescues them)."""
        self._backoff = min(self._backoff, 0.05)  # a long backoff would miss the window
        self._hurry.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):  # a write still out comes back at once
            await asyncio.wait_for(self._quiet.wait(), FLUSH_SETTLE)
        return self.pending

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
