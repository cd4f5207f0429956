"""``engine.ops``: bulk operations — cancel, retry, reprioritize, move, set-retries and
purge on a list of ids or on every task a filter matches, as named, durable
operations the engine runs in batches.

``start()`` stores the operation (its selection as text, its total) and returns at
once; the engine that started it runs it in the background, one transaction per
batch of :data:`BATCH` tasks taken by id, so claims and completions keep flowing
between batches. Each batch writes its progress with its changes: ``get()`` and
``list()`` (any process) show done/total, how many changed, how many were skipped and
why. ``abort()`` (any process) stops it between batches, keeping what was done.

A selection holds only tasks that existed when the operation started. Queued and
scheduled tasks are changed in the batch's one statement; a running task (cancel),
a workflow step or a task with a unique key or webhook (retry, cancel) goes through
the same path as a single cancel or retry, one by one. A stopped engine leaves its
operations ``interrupted`` (progress kept); an engine started with the same
``name`` resumes them; an operation whose runner went quiet for :data:`STALE` s is
marked ``interrupted`` by the next engine that starts, and ``abort`` ends it at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from engine.audit import Audit, check_note
from engine.commands import Commands
from engine.edit import Editor
from engine.errors import InvalidTransition, TaskNotFound
from engine.operation import (
    DESTRUCTIVE,
    Operation,
    check_action,
    check_args,
    check_selection,
    from_row,
    where_of,
)
from engine.query import Dialect, parse
from engine.state import EngineState
from engine.store import ops as plans
from engine.store.base import Store
from engine.store.ops import Batch, Where
from engine.store.where import to_sql

BATCH = 1000  #: tasks per transaction
#: The share of time an operation keeps the store busy: after a batch that took t s it
#: waits t × (1 − PACE) / PACE s, so claims and completions keep most of the writer.
PACE = 0.5
STALE = 60.0  #: seconds without progress after which a runner counts as gone
MAX_LIST = 1000

__all__ = ["BATCH", "DESTRUCTIVE", "Operation", "Operations"]


class Operations:
    """Starts, runs, lists and aborts bulk operations (``engine.ops``)."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        commands: Commands,
        audit: Audit,
        node: str,
        clock: Callable[[], float],
        editor: Editor,
    ) -> None:
        self.edit = editor.edit  #: change a task that is not running (see engine.edit)
        self._state, self._store, self._commands, self._audit = state, store, commands, audit
        self._node, self._clock = node, clock
        self._runners: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self.batch_size = BATCH
        self.pace = PACE

    async def start(
        self,
        action: str,
        *,
        ids: Sequence[str | int] | None = None,
        state: Any = None,
        queue: str | None = None,
        handler: str | None = None,
        where: str | None = None,
        priority: int | str | None = None,
        to_queue: str | None = None,
        retries: int | None = None,
        dry_run: bool = False,
        note: str | None = None,
    ) -> Operation:
        """Start ``action`` (cancel, retry, reprioritize ``priority=``, move ``to_queue=``,
        set-retries ``retries=``, purge) on the tasks with these ``ids``, or on every task
        matching ``state``/``queue``/``handler`` and the query ``where`` (see
        :mod:`engine.query`; none of them: all tasks). Returns the stored
        operation at once (``wait()`` for its end). ``dry_run``: nothing is stored or
        changed; the result says how many tasks it would change and skip, and why."""
        name = check_action(action)
        args = check_args(name, priority, to_queue, retries)
        if ids is not None and where is not None:
            raise TypeError("give ids or a filter (state, queue, handler, where), not both")
        sel, shown = check_selection(ids, state, queue, handler)
        if where is not None:
            shown |= {"where": where, "at": self._clock()}
        where_sql = self._where(sel, shown)
        text = check_note(note) or self._audit.current_note  # else the audit block's
        if dry_run:
            self._state.require_running()
            return await self._preview(name, args, where_sql, shown)
        self._state.require_writable(f"bulk {name}")
        self._stopping = False
        async with self._audit.action(f"bulk_{name}", _target(name, args, shown)) as outcome:
            upto, total = await self._store.run_plan(partial(plans.count, where=where_sql))
            op_id = await self._store.run_plan(
                partial(
                    plans.add, action=name, args=json.dumps(args), selection=json.dumps(shown),
                    where=where_sql, owner=self._node, actor=str(self._state.actor), note=text,
                    upto=upto, total=total,
                )
            )  # fmt: skip
            op = await self.get(op_id)
            outcome.text = f"operation {op_id}: {op.total:,} tasks"
        self._launch(op_id, name, args, where_sql, text)
        return op

    def _where(self, sel: Where, shown: dict[str, Any]) -> Where:
        """The selection with its query (``shown["where"]``, read as at ``shown["at"]``,
        so relative times mean the same when resumed) compiled for this store."""
        text = shown.get("where")
        if text is None:
            return sel
        query = parse(str(text), float(shown["at"]), encrypted=self._store.encrypted)
        if query.root is None:
            return sel
        dialect: Dialect = "postgres" if self._store.url.startswith("postgres") else "sqlite"
        sql, params = to_sql(query.root, dialect)
        return replace(sel, sql=sql, params=tuple(params))

    async def get(self, op_id: str | int) -> Operation:
        """One operation as it stands now; ``LookupError`` if there is none."""
        number = _op_id(op_id)
        self._state.require_running()
        found = await self._store.run_plan(partial(plans.one, op_id=number))
        if found is None:
            raise LookupError(f"no bulk operation with id '{op_id}'")
        return from_row(found)

    async def list(self, limit: int = 100) -> list[Operation]:
        """Operations, newest first (at most ``limit``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise ValueError(f"limit must be a whole number from 1 to {MAX_LIST}; got {limit!r}")
        self._state.require_running()
        found = await self._store.run_plan(partial(plans.recent, limit=limit))
        return [from_row(r) for r in found]

    async def abort(self, op_id: str | int) -> Operation:
        """Stop an operation after its current batch (what was done stays done);
        returns it as it stands. One already finished is returned unchanged."""
        number = _op_id(op_id)
        self._state.require_writable("abort a bulk operation")
        async with self._audit.action("bulk_abort", f"operation {number}") as outcome:
            stale = self._clock() - STALE
            state = await self._store.run_plan(
                partial(plans.request_abort, op_id=number, stale_before=stale)
            )
            if state is None:
                raise LookupError(f"no bulk operation with id '{op_id}'")
            outcome.text = f"was {state}"
        runner = self._runners.get(number)
        if runner is not None:
            await asyncio.shield(runner)
        return await self.get(number)

    async def wait(self, op_id: str | int, timeout: float | None = None) -> Operation:
        """Wait until the operation has finished (any process's); returns it.
        ``TimeoutError`` after ``timeout`` s."""
        op = await self.get(op_id)
        runner = self._runners.get(op.id)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = 0.02
        while not op.finished:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise TimeoutError(f"bulk operation {op.id} is still {op.state} ({op.done:,}/"
                                   f"{op.total:,}) after {timeout:g} s")  # fmt: skip
            step = pause if left is None else min(pause, left)
            if runner is not None and not runner.done():
                await asyncio.wait([runner], timeout=step)
            else:
                await asyncio.sleep(step)
            pause = min(pause * 2, 0.5)
            op = await self.get(op.id)
        return op

    # -- running ------------------------------------------------------------------
    async def resume(self) -> Sequence[Operation]:
        """At engine start, before the pool starts: this node's unfinished operations
        (to :meth:`relaunch` once it runs); others' whose runner went quiet are marked
        ``interrupted``."""
        self._stopping = False
        stale = self._clock() - STALE
        mine = await self._store.run_plan(
            partial(plans.interrupted, owner=self._node, stale_before=stale)
        )
        found = [await self._store.run_plan(partial(plans.one, op_id=i)) for i in mine]
        return [from_row(r) for r in found if r is not None]

    def relaunch(self, ops: Sequence[Operation]) -> None:
        """Run the operations :meth:`resume` found from where they stopped."""
        for op in ops:
            where = self._where(where_of(op.selection), op.selection)
            self._launch(op.id, op.action, op.args, where, op.note)

    async def stop(self) -> None:
        """At engine stop: each running operation ends after its current batch
        (``interrupted``, progress kept)."""
        self._stopping = True
        if self._runners:
            await asyncio.gather(*self._runners.values(), return_exceptions=True)

    def _launch(
        self, op_id: int, action: str, args: dict[str, Any], where: Where, note: str | None
    ) -> None:
        run = self._run(op_id, action, args, where, note)
        task = asyncio.get_running_loop().create_task(run, name=f"taskdeck-bulk-{op_id}")
        self._runners[op_id] = task
        task.add_done_callback(lambda _: self._runners.pop(op_id, None))

    async def _run(
        self, op_id: int, action: str, args: dict[str, Any], where: Where, note: str | None
    ) -> None:
        store, by = self._store, self._state.actor.who
        end, error = "done", None
        try:
            await store.run_plan(partial(plans.set_state, op_id=op_id, state="running"))
            while True:
                if self._stopping or not self._state.running:
                    end = "interrupted"
                    break
                step = partial(
                    plans.batch, op_id=op_id, action=action, args=args, where=where,
                    size=self.batch_size, by=by,
                )  # fmt: skip
                began = time.monotonic()
                done: Batch = await store.run_plan(step)
                if done.aborted or done.finished:
                    end = "aborted" if done.aborted else "done"
                    break
                if done.special:
                    await self._one_by_one(op_id, action, done)
                if done.changed and action in ("retry", "move"):
                    self._state.kick()
                took = time.monotonic() - began  # other work runs between batches
                await asyncio.sleep(took * (1 - self.pace) / max(self.pace, 0.05))
        except asyncio.CancelledError:
            end = "interrupted"
        except Exception as exc:
            end, error = "failed", f"{type(exc).__name__}: {exc}"
        try:
            await store.run_plan(partial(plans.set_state, op_id=op_id, state=end, error=error))
            op = await self.get(op_id)
            await self._audit.record(
                f"bulk_{action}", f"operation {op_id}", f"{end}: {op.summary()}",
                ok=end == "done", note=note,
            )  # fmt: skip
        except Exception:  # the store is gone (the engine stopped): left for resume()
            return

    async def _one_by_one(self, op_id: int, action: str, batch: Batch) -> None:
        """Tasks a statement cannot change (running, workflow steps, unique keys,
        webhooks): through the single-task cancel or retry; then counted."""
        out = Batch(seen=len(batch.special), cursor=batch.cursor)
        with self._audit.quiet():  # part of the operation, recorded as such
            for tid in batch.special:
                try:
                    if action == "cancel":
                        await self._commands.cancel(tid, f"bulk operation {op_id}")
                    else:
                        await self._commands.retry(tid)
                    out.changed += 1
                except (InvalidTransition, TaskNotFound) as refusal:
                    out.skip(_reason(str(refusal)))
        await self._store.run_plan(partial(plans.progress, op_id=op_id, done=out))

    async def _preview(
        self, action: str, args: dict[str, Any], where: Where, shown: dict[str, Any]
    ) -> Operation:
        """A dry run: the selection read in pages, each task classified as the
        operation would; nothing is written."""
        store, out = self._store, Batch()
        upto = await store.run_plan(plans.top)
        after, total = 0, 0
        while True:
            rows = await store.run_plan(
                partial(plans.page, where=where, after=after, upto=upto, size=10 * BATCH)
            )
            if where.ids is not None:
                given = where.after(after, 10 * BATCH)
                if not given:
                    break
                known = {int(r[0]) for r in rows if r[1] is not None}
                missing = len([i for i in given if i not in known])
                if missing:
                    out.skip("no such task", missing)
                total, after = total + len(given), given[-1]
            elif not rows:
                end = where.window(after, upto)
                if end >= upto:
                    break
                after = end  # a query reads a window at a time
                continue
            else:
                total, after = total + len(rows), int(rows[-1][0])
            for r in rows:
                if plans.classify(action, args, r, out):
                    out.changed += 1
        out.changed += len(out.special)
        return Operation(
            0, action, args, shown, "dry run", total, total, out.changed,
            sum(out.skipped.values()), dict(out.skipped), str(self._state.actor),
        )  # fmt: skip


def _target(action: str, args: dict[str, Any], shown: dict[str, Any]) -> str:
    probe = Operation(0, action, args, shown, "pending", 0)
    return f"{probe.title} on {probe.target}"


def _op_id(value: object) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or len(text) > 18:
        raise LookupError(f"no bulk operation with id '{value}'")
    return int(text)


def _reason(message: str) -> str:
    """A refusal in words shared by many tasks (ids and numbers taken out)."""
    if "unique key" in message:
        return "its unique key is held by an active task"
    if "workflow" in message and "waits" in message:
        return "a workflow step waiting for an earlier step"
    text = re.sub(r"^task \d+ (is |already )?", "", message)
    return re.sub(r"\d+", "N", text.split(";")[0])
