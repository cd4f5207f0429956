"""Status lines that never hold up the engine: ``taskdeck run --headless`` writes its
lines from a thread, so a reader that falls behind (a full pipe, a paused terminal,
``| less`` left open) never blocks the event loop — heartbeats, leases and tasks go on.

Lines the reader cannot take are dropped (the newest are kept) and counted in the next
line written (``--json``: its ``dropped_lines`` key); an output that is closed
(``| head -3``) ends the status lines, not the engine: that is said once on stderr.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from typing import TextIO

_END = None


class StatusOut:
    """Write lines to ``out`` on a thread; ``write`` never blocks."""

    def __init__(
        self, out: TextIO, json_lines: bool = False, keep: int = 32, errors: TextIO | None = None
    ) -> None:
        self._out = out
        self._json = json_lines
        self._errors = errors if errors is not None else sys.stderr
        self._lines: queue.Queue[str | None] = queue.Queue(maxsize=keep)
        self._lock = threading.Lock()
        self.dropped = 0  # lines not written since the last one that was
        self.dropped_total = 0
        self.closed = False  # the reader went away: nothing more is written
        self._thread = threading.Thread(target=self._run, name="taskdeck-status", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        """Queue one line; if the reader is that far behind, the oldest queued goes."""
        if self.closed:
            return
        while True:
            try:
                self._lines.put_nowait(line)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._lines.get_nowait()
                    with self._lock:
                        self.dropped += 1
                        self.dropped_total += 1

    def close(self, timeout: float = 1.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds: blocking; call it off
        the event loop), then end the thread."""
        with contextlib.suppress(queue.Full):
            self._lines.put(_END, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            line = self._lines.get()
            if line is _END:
                return
            with self._lock:
                dropped, self.dropped = self.dropped, 0
            if dropped and self._json:  # one more key in the object: the line stays JSON
                line = f'{line[:-1]}, "dropped_lines": {dropped}}}'
            elif dropped:
                line += f"  ({dropped:,} status lines dropped: the output was not read)"
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (OSError, ValueError):  # a closed pipe (BrokenPipeError) or stream
                self.closed = True
                with contextlib.suppress(OSError, ValueError):
                    self._errors.write("status output closed; the engine goes on without it\n")
                    self._errors.flush()
                return
