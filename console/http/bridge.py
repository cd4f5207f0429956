"""The HTTP thread's way into the engine: calls that never hang, and the engine loop's
liveness.

The HTTP server runs on its own thread with its own event loop, so ``/health`` answers
while the engine's loop is blocked (a handler calling ``time.sleep`` in ``async def``).
Everything that touches the engine runs on the engine's loop through
:func:`asyncio.run_coroutine_threadsafe`, with a timeout: a blocked loop gives
:class:`EngineBusy` (a 503 with the reason), never a request that hangs.

Liveness: a callback on the engine loop stamps the time every :data:`BEAT` seconds; the
HTTP thread compares the stamp's age with the threshold (``--stall-threshold``, default
1 s). Reading a float another thread writes is atomic in CPython.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
#: Seconds between the engine loop's stamps.
BEAT = 0.1
#: Default seconds without a stamp before the loop counts as blocked.
STALL_THRESHOLD = 1.0
#: Default seconds an engine call may take before the request gets a 503.
CALL_TIMEOUT = 10.0


class EngineBusy(Exception):
    """The engine's loop is blocked, or did not answer in time; the text says which."""


class EngineBridge:
    """Runs calls on the engine's loop from the HTTP thread, and watches that loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        stall_threshold: float = STALL_THRESHOLD,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.stall_threshold = stall_threshold
        self.call_timeout = call_timeout
        self._stamp = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._beating = False

    # -- on the engine loop ---------------------------------------------------------
    def start(self) -> None:
        """Start the stamps (call from any thread)."""
        self._beating = True
        self.loop.call_soon_threadsafe(self._beat)

    def _beat(self) -> None:
        self._stamp = time.monotonic()
        if self._beating:
            self._handle = self.loop.call_later(BEAT, self._beat)

    def stop(self) -> None:
        self._beating = False
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
                self.loop.call_soon_threadsafe(handle.cancel)

    # -- on the HTTP thread ----------------------------------------------------------
    def stalled(self) -> str | None:
        """Why the engine loop counts as blocked now (None: it runs)."""
        age = time.monotonic() - self._stamp
        if age <= self.stall_threshold:
            return None
        return (
            f"the engine's event loop has not run for {age:.1f} s (threshold "
            f"{self.stall_threshold:g} s): something blocks it, e.g. a blocking call "
            "inside an async handler"
        )

    async def call(self, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """``await make()`` on the engine loop; :class:`EngineBusy` when the loop is
        blocked now or the call takes longer than ``timeout`` (default
        :attr:`call_timeout`). Exceptions of the call are raised here."""
        reason = self.stalled()
        if reason is not None:
            raise EngineBusy(reason)
        limit = self.call_timeout if timeout is None else timeout

        async def run() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except TimeoutError:
            future.cancel()
            raise EngineBusy(
                self.stalled() or f"the engine did not answer within {limit:g} s"
            ) from None
