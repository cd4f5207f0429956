"""The signals that stop an engine run from the command line: the first SIGINT,
SIGTERM or SIGHUP stops gracefully, a second one stops at once.

SIGHUP is only taken when it is not ignored: under ``nohup`` a closed terminal must
not stop the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


#: The exit code of a stop at once (as a shell reports a process ended by SIGINT).
EXIT_NOW = 130


def exit_at_once(restore: Callable[[], object] | None = None) -> NoReturn:
    """The second stop signal: give the terminal back (``restore``) and exit now,
    without a graceful stop; the leases bring the running tasks back on the next
    start."""
    if restore is not None:
        with contextlib.suppress(Exception):
            restore()
    os._exit(EXIT_NOW)


class StopSignals:
    """Calls ``graceful(name)`` on the first stop signal and ``now()`` on the next."""

    def __init__(self, graceful: Callable[[str], None], now: Callable[[], None]) -> None:
        self._graceful = graceful
        self._now = now
        self.received = 0
        self._installed: list[signal.Signals] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in STOP_SIGNALS:
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # nohup: keep running when the terminal goes
            loop.add_signal_handler(signum, self._on_signal, signum)
            self._installed.append(signum)

    def remove(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in self._installed:
            loop.remove_signal_handler(signum)
        self._installed = []

    def _on_signal(self, signum: signal.Signals) -> None:
        self.received += 1
        if self.received == 1:
            self._graceful(signum.name)
        else:
            self._now()
