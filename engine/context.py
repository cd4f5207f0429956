"""``current_task()``: what a running handler can learn about, and report on, itself.

The context is a plain object with atomic attribute writes, so it works the same
from an async handler, a thread, or (through a pipe) a worker process. The engine
reads progress on its own clock; handlers never wait on the engine.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
from typing import Protocol

from engine.codec import find_surrogate

MAX_MESSAGE = 200
#: level names ``log`` accepts (as :mod:`logging` numbers them)
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


#: characters of one log line kept; a longer line is cut in the middle
MAX_LOG_LINE = 32_000


class LogSink(Protocol):
    """Where an attempt's log lines go (see :mod:`engine.tasklog`): at most ``limit``
    bytes are kept; ``dropped`` counts lines dropped before they reached it."""

    limit: int

    def add(self, at: float, levelno: int, logger: str, message: str) -> bool: ...

    def dropped(self, lines: int, size: int) -> None: ...


def log_line(logger: str, message: str) -> tuple[str, int]:
    """A log line as it is kept (valid UTF-8, cut if very long) and the bytes it counts
    for against ``task_log_limit``."""
    if len(message) > MAX_LOG_LINE:
        half = MAX_LOG_LINE // 2
        cut = f"\n… ({len(message) - MAX_LOG_LINE:,} characters cut) …\n"
        message = message[:half] + cut + message[-half:]
    encoded = message.encode("utf-8", "replace")
    return encoded.decode("utf-8"), len(encoded) + len(logger) + 16


def record_text(record: logging.LogRecord) -> str:
    """A logging record's message as a task log keeps it: formatted (a bad format
    string keeps what was given) and with its traceback, if it has one."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what was given
        message = str(record.msg)
    if record.exc_info and record.exc_info[0] is not None:
        message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
    return message


class TaskContext:
    """The running task, as seen from inside its handler."""

    __slots__ = (
        "_cancel_event",
        "_cancelled",
        "_logs",
        "_soft_async",
        "_soft_event",
        "_soft_expired",
        "attempt",
        "cpu_time",
        "handler",
        "id",
        "max_attempts",
        "max_step",
        "message",
        "progress_fraction",
        "progress_version",
        "queue",
    )

    def __init__(
        self, task_id: str, attempt: int, handler: str, queue: str, max_attempts: int
    ) -> None:
        self.id = task_id
        self.attempt = attempt
        self.handler = handler
        self.queue = queue
        self.max_attempts = max_attempts
        self.progress_fraction: float | None = None
        self.message: str | None = None
        self.progress_version = 0
        self._cancelled = False
        self._soft_expired = False
        self._cancel_event: threading.Event | None = None
        self._soft_event: threading.Event | None = None
        self._soft_async: asyncio.Event | None = None
        self._logs: LogSink | None = None  # set by the engine while the attempt runs
        #: Measured by the engine: CPU seconds (threads, processes) or seconds holding
        #: the event loop (async), and an async handler's longest single step.
        self.cpu_time: float | None = None
        self.max_step: float | None = None

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress: ``fraction`` from 0.0 to 1.0 and an optional short message."""
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(f"progress fraction must be a number from 0 to 1; got {fraction!r}")
        if math.isnan(fraction) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress fraction must be from 0 to 1; got {fraction!r}")
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(f"progress message must be a string; got {message!r}")
            if (at := find_surrogate(message)) is not None:
                raise ValueError(
                    f"progress message must be valid Unicode text; it has the lone surrogate "
                    f"U+{ord(message[at]):04X} at character {at}"
                )
            message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
        self.progress_fraction = float(fraction)
        self.message = message
        self.progress_version += 1

    def log(self, message: str, level: str | int = "info") -> None:
        """Add a line to this attempt's log (as ``logging`` would; see "Task logs").

        ``level``: debug, info, warning, error or critical (or a ``logging`` number).
        """
        if not isinstance(message, str):
            raise TypeError(f"log message must be a string; got {type(message).__name__}")
        levelno = check_level(level)
        if self._logs is not None:
            self._logs.add(time.time(), levelno, self.handler, message)

    @property
    def cancelled(self) -> bool:
        """True once an operator cancelled this task (thread handlers should stop)."""
        return self._cancelled

    @property
    def soft_timeout_expired(self) -> bool:
        """True once the handler's ``soft_timeout`` has passed: wrap up soon."""
        return self._soft_expired

    @property
    def cancel_event(self) -> threading.Event:
        """A ``threading.Event`` set on cancel (for thread handlers that wait)."""
        if self._cancel_event is None:
            self._cancel_event = threading.Event()
            if self._cancelled:
                self._cancel_event.set()
        return self._cancel_event

    @property
    def soft_timeout_event(self) -> threading.Event:
        """A ``threading.Event`` set when the soft timeout passes."""
        if self._soft_event is None:
            self._soft_event = threading.Event()
            if self._soft_expired:
                self._soft_event.set()
        return self._soft_event

    async def soft_timeout_reached(self) -> None:
        """Wait until the soft timeout passes (for async handlers; e.g. race it with
        the work and save partial results)."""
        if self._soft_expired:
            return
        if self._soft_async is None:
            self._soft_async = asyncio.Event()
        await self._soft_async.wait()

    def _mark_cancelled(self) -> None:
        self._cancelled = True
        if self._cancel_event is not None:
            self._cancel_event.set()

    def _mark_soft_timeout(self) -> None:
        """Called on the engine's event loop when the soft timeout passes."""
        self._soft_expired = True
        if self._soft_event is not None:
            self._soft_event.set()
        if self._soft_async is not None:
            self._soft_async.set()

    def event_fields(self) -> dict[str, object]:
        """The fields an event about this task carries."""
        return {
            "task_id": self.id,
            "handler": self.handler,
            "queue": self.queue,
            "attempt": self.attempt,
        }

    def __repr__(self) -> str:
        return (
            f"TaskContext(id={self.id!r}, handler={self.handler!r}, "
            f"attempt={self.attempt}/{self.max_attempts})"
        )


_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("taskdeck_current_task")


def current_task() -> TaskContext:
    """The task the calling handler is running for.

    Raises ``RuntimeError`` outside a handler.
    """
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError(
            "current_task() was called outside a running task; call it from inside a handler"
        ) from None


def bound() -> TaskContext | None:
    """The task bound in the calling context, or None outside a handler."""
    return _current.get(None)


def check_level(level: object) -> int:
    """A log level given as a name (any case) or a ``logging`` number (0 to 100)."""
    if isinstance(level, str) and level.lower() in LOG_LEVELS:
        return LOG_LEVELS[level.lower()]
    if isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 100:
        return level
    raise ValueError(
        f"log level must be one of {', '.join(LOG_LEVELS)} (or a logging level number "
        f"from 0 to 100); got {level!r}"
    )


def bind(ctx: TaskContext) -> contextvars.Token[TaskContext]:
    return _current.set(ctx)


def unbind(token: contextvars.Token[TaskContext]) -> None:
    _current.reset(token)
