"""Where the metrics collector also records each attempt (the durable history's
recorder, :class:`engine.history.cells.Recorder`, has this shape)."""

from __future__ import annotations

from typing import Protocol


class AttemptSink(Protocol):
    def started(self, handler: str, queue: str, wait: float) -> None: ...

    def finished(
        self, handler: str, queue: str, run_time: float, outcome: str, timeout: bool
    ) -> None: ...
