"""A warning for an engine that is started and never stopped.

An engine nobody stops (a script that forgets ``async with engine:``) no longer keeps
the interpreter from exiting: its threads are daemons, and its leases bring running
tasks back on the next start. It is still a mistake (the last results may wait for
their leases to expire), so when such an engine is garbage-collected, or the
interpreter exits with it still running, :class:`UnclosedEngineWarning` says so. It
is a ``RuntimeWarning``, which Python shows by default (a ``ResourceWarning``, as
asyncio's unclosed transports use, is hidden unless ``-W`` or ``-X dev`` asks).
"""

from __future__ import annotations

import warnings
import weakref

from engine.errors import UnclosedEngineWarning


class StopWatch:
    """Arms a warning while an engine runs; the finalizer holds no reference to it."""

    def __init__(self) -> None:
        self._finalizer: weakref.finalize[[str], object] | None = None

    def started(self, engine: object, url: str) -> None:
        self.stopped()
        self._finalizer = weakref.finalize(engine, _never_stopped, url)

    def stopped(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None


def _never_stopped(url: str) -> None:
    warnings.warn(
        f"Engine on {url} was never stopped; use `async with engine:` or "
        "`await engine.stop()` (its running tasks come back when their leases expire)",
        UnclosedEngineWarning,
        stacklevel=1,
    )
