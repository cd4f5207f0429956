"""How blocking handlers run: on threads, or in worker processes.

``ThreadRunner`` starts a fresh thread whenever none is idle. A thread whose
task was abandoned (hard timeout, cancel, shutdown) cannot be killed in Python;
it is counted as *leaked* until it returns, and it never takes a worker slot, so
the pool keeps its capacity.

``ProcessRunner`` keeps one child process per concurrently running process task
(``python -m engine.pool.worker_process``), talks JSON lines with it, and kills the
child on a hard timeout or cancel — the one executor where a running task can
really be stopped. It replaces a child after ``max_tasks_per_child`` tasks or once
its memory is over ``max_memory_per_child`` (see :mod:`engine.pool.children`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

from engine import context
from engine.aio import settle
from engine.context import TaskContext
from engine.errors import RemoteError, WorkerProcessLost
from engine.pool.children import ChildRecord, Replaced
from engine.registry import Handler
from engine.snapshot import ProcessChild

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Threads


class _Job:
    __slots__ = ("ctx", "fn", "future", "kwargs", "loop", "state")

    def __init__(
        self,
        fn: Callable[..., Any],
        kwargs: dict[str, Any],
        ctx: TaskContext,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn, self.kwargs, self.ctx, self.future, self.loop = fn, kwargs, ctx, future, loop
        self.state = "running"  # -> "done" | "abandoned"


class ThreadRunner:
    """Runs plain functions on daemon threads; see the module docstring."""

    def __init__(self, idle_timeout: float = 30.0) -> None:
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._idle: list[SimpleQueue[_Job | None]] = []
        self.leaked = 0
        self.leaked_total = 0
        self.threads = 0
        #: the thread each running task's handler runs on (for its live stack)
        self.idents: dict[TaskContext, int] = {}

    def run(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], ctx: TaskContext
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = _Job(fn, kwargs, ctx, future, loop)
        future.add_done_callback(lambda f: self._abandon(job) if f.cancelled() else None)
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                self.threads += 1
        if inbox is not None:
            inbox.put(job)
        else:
            threading.Thread(
                target=self._thread_main, args=(job,), daemon=True, name="taskdeck-thread"
            ).start()
        return future

    def _abandon(self, job: _Job) -> None:
        with self._lock:
            if job.state == "running":
                job.state = "abandoned"
                self.leaked += 1
                self.leaked_total += 1

    def _finish(self, job: _Job, result: Any, error: BaseException | None) -> None:
        with self._lock:
            if job.state == "abandoned":
                self.leaked -= 1
                return
            job.state = "done"
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            job.loop.call_soon_threadsafe(settle, job.future, result, error)

    def _thread_main(self, job: _Job | None) -> None:
        inbox: SimpleQueue[_Job | None] = SimpleQueue()
        while job is not None:
            token = context.bind(job.ctx)
            self.idents[job.ctx] = threading.get_ident()
            cpu_start = time.thread_time()
            try:
                result = job.fn(**job.kwargs)
            except BaseException as exc:
                self._finish(job, None, exc)
            else:
                self._finish(job, result, None)
            finally:
                job.ctx.cpu_time = time.thread_time() - cpu_start
                self.idents.pop(job.ctx, None)
                context.unbind(token)
            job = None
            with self._lock:
                self._idle.append(inbox)
            try:
                job = inbox.get(timeout=self._idle_timeout)
            except Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        self.threads -= 1
                        return
                job = inbox.get()  # a job was handed to us as we timed out
        with self._lock:
            self.threads -= 1

    def close(self) -> None:
        """Let idle threads exit now (each counts itself out as it leaves)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)


