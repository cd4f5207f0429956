"""Small asyncio helpers shared by the engine's loops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Generator
from typing import Any


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    try:
        async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
            await event.wait()
    except TimeoutError:
        return False
    return True


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Give ``future`` its result or error, unless it is already done (e.g. cancelled)."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class TimedSteps:
    """Await a coroutine while timing each of its steps on the event loop.

    A step is the code between two awaits that really suspend. ``total`` adds up
    how long the coroutine held the loop, ``longest`` is its worst single step —
    an ``async def`` handler that calls ``time.sleep`` shows up here. Costs about a
    microsecond per step; cancellation and exceptions pass through untouched.
    """

    __slots__ = ("_coro", "longest", "total")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self.total = 0.0
        self.longest = 0.0

    def _note(self, took: float) -> None:
        self.total += took
        if took > self.longest:
            self.longest = took

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        send: Any = None
        throw: BaseException | None = None
        while True:
            start = time.perf_counter()
            try:
                yielded = coro.send(send) if throw is None else coro.throw(throw)
            except StopIteration as stop:
                self._note(time.perf_counter() - start)
                return stop.value
            except BaseException:
                self._note(time.perf_counter() - start)
                raise
            self._note(time.perf_counter() - start)
            try:
                send, throw = (yield yielded), None
            except BaseException as exc:  # cancellation and the like go to the coroutine
                send, throw = None, exc
