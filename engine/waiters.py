"""Callers of ``engine.wait`` parked until their task finishes here (or a poll is due)."""

from __future__ import annotations

import asyncio


class Waiters:
    """Futures per task id: resolved when this process sees the task finish, failed
    all at once when the engine stops."""

    def __init__(self) -> None:
        self._futures: dict[int, set[asyncio.Future[None]]] = {}

    async def until_finished(self, task_id: int, seconds: float) -> None:
        """Return when the task finishes here; ``TimeoutError`` after ``seconds``."""
        future = asyncio.get_running_loop().create_future()
        futures = self._futures.setdefault(task_id, set())
        futures.add(future)
        try:
            await asyncio.wait_for(future, seconds)
        finally:
            futures.discard(future)
            if not futures:
                self._futures.pop(task_id, None)

    def finished(self, task_id: int) -> None:
        for future in self._futures.pop(task_id, ()):
            if not future.done():
                future.set_result(None)

    def fail_all(self, exc: Exception) -> None:
        for futures in self._futures.values():
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