# ---------------------------------------------------------------------------
# Processes


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.record = ChildRecord(proc.pid)
        self.born = time.monotonic()
        self.rss: int | None = None  # after its last task, as it measured it
        self.ctx: TaskContext | None = None
        self._future: asyncio.Future[dict[str, Any]] | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stacks: list[asyncio.Future[list[Any]]] = []  # stack requests, in order
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self._reader.done()

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write((json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8"))

    async def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                message = json.loads(line)
                op = message.get("op")
                if op == "ready":
                    if not self._ready.done():
                        self._ready.set_result(None)
                elif op == "progress" and self.ctx is not None:
                    self.ctx.progress(message["fraction"], message.get("message"))
                elif op == "log" and self.ctx is not None and self.ctx._logs is not None:
                    self.ctx._logs.add(
                        message["at"], message["level"], message["logger"], message["message"]
                    )
                elif op == "stack":
                    self._answer_stack(message.get("frames") or [])
                elif op == "done" and self._future is not None and not self._future.done():
                    self._future.set_result(message)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            log.error("worker process %s sent an unreadable message: %s", self.proc.pid, exc)
            self.kill()
        except asyncio.CancelledError:
            self.kill()  # nobody will read from it again; do not wait for it here
            raise
        code = await self.proc.wait()
        lost = WorkerProcessLost(f"the worker process exited with code {code}")
        for pending in (self._ready, self._future):
            if pending is not None and not pending.done():
                pending.set_exception(lost)

    async def wait_ready(self) -> None:
        await self._ready

    def _answer_stack(self, frames: list[Any]) -> None:
        while self._stacks:
            waiter = self._stacks.pop(0)
            if not waiter.done():
                waiter.set_result(frames)
                return

    async def stack(self, timeout: float) -> list[Any] | None:
        """The raw frames (outermost first) of the child's main thread, which runs the
        task; None if it does not answer within ``timeout`` seconds."""
        waiter: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._stacks.append(waiter)
        self.send({"op": "stack"})
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        finally:
            if waiter in self._stacks:
                self._stacks.remove(waiter)

    async def run(
        self, handler: Handler, payload_json: str, ctx: TaskContext, log_level: int
    ) -> str:
        self.ctx = ctx
        self._future = asyncio.get_running_loop().create_future()
        task = {
            "id": ctx.id,
            "attempt": ctx.attempt,
            "handler": ctx.handler,
            "queue": ctx.queue,
            "max_attempts": ctx.max_attempts,
            # the child keeps the attempt's log lines within the same limit
            "log_limit": 0 if ctx._logs is None else ctx._logs.limit,
            "log_level": log_level,
        }
        self.send(
            {
                "op": "run",
                "module": handler.module,
                "qualname": handler.qualname,
                "payload": payload_json,
                "task": task,
            }
        )
        try:
            message = await self._future
        finally:
            self.ctx = None
            self._future = None
        self.rss = int(message["rss"]) if message.get("rss") is not None else None
        if message.get("cpu") is not None:
            ctx.cpu_time = float(message["cpu"])
        if message.get("log_dropped") and ctx._logs is not None:
            ctx._logs.dropped(*message["log_dropped"])
        if message.get("ok"):
            return str(message["result"])
        raise RemoteError(
            message.get("error", ""),
            message.get("type", "Exception"),
            list(message.get("mro", [])),
            bool(message.get("not_serializable")),
        )

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def close(self, timeout: float = 2.0) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class ProcessRunner:
    """Child processes for ``executor="process"`` handlers; see the module docstring.

    ``limits`` gives (``max_tasks_per_child``, ``max_memory_per_child``), read after
    every task so a settings change applies at once: a child past either is closed
    after the task it just finished (whose result is kept), and the next task starts
    a fresh one.
    """

    def __init__(
        self, max_message_bytes: int, limits: Callable[[], tuple[int, int]] = lambda: (0, 0)
    ) -> None:
        self._limit = max_message_bytes * 2 + 65536
        self._limits = limits
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._replaced = Replaced()
        self.spawned = 0
        self.lost = 0
        self.recycled = 0

    def pids(self) -> list[int]:
        return [c.proc.pid for c in (*self._idle, *self._busy) if c.alive]

    def children(self) -> tuple[ProcessChild, ...]:
        """The live children (oldest first), then recently replaced ones that grew."""
        live = sorted((c for c in (*self._idle, *self._busy) if c.alive), key=lambda c: c.born)
        return (*(c.record.info() for c in live), *self._replaced.recent())

    def _finished(self, child: _Child, handler: str) -> None:
        """Count the task; keep the child for the next one, or replace it."""
        self._busy.discard(child)
        child.record.finished(handler, child.rss)
        if not self._replace_if_due(child):
            self._idle.append(child)

    def _replace_if_due(self, child: _Child) -> bool:
        """Close ``child`` if it is past a limit (also one lowered while it was idle)."""
        reason = child.record.recycle_reason(*self._limits())
        if reason is None:
            return False
        log.info("replacing worker process %s: %s", child.proc.pid, reason)
        self.recycled += 1
        self._replaced.add(child.record)
        self._close_later(child)
        return True

    def _close_later(self, child: _Child) -> None:
        task = asyncio.get_running_loop().create_task(child.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _spawn(self) -> _Child:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "engine.pool.worker_process",
            str(os.getpid()),  # the parent: the child leaves when it dies
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=self._limit,
        )
        child = _Child(proc)
        main = sys.modules.get("__main__")
        child.send(
            {
                "op": "init",
                "sys_path": [p for p in sys.path if isinstance(p, str)],
                "main_path": getattr(main, "__file__", None),
            }
        )
        self.spawned += 1
        try:
            await child.wait_ready()
        except BaseException:
            child.kill()
            raise
        return child

    async def run(
        self, handler: Handler, payload_json: str, ctx: TaskContext, log_level: int = 20
    ) -> str:
        """Run the handler in an idle child (or a new one); ``log_level``: the lowest
        level of a log record the child makes (see :mod:`engine.tasklog`)."""
        while self._idle:
            child = self._idle.pop()
            if child.alive and not self._replace_if_due(child):
                break
        else:
            child = await self._spawn()
        self._busy.add(child)
        try:
            result = await child.run(handler, payload_json, ctx, log_level)
        except RemoteError:
            self._finished(child, handler.name)
            raise
        except BaseException:
            # Cancelled (timeout, operator cancel, shutdown) or the child died: a child
            # that may still be running the task is killed, never reused.
            self._busy.discard(child)
            if child.alive:
                child.kill()
            else:
                self.lost += 1
            self._close_later(child)  # reaped and its pipes closed; close() waits for it
            raise
        self._finished(child, handler.name)
        return result

    def child_of(self, ctx: TaskContext) -> _Child | None:
        """The child running the task of ``ctx``, if any."""
        return next((c for c in self._busy if c.ctx is ctx), None)

    def notify_soft_timeout(self, ctx: TaskContext) -> None:
        for child in self._busy:
            if child.ctx is ctx:
                child.send({"op": "soft_timeout"})

    def trim(self, keep: int) -> None:
        """Close idle children beyond ``keep``."""
        while len(self._idle) > keep:
            self._close_later(self._idle.pop())

    async def close(self) -> None:
        children = [*self._idle, *self._busy]
        await asyncio.gather(*self._closing, return_exceptions=True)
        self._idle.clear()
        self._busy.clear()
        await asyncio.gather(*(c.close() for c in children), return_exceptions=True)
