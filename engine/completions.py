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
from collections.abc import Callable

from engine.store.base import Completion, CompletionReport, Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


class Completer:
    def __init__(
        self,
        store: Store,
        on_report: Callable[[CompletionReport], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        self._store = store
        self._on_report = on_report
        self._on_error = on_error
        self._buffer: list[Completion] = []
        self._inflight = 0
        self._backoff = 0.0
        self._signal = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

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
                try:
                    report = await self._store.complete(batch)
                except Exception as exc:
                    self._buffer[:0] = batch
                    self._inflight = 0
                    self._backoff = min(MAX_BACKOFF, max(0.05, self._backoff * 2))
                    log.error(
                        "could not save %d completions (%s); retrying in %.2f s",
                        len(batch),
                        exc,
                        self._backoff,
                    )
                    self._on_error(exc)
                    await asyncio.sleep(self._backoff)
                    continue
                self._inflight = 0
                self._backoff = 0.0
                self._on_report(report)
            self._idle.set()

    async def idle(self) -> None:
        """Wait until every completion handed over so far is committed."""
        await self._idle.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
