"""The child side of the ``process`` executor: ``python -m engine.pool.worker_process PARENT_PID``.

It speaks JSON lines with its parent engine (stdin in, a private copy of stdout
out; the handler's own prints go to stderr), runs one task at a time, and never
unpickles anything. Messages:

parent → child: ``init`` (sys.path, main script), ``run`` (handler and payload),
``soft_timeout``, ``cancel``, ``stack``.
child → parent: ``ready``, ``progress``, ``log`` (a line the task logged, within its
``task_log_limit``; the count of lines dropped past it comes with ``done``), ``done``
(result JSON or error text, the CPU time and the child's RSS after the task),
``stack`` (the main thread's frames, which run the task, outermost first: the reader
thread answers while the handler runs).

A child never outlives its parent, whatever the moment the parent dies (starting,
idle, in the middle of a CPU-bound handler): on Linux the kernel kills it
(``PR_SET_PDEATHSIG``); everywhere a watcher thread exits it when its parent pid
changes; and a pipe that breaks (the parent is gone) ends it at once. It leaves
quietly, with ``os._exit``: no traceback, no buffered output flushed into a pipe
nobody reads.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import inspect
import json
import logging
import os
import runpy
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import IO, Any, NoReturn

import psutil

from engine import context, stacks
from engine.codec import to_json

#: How often the watcher thread looks at the parent pid (seconds).
PARENT_CHECK_INTERVAL = 0.2
_PR_SET_PDEATHSIG = 1


def _parent_gone() -> NoReturn:
    """Leave at once and quietly: nobody is left to report to."""
    os._exit(0)


def die_with_parent(parent: int) -> None:
    """Make sure this process ends when ``parent`` does (see the module docstring)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl here: the watcher still works
            pass
    if os.getppid() != parent:  # it died before the death signal was set
        _parent_gone()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_INTERVAL)
    _parent_gone()


class _ChildLogs:
    """The attempt's log lines, kept within its limit and sent to the parent as they
    come (the parent stores them); the lines past the limit are only counted."""

    def __init__(self, limit: int, send: Callable[[dict[str, Any]], None]) -> None:
        self.limit = limit
        self._send = send
        self._kept = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def add(self, at: float, levelno: int, logger: str, message: str) -> bool:
        text, size = context.log_line(logger, message)
        if self._kept + size > self.limit:
            self.dropped(1, size)
            return False
        self._kept += size
        self._send({"op": "log", "at": at, "level": levelno, "logger": logger, "message": text})
        return True

    def dropped(self, lines: int, size: int) -> None:
        self.dropped_lines += lines
        self.dropped_bytes += size


