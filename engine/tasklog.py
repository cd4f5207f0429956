"""Task logs: what a handler writes with :mod:`logging` (or ``current_task().log``),
captured per task and attempt, bounded, and written to the store in batches.

A record belongs to the task whose :class:`~engine.context.TaskContext` is bound in
the context the record was made in (a contextvar: asyncio tasks inherit it, the
thread executor binds it on its thread, a worker process captures in the child and
ships the lines back). Each attempt keeps at most ``task_log_limit`` bytes; past
that, lines are counted, not kept, and one marker line at the end of the attempt
says how many were dropped. Lines wait in memory (bounded by the limit) and are
written by :meth:`TaskLogs.flush`: on the progress clock, and before each batch of
completions (so a finished task's lines are stored before it shows as finished).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from engine import context
from engine.checks import parse_task_id
from engine.codec import Codec
from engine.settings import Settings
from engine.store import task_logs as plans
from engine.store.base import Store

log = logging.getLogger(__name__)

#: the logger name of lines the engine writes itself (the "dropped" marker)
ENGINE_LOGGER = "taskdeck"
#: lines one write inserts at most
WRITE_BATCH = 500
#: lines one read returns at most
READ_LIMIT = 10_000

Row = tuple[int, int, float, str, str, str]  # task id, attempt, time, level, logger, message


@dataclass(frozen=True, slots=True)
class LogLine:
    """One stored line of a task's log; ``seq`` orders a task's lines (pass the last
    one seen as ``after`` to read only newer ones)."""

    seq: int
    at: float
    attempt: int
    level: str
    logger: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "time": self.at,
            "attempt": self.attempt,
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
        }


class LogBuffer:
    """One attempt's captured lines: kept up to ``limit`` bytes, the rest counted.

    Thread-safe: a thread handler logs while the engine's loop takes the lines.
    """

    def __init__(self, owner: object, task_id: int, attempt: int, limit: int) -> None:
        self.owner = owner
        self.task_id = task_id
        self.attempt = attempt
        self.limit = limit
        self.kept = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.closed = False
        self._lock = threading.Lock()
        self._pending: list[Row] = []

    def add(self, at: float, levelno: int, logger: str, message: str) -> bool:
        """Keep one line if it fits; returns whether it was kept."""
        text, size = context.log_line(logger, message)
        with self._lock:
            if self.closed or self.kept + size > self.limit:
                self.dropped_lines += 1
                self.dropped_bytes += size
                return False
            self.kept += size
            level = logging.getLevelName(levelno)
            self._pending.append((self.task_id, self.attempt, at, level, logger, text))
            return True

    def dropped(self, lines: int, size: int) -> None:
        """Count lines dropped elsewhere (a worker process's own buffer)."""
        with self._lock:
            self.dropped_lines += lines
            self.dropped_bytes += size

    def close(self) -> None:
        """The attempt ended: no more lines; the marker if any were dropped."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self.dropped_lines:
                note = (
                    f"{self.dropped_lines:,} more lines ({self.dropped_bytes:,} bytes) dropped: "
                    f"this attempt reached task_log_limit ({self.limit:,} bytes)"
                )
                row = (self.task_id, self.attempt, time.time(), "WARNING", ENGINE_LOGGER, note)
                self._pending.append(row)

    def take(self) -> list[Row]:
        with self._lock:
            taken, self._pending = self._pending, []
            return taken


class _Capture(logging.Handler):
    """On the root logger while an engine runs: a record made inside a task goes to
    that attempt's buffer. With no other handler on the root logger (logging not
    configured), records from outside tasks still reach ``logging.lastResort`` as
    they would without this handler."""

    def __init__(self, owner: TaskLogs, forward: bool) -> None:
        super().__init__(logging.NOTSET)
        self._owner = owner
        self._forward = forward

    def emit(self, record: logging.LogRecord) -> None:
        ctx = context.bound()
        sink = None if ctx is None else ctx._logs
        if isinstance(sink, LogBuffer) and sink.owner is self._owner:
            sink.add(record.created, record.levelno, record.name, context.record_text(record))
        elif self._forward and (last := logging.lastResort) and record.levelno >= last.level:
            last.handle(record)


class TaskLogs:
    """The engine's part for task logs: the capture handler, each running attempt's
    buffer, the batched writes, and reads."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        codec: Codec,
        require_running: Callable[[], None],
    ) -> None:
        self._store = store
        self._settings = settings
        self._codec = codec
        self._require_running = require_running
        self._open: set[LogBuffer] = set()
        self._lock: asyncio.Lock | None = None
        self._handler: _Capture | None = None
        self._old_level: int | None = None
        self.written = 0  #: lines written so far
        self.lost = 0  #: lines the store refused (logs never hold up the engine)

    # -- capture ------------------------------------------------------------------
    def install(self) -> None:
        """Start capturing: a handler on the root logger. If logging is not configured
        (no root handler, root at WARNING), the root logger is set to INFO so a
        handler's ``log.info`` lines are captured; records from outside tasks keep
        going where they went before."""
        if self._handler is not None:
            return
        root = logging.getLogger()
        unconfigured = not root.handlers
        self._handler = _Capture(self, forward=unconfigured)
        root.addHandler(self._handler)
        if unconfigured and root.level > logging.INFO:
            self._old_level = root.level
            root.setLevel(logging.INFO)

    def uninstall(self) -> None:
        if self._handler is None:
            return
        root = logging.getLogger()
        root.removeHandler(self._handler)
        self._handler = None
        if self._old_level is not None and root.level == logging.INFO:
            root.setLevel(self._old_level)
        self._old_level = None

    @staticmethod
    def level() -> int:
        """The lowest level a record must have to be made at all (for worker processes)."""
        return logging.getLogger().getEffectiveLevel()

    def open(self, ctx: context.TaskContext, task_id: int) -> LogBuffer | None:
        """A buffer for a starting attempt, bound to its context (None: logs are off)."""
        limit = self._settings().task_log_limit
        if limit <= 0:
            return None
        buffer = LogBuffer(self, task_id, ctx.attempt, limit)
        ctx._logs = buffer
        self._open.add(buffer)
        return buffer

    # -- writes -------------------------------------------------------------------
    async def flush(self) -> int:
        """Write every line captured so far; returns how many. A store error is logged
        and the lines counted as lost: logs never hold up completions."""
        if not self._open:
            return 0
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            rows: list[Row] = []
            for buffer in list(self._open):
                closed = buffer.closed  # read first: a line added after close is none
                rows.extend(buffer.take())
                if closed:
                    self._open.discard(buffer)
            seal = self._codec.seal
            rows = [(t, a, at, lv, lg, seal(m)) for t, a, at, lv, lg, m in rows]
            for start in range(0, len(rows), WRITE_BATCH):
                chunk = rows[start : start + WRITE_BATCH]
                try:
                    await self._store.run_plan(partial(plans.add, rows=chunk))
                except Exception as exc:
                    self.lost += len(chunk)
                    log.warning("could not save %d task log lines: %s", len(chunk), exc)
                else:
                    self.written += len(chunk)
            return len(rows)

    # -- reads --------------------------------------------------------------------
    async def lines(self, task_id: str | int, after: int | None = None) -> list[LogLine]:
        """The task's stored lines after ``after`` (a ``seq``), oldest first, at most
        :data:`READ_LIMIT` at a time; :class:`TaskNotFound` if there is no such task."""
        tid = parse_task_id(task_id)
        self._require_running()
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise TypeError(f"after must be a line's seq (a whole number); got {after!r}")
        plan = partial(plans.read, task_id=tid, after=max(after or 0, 0), limit=READ_LIMIT)
        found = await self._store.run_plan(plan)
        if not found:
            await self._store.get(tid)  # no lines: is there a task at all?
        unseal = self._codec.unseal
        return [LogLine(s, at, a, lv, lg, unseal(m)) for s, a, at, lv, lg, m in found]
