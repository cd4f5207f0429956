"""Bulk operations in the store (see :mod:`engine.ops`), written once for both drivers
as plans (see :mod:`engine.store.plans`; ``?`` placeholders, numbered for PostgreSQL).

One batch is one transaction: the next ids of the selection (by id, keyset), the
change applied to those that qualify with one statement per action, and the
operation's progress (counts, skip reasons, the last id handled) written with it,
so a crash loses no progress and repeats no change."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.model import MAX_PRIORITY, MIN_PRIORITY, TERMINAL_STATES, TaskState
from engine.store.plans import Moves, Plan, reads_only, row, rows, run, value

COLUMNS = (
    "id, action, args, selection, state, total, done, changed, skipped, reasons, cursor, "
    "max_id, owner, actor, note, error, created_at, started_at, finished_at, beat_at, "
    "abort_requested"
)
ADD = (
    "INSERT INTO operations (action, args, selection, state, total, owner, actor, note, "
    "created_at, beat_at, max_id, cursor, done, changed, skipped, reasons, abort_requested) "
    "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, '{}', 0) RETURNING id"
)
#: what a task row is read as for classifying it
TASK_COLUMNS = "id, state, queue, priority, attempts, retries, max_retries, workflow_id, webhook"
TASK_COLUMNS += ", unique_key"
ACTIVE = (TaskState.QUEUED, TaskState.SCHEDULED)
WINDOW = 20_000  #: ids a batch with a query reads at most


@dataclass(frozen=True, slots=True)
class Where:
    """A selection as SQL: the ids given, or the filter fields and a query compiled for
    the store's dialect (``sql``, ``params``: see :mod:`engine.store.where`). A batch
    with a query reads at most :data:`WINDOW` ids, so a sparse match never holds the
    writer for a scan of the whole table."""

    ids: tuple[int, ...] | None = None
    state: str | None = None
    queue: str | None = None
    handler: str | None = None
    sql: str | None = None
    params: tuple[Any, ...] = ()

    def window(self, after: int, upto: int) -> int:
        """The highest id a batch after ``after`` reads."""
        return upto if self.sql is None else min(upto, after + WINDOW)

    def after(self, cursor: int, size: int) -> list[int]:
        """The next ``size`` of the ids given (sorted) after id ``cursor``."""
        assert self.ids is not None
        start = bisect.bisect_right(self.ids, cursor)
        return list(self.ids[start : start + size])

    def clause(self, after: int, upto: int) -> tuple[str, list[Any]]:
        parts, args = ["id > ?", "id <= ?"], list[Any]([after, upto])
        given = (("state", self.state), ("queue", self.queue), ("handler", self.handler))
        for column, arg in given:
            if arg is not None:
                parts.append(f"{column} = ?")
                args.append(arg)
        if self.sql is not None:
            parts.append(f"({self.sql})")
            args.extend(self.params)
        return " AND ".join(parts), args


@dataclass(slots=True)
class Batch:
    """What one batch did: tasks looked at, changed, skipped (reason → count), and the
    tasks the engine itself must act on one by one (running, workflow steps...)."""

    seen: int = 0
    changed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    special: list[int] = field(default_factory=list)
    cursor: int = 0
    finished: bool = False
    aborted: bool = False

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def add(
    txn: Moves,
    action: str,
    args: str,
    selection: str,
    where: Where,
    owner: str,
    actor: str,
    note: str | None,
    upto: int,
    total: int,
) -> Plan[int]:
    """Store a new operation (its total and the highest id it may touch, counted
    before by :func:`count` on a read connection); returns its id."""
    now = txn.now
    new_id = yield value(
        ADD, action, args, selection, int(total or 0), owner, actor, note, now, now, upto
    )
    return int(new_id)


@reads_only
def count(txn: Moves, where: Where) -> Plan[tuple[int, int]]:
    """``(highest task id, tasks selected)`` now (read outside the write transaction:
    a query may read every task's text)."""
    upto = yield value("SELECT MAX(id) FROM tasks")
    upto = int(upto or 0)
    if where.ids is not None:
        return upto, len(where.ids)
    clause, params = where.clause(0, upto)
    total = yield value(f"SELECT COUNT(*) FROM tasks WHERE {clause}", *params)
    return upto, int(total or 0)


@reads_only
def one(txn: Moves, op_id: int) -> Plan[Any]:
    found = yield row(f"SELECT {COLUMNS} FROM operations WHERE id = ?", op_id)
    return found


@reads_only
def recent(txn: Moves, limit: int) -> Plan[list[Any]]:
    sql = f"SELECT {COLUMNS} FROM operations ORDER BY id DESC LIMIT ?"
    found: list[Any] = yield rows(sql, limit)
    return found


@reads_only
def top(txn: Moves) -> Plan[int]:
    """The highest task id now (a selection takes no task added after it was made)."""
    found = yield value("SELECT MAX(id) FROM tasks")
    return int(found or 0)


@reads_only
def page(txn: Moves, where: Where, after: int, upto: int, size: int) -> Plan[list[Any]]:
    """The next ``size`` tasks of the selection after id ``after`` (a dry run reads these)."""
    found: list[Any] = yield from _next(where, after, upto, size)
    return found


def request_abort(txn: Moves, op_id: int, stale_before: float) -> Plan[str | None]:
    """Ask a pending or running operation to stop after its current batch; one whose
    runner has not written since ``stale_before`` is marked aborted at once. Returns
    its state (None: no such operation)."""
    state = yield value("SELECT state FROM operations WHERE id = ?", op_id)
    if state in ("pending", "running"):
        yield run("UPDATE operations SET abort_requested = 1 WHERE id = ?", op_id)
        yield run(
            "UPDATE operations SET state = 'aborted', finished_at = ?, "
            "error = 'its runner had stopped' WHERE id = ? AND beat_at < ?",
            txn.now,
            op_id,
            stale_before,
        )
    return None if state is None else str(state)


def set_state(txn: Moves, op_id: int, state: str, error: str | None = None) -> Plan[None]:
    now = txn.now
    if state == "running":
        yield run(
            "UPDATE operations SET state = 'running', started_at = COALESCE(started_at, ?), "
            "beat_at = ? WHERE id = ?",
            now,
            now,
            op_id,
        )
    else:
        yield run(
            "UPDATE operations SET state = ?, finished_at = ?, beat_at = ?, error = ? WHERE id = ?",
            state,
            now,
            now,
            error,
            op_id,
        )


def interrupted(txn: Moves, owner: str, stale_before: float) -> Plan[list[int]]:
    """Operations ``owner`` was running (it restarted: they are its to resume), and the
    ids of those marked interrupted: unfinished, by another runner gone quiet."""
    mine: list[Any] = yield rows(
        "SELECT id FROM operations WHERE state IN ('pending', 'running', 'interrupted') "
        "AND owner = ?",
        owner,
    )
    yield run(
        "UPDATE operations SET state = 'pending', finished_at = NULL, error = NULL "
        "WHERE state IN ('pending', 'running', 'interrupted') AND owner = ?",
        owner,
    )
    yield run(
        "UPDATE operations SET state = 'interrupted', finished_at = ?, "
        "error = 'its runner stopped before the end' "
        "WHERE state IN ('pending', 'running') AND owner != ? AND beat_at < ?",
        txn.now,
        owner,
        stale_before,
    )
    return [int(r[0]) for r in mine]


def progress(txn: Moves, op_id: int, done: Batch) -> Plan[None]:
    """Add one batch's counts to the operation (the per-task part, done outside)."""
    yield from _record(txn, op_id, done)


def _record(txn: Moves, op_id: int, done: Batch) -> Plan[None]:
    reasons = yield value("SELECT reasons FROM operations WHERE id = ?", op_id)
    merged: dict[str, int] = json.loads(reasons or "{}")
    for reason, n in done.skipped.items():
        merged[reason] = merged.get(reason, 0) + n
    yield run(
        "UPDATE operations SET done = done + ?, changed = changed + ?, skipped = skipped + ?, "
        "reasons = ?, cursor = ?, beat_at = ? WHERE id = ?",
        done.seen,
        done.changed,
        sum(done.skipped.values()),
        json.dumps(merged, sort_keys=True),
        done.cursor,
        txn.now,
        op_id,
    )


def batch(
    txn: Moves,
    op_id: int,
    action: str,
    args: dict[str, Any],
    where: Where,
    size: int,
    by: str,
) -> Plan[Batch]:
    """Take the next ``size`` tasks of the selection and apply ``action`` to the ones
    it may change now; records the progress. Tasks the engine must handle one by one
    are returned in ``special`` (counted when those are done)."""
    found = yield row("SELECT cursor, max_id, abort_requested FROM operations WHERE id = ?", op_id)
    out = Batch(cursor=int(found[0]))
    if found[2]:
        out.aborted = True
        return out
    upto = int(found[1])
    tasks = yield from _next(where, out.cursor, upto, size)
    if not tasks:
        end = where.window(out.cursor, upto)
        if where.ids is None and end < upto:  # nothing in this window: the next one
            out.cursor = end
            yield from _record(txn, op_id, Batch(cursor=end))
            return out
        out.finished = True
        return out
    out.seen, out.cursor = len(tasks), int(tasks[-1][0])
    if where.ids is not None:
        given = where.after(int(found[0]), size)
        known = {int(t[0]) for t in tasks if t[1] is not None}
        out.seen, out.cursor = len(given), given[-1]
        missing = len([i for i in given if i not in known])
        if missing:
            out.skip("no such task", missing)
    fast = [t for t in tasks if classify(action, args, t, out)]
    if fast:
        changed = yield from APPLY[action](txn, fast, args, by, op_id)
        out.changed += changed
        if changed < len(fast):  # another node changed them between the read and the write
            out.skip("changed meanwhile", len(fast) - changed)
    yield from _record(txn, op_id, _counted(out))
    return out


def _counted(out: Batch) -> Batch:
    """The part of a batch recorded with it (specials are recorded once handled)."""
    return Batch(out.seen - len(out.special), out.changed, out.skipped, cursor=out.cursor)


def _next(where: Where, after: int, upto: int, size: int) -> Plan[list[Any]]:
    if where.ids is not None:
        chunk = where.after(after, size)
        if not chunk:
            return []
        listed = ",".join(str(i) for i in chunk)
        found: list[Any] = yield rows(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({listed}) ORDER BY id"
        )
        if not found:  # all missing: still move on
            return [(chunk[-1], None)]
        return found
    clause, params = where.clause(after, where.window(after, upto))
    found = yield rows(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE {clause} ORDER BY id LIMIT ?", *params, size
    )
    return found


def classify(action: str, args: dict[str, Any], t: Any, out: Batch) -> bool:
    """True: changed by this batch's statement; else counted as skipped or special."""
    if t[1] is None:  # the ids given in this batch are all missing
        return False
    state = TaskState(t[1])
    tid, workflow, webhook, key = int(t[0]), t[7], t[8], t[9]
    if action == "cancel":
        if state in TERMINAL_STATES:
            out.skip(f"already {state}")
            return False
        if state == TaskState.RUNNING or workflow is not None or webhook is not None:
            out.special.append(tid)
            return False
        return True
    if action == "retry":
        if state not in (TaskState.FAILED, TaskState.CANCELLED):
            out.skip(f"{state}: only failed or cancelled tasks are retried")
            return False
        if workflow is not None or key is not None:
            out.special.append(tid)
            return False
        return True
    if action == "purge":
        if state not in TERMINAL_STATES:
            out.skip(f"{state}: only finished tasks are purged")
            return False
        return True
    if state == TaskState.RUNNING:
        out.skip("running")
        return False
    if action == "reprioritize":
        if state not in ACTIVE:
            out.skip(f"{state}: only queued or scheduled tasks change priority")
            return False
        if int(t[3]) == new_priority(int(t[3]), args):
            out.skip(f"already priority {int(t[3])}")
            return False
        return True
    if action == "move":
        if t[2] == args["queue"]:
            out.skip(f"already in queue {args['queue']}")
            return False
        return True
    if int(t[5]) == args["retries"] and int(t[6]) == int(t[4]) + args["retries"]:
        out.skip(f"already {args['retries']} retries")
        return False
    return True


def _line(txn: Moves, state_sql: str, by: str, note_sql: str) -> tuple[str, list[Any]]:
    """SQL (and its arguments) for one timeline line, as ``timeline_line`` writes it."""
    head = '{"at":' + f"{txn.now:.6f}" + ',"state":"'
    tail = "}\n"
    sql = f"? || {state_sql} || ? || CAST(attempts AS TEXT) || ? || {note_sql} || ?"
    return sql, [head, '","attempt":', f',"by":{json.dumps(by)},"note":"', '"' + tail]


def _ids(tasks: Sequence[Any]) -> str:
    return ",".join(str(int(t[0])) for t in tasks)


def _cancel(txn: Moves, tasks: Sequence[Any], args: Any, by: str, op: int) -> Plan[int]:
    return (yield from _to_state(
        txn, tasks, TaskState.CANCELLED, "finished_at = ?", ("queued", "scheduled"),
        f"cancelled by {by} (bulk operation {op})", by,
    ))  # fmt: skip


def _retry(txn: Moves, tasks: Sequence[Any], args: Any, by: str, op: int) -> Plan[int]:
    sets = (
        "finished_at = NULL, result = NULL, run_at = ?, max_retries = CASE WHEN max_retries > "
        "attempts + retries THEN max_retries ELSE attempts + retries END"
    )
    return (yield from _to_state(
        txn, tasks, TaskState.QUEUED, sets, ("failed", "cancelled"),
        f"retried by {by} (bulk operation {op})", by,
    ))  # fmt: skip


def _to_state(
    txn: Moves,
    tasks: Sequence[Any],
    state: TaskState,
    sets: str,
    sources: tuple[str, ...],
    note: str,
    by: str,
) -> Plan[int]:
    """Move the ``tasks`` that are in one of ``sources`` to ``state`` in one statement
    (``sets``: the other columns, with one ``?`` for the transaction's time), a timeline
    line each; returns how many moved."""
    line, params = _line(txn, f"'{state.value}'", by, "?")
    allowed = ", ".join(f"'{s}'" for s in sources)
    done: list[Any] = yield rows(
        f"UPDATE tasks SET state = '{state.value}', prev_state = state, {sets}, "
        f"timeline = timeline || {line} WHERE id IN ({_ids(tasks)}) "
        f"AND state IN ({allowed}) RETURNING queue, prev_state",
        txn.now,
        *params[:3],
        note,
        params[3],
    )
    for queue, old in done:
        txn.moved(queue, old, state)
    return len(done)


def _purge(txn: Moves, tasks: Sequence[Any], args: Any, by: str, op: int) -> Plan[int]:
    done: list[Any] = yield rows(
        f"DELETE FROM tasks WHERE id IN ({_ids(tasks)}) "
        "AND state IN ('succeeded', 'failed', 'cancelled') RETURNING queue, state"
    )
    for queue, state in done:
        txn.moved(queue, state, "")
    return len(done)


def new_priority(old: int, args: dict[str, Any]) -> int:
    """A task's priority after a reprioritize: the one given, or its own plus the step
    (kept within the range)."""
    if "step" not in args:
        return int(args["priority"])
    return max(MIN_PRIORITY, min(MAX_PRIORITY, old + int(args["step"])))


def _reprioritize(txn: Moves, tasks: Sequence[Any], args: Any, by: str, op: int) -> Plan[int]:
    if "step" in args:  # each task's own priority plus the step, within the range
        step = int(args["step"])
        new_sql = (
            f"CASE WHEN priority + {step} > {MAX_PRIORITY} THEN {MAX_PRIORITY} "
            f"WHEN priority + {step} < {MIN_PRIORITY} THEN {MIN_PRIORITY} "
            f"ELSE priority + {step} END"
        )
    else:
        new_sql = str(int(args["priority"]))
    note = (
        f"'priority ' || CAST(priority AS TEXT) || ' → ' || CAST({new_sql} AS TEXT) "
        f"|| ' (bulk operation {op})'"
    )
    line, params = _line(txn, "state", by, note)
    done: list[Any] = yield rows(
        f"UPDATE tasks SET priority = {new_sql}, timeline = timeline || {line} "
        f"WHERE id IN ({_ids(tasks)}) AND state IN ('queued', 'scheduled') "
        f"AND priority != {new_sql} RETURNING id",
        *params,
    )
    return len(done)


def _move(txn: Moves, tasks: Sequence[Any], args: Any, by: str, op: int) -> Plan[int]:
    new = str(args["queue"])
    line, params = _line(txn, "state", by, "'queue ' || queue || ?")
    done: list[Any] = yield rows(
        f"UPDATE tasks SET queue = ?, timeline = timeline || {line} "
        f"WHERE id IN ({_ids(tasks)}) AND state != 'running' AND queue != ? RETURNING id, state",
        new,
        *params[:3],
        f" → {new} (bulk operation {op})",
        params[3],
        new,
    )
    old = {int(t[0]): t[2] for t in tasks}
    for tid, state in done:
        txn.moved(old[int(tid)], state, "")
        txn.moved(new, "", state)
    return len(done)


def _retries(txn: Moves, tasks: Sequence[Any], args: Any, by: str, op: int) -> Plan[int]:
    n = int(args["retries"])
    note = f"'retries ' || CAST(retries AS TEXT) || ' → {n} (bulk operation {op})'"
    line, params = _line(txn, "state", by, note)
    done: list[Any] = yield rows(
        f"UPDATE tasks SET retries = ?, max_retries = attempts + ?, timeline = timeline || {line} "
        f"WHERE id IN ({_ids(tasks)}) AND state != 'running' RETURNING id",
        n,
        n,
        *params,
    )
    return len(done)


APPLY = {
    "cancel": _cancel,
    "retry": _retry,
    "purge": _purge,
    "reprioritize": _reprioritize,
    "move": _move,
    "set-retries": _retries,
}