class _Capture(logging.Handler):
    """Sends the records a task makes to its log; others go where they would go
    without this handler (``logging.lastResort``: stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        ctx = context.bound()
        if ctx is not None and ctx._logs is not None:
            message = context.record_text(record)
            ctx._logs.add(record.created, record.levelno, record.name, message)
        elif logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


class _ChildContext(context.TaskContext):
    """A task context whose progress and log lines are forwarded to the parent."""

    __slots__ = ("_send",)

    def __init__(self, info: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(
            info["id"], info["attempt"], info["handler"], info["queue"], info["max_attempts"]
        )
        self._send = send
        limit = int(info.get("log_limit") or 0)
        self._logs = _ChildLogs(limit, send) if limit > 0 else None
        logging.getLogger().setLevel(int(info.get("log_level", logging.INFO)))

    def log_dropped(self) -> list[int] | None:
        logs = self._logs
        if not isinstance(logs, _ChildLogs) or not logs.dropped_lines:
            return None
        return [logs.dropped_lines, logs.dropped_bytes]

    def progress(self, fraction: float, message: str | None = None) -> None:
        super().progress(fraction, message)
        self._send({"op": "progress", "fraction": self.progress_fraction, "message": self.message})


class Child:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._jobs: list[dict[str, Any]] = []
        self._ready = threading.Condition()
        self._ctx: _ChildContext | None = None
        self._main_path: str | None = None
        self._closed = False
        self._awaiting: Any = None  # an async handler's coroutine, while it runs

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self._out.write(line)
                self._out.flush()
            except (OSError, ValueError):  # the pipe broke: the parent is gone
                _parent_gone()

    # -- stdin reader thread: control messages arrive while a handler runs -----
    def read_commands(self, stream: IO[str]) -> None:
        """Read the parent's messages until its end of the pipe closes."""
        try:
            for line in stream:
                self._handle(json.loads(line))
        except (OSError, ValueError):  # a broken pipe or a garbled line: stop
            pass
        finally:
            with self._ready:
                self._closed = True
                self._ready.notify()

    def _handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "init":
            sys.path[:] = message.get("sys_path") or sys.path
            self._main_path = message.get("main_path")
            self.send({"op": "ready", "pid": os.getpid()})
        elif op == "run":
            with self._ready:
                self._jobs.append(message)
                self._ready.notify()
        elif op == "soft_timeout" and self._ctx is not None:
            self._ctx._mark_soft_timeout()
        elif op == "cancel" and self._ctx is not None:
            self._ctx._mark_cancelled()
        elif op == "stack":
            awaiting = self._awaiting
            if awaiting is not None:  # an async handler: its await chain, not the loop's
                frames = stacks.coroutine_frames(awaiting)
            else:
                frames = stacks.thread_frames(threading.main_thread().ident)
            self.send({"op": "stack", "frames": frames})

    def next_job(self) -> dict[str, Any] | None:
        with self._ready:
            while not self._jobs and not self._closed:
                self._ready.wait()
            return self._jobs.pop(0) if self._jobs else None

    # -- main thread: run jobs ---------------------------------------------------
    def resolve(self, module_name: str, qualname: str) -> Any:
        if module_name in ("__main__", "__mp_main__"):
            module = sys.modules.get("__mp_main__")
            if module is None:
                if not self._main_path:
                    raise RuntimeError(
                        "the handler is defined in a script without a file (interactive?); "
                        "move it into a module so worker processes can import it"
                    )
                namespace = runpy.run_path(self._main_path, run_name="__mp_main__")
                module = types.ModuleType("__mp_main__")
                module.__dict__.update(namespace)
                sys.modules["__mp_main__"] = module
        else:
            module = importlib.import_module(module_name)
        target: Any = module
        for part in qualname.split("."):
            target = getattr(target, part)
        return getattr(target, "__wrapped__", target)

    def run(self, job: dict[str, Any]) -> None:
        ctx = _ChildContext(job["task"], self.send)
        self._ctx = ctx
        token = context.bind(ctx)
        cpu_start = time.process_time()
        try:
            fn = self.resolve(job["module"], job["qualname"])
            kwargs = json.loads(job["payload"])
            result = fn(**kwargs)
            if inspect.isawaitable(result):
                self._awaiting = result
                result = asyncio.run(_await(result))
            try:
                text = to_json(result, "result")
            except ValueError as exc:
                self.send(
                    {
                        "op": "done",
                        "ok": False,
                        "not_serializable": True,
                        "error": str(exc),
                        "type": "ResultNotSerializable",
                        "mro": [],
                        "cpu": _since(cpu_start),
                        "rss": _rss(),
                        "log_dropped": ctx.log_dropped(),
                    }
                )
                return
            self.send(
                {
                    "op": "done",
                    "ok": True,
                    "result": text,
                    "cpu": _since(cpu_start),
                    "rss": _rss(),
                    "log_dropped": ctx.log_dropped(),
                }
            )
        except BaseException as exc:
            kind = type(exc)
            mro = [f"{c.__module__}.{c.__qualname__}" for c in kind.__mro__]
            self.send(
                {
                    "op": "done",
                    "ok": False,
                    "error": "".join(traceback.format_exception(exc)),
                    "type": kind.__name__,
                    "mro": mro,
                    "cpu": _since(cpu_start),
                    "rss": _rss(),
                    "log_dropped": ctx.log_dropped(),
                }
            )
        finally:
            context.unbind(token)
            self._ctx = None
            self._awaiting = None


def _rss() -> int | None:
    """This process's resident memory now (bytes), sent with each result so the parent
    can replace a child over ``max_memory_per_child`` and spot one that leaks."""
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return None


def _since(cpu_start: float) -> float:
    return time.process_time() - cpu_start


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent engine decides
    # when this child stops (it closes our stdin), so ignore it here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent names itself (``python -m engine.pool.worker_process PID``): if it died
    # while this interpreter started, getppid() is already someone else.
    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
    # Keep the real stdout for the protocol; send the handler's prints to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    logging.getLogger().addHandler(_Capture())
    child = Child(out)
    reader = threading.Thread(target=child.read_commands, args=(sys.stdin,), daemon=True)
    reader.start()
    while (job := child.next_job()) is not None:
        child.run(job)


if __name__ == "__main__":
    main()
