"""Group commit for enqueues on PostgreSQL: concurrent ``enqueue`` calls (a web
server's request handlers, each awaiting its own) share one INSERT statement — one
commit — per turn, instead of one transaction each.

While a group's statement is out, the enqueues that arrive wait; when it returns,
they all go together in the next one. An enqueue that finds nothing out goes at once
(after one turn of the event loop). Each caller gets its own ids; if a group of
several fails, each of its enqueues is tried on its own, so one caller's problem is
never another's. A caller cancelled while it waits is left out of the statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from engine.model import TaskId
from engine.store.base import NewTask

Insert = Callable[[Sequence[NewTask]], Awaitable[list[TaskId]]]
Waiting = tuple[Sequence[NewTask], "asyncio.Future[list[TaskId]]"]


class EnqueueGroup:
    """Enqueues of plain tasks, gathered per turn into one ``insert`` call."""

    def __init__(self, insert: Insert, spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self._insert = insert
        self._spawn = spawn
        self._waiting: list[Waiting] = []
        self._running = False
        self.statements = 0  # INSERTs sent (each a group of one or more enqueues)
        self.grouped = 0  # enqueues that went in them

    async def enqueue(self, tasks: Sequence[NewTask]) -> list[TaskId]:
        future: asyncio.Future[list[TaskId]] = asyncio.get_running_loop().create_future()
        self._waiting.append((tasks, future))
        if not self._running:
            self._running = True
            self._spawn(self._run())
        return await future

    async def _run(self) -> None:
        group: list[Waiting] = []
        try:
            while self._waiting:
                group = [(tasks, f) for tasks, f in self._waiting if not f.done()]
                self._waiting = []
                if group:
                    await self._send(group)
        finally:
            self._running = False
            # stopped (the store closes) with enqueues out or waiting: they get an answer
            for _, future in group + self._waiting:
                if not future.done():
                    future.set_exception(RuntimeError("the store closed during this enqueue"))
            self._waiting = []

    async def _send(self, group: list[Waiting]) -> None:
        everything = [task for tasks, _ in group for task in tasks]
        self.statements += 1
        self.grouped += len(group)
        try:
            ids = await self._insert(everything)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], None, exc)
                return
            for tasks, future in group:  # one at a time: each caller gets its own answer
                if future.done():
                    continue
                try:
                    own = await self._insert(tasks)
                except Exception as each:
                    _settle(future, None, each)
                else:
                    _settle(future, own, None)
            return
        start = 0
        for tasks, future in group:
            _settle(future, ids[start : start + len(tasks)], None)
            start += len(tasks)


def _settle(
    future: asyncio.Future[list[TaskId]], ids: list[TaskId] | None, error: Exception | None
) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert ids is not None
        future.set_result(ids)
