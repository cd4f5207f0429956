"""Periodic schedules in the store (see :mod:`engine.schedule`), written once for
both drivers as plans (see :mod:`engine.store.plans`) over each driver's SQL.

``fire_due`` runs inside one write transaction: it reads the due schedules, inserts
their tasks and moves ``next_run`` on, so two processes can never both enqueue the
same run (PostgreSQL also skips schedule rows another node holds locked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.codec import Codec
from engine.store import rows as records
from engine.store.base import NewTask, StoredSchedule, schedule_missing
from engine.store.plans import Insert, Moves, Plan, row, rows, run, value

#: next_run(every, cron, tz, after, now): a schedule's next due time
NextRun = Callable[[float | None, str | None, str, float, float], float]

COLUMNS = "handler, payload, queue, priority, retries, every, cron, tz"
LIST = (
    "SELECT s.name, s.handler, s.queue, s.every, s.cron, s.tz, s.next_run, s.last_run, "
    "s.last_task, s.paused, t.state FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task "
    "ORDER BY s.name"
)


@dataclass(frozen=True, slots=True)
class ScheduleSQL:
    """A driver's statements for schedules; each takes its arguments in the order the
    plans below pass them."""

    defined: str  # (name) -> COLUMNS
    upsert: str  # (name, handler, payload, queue, priority, retries, every, cron, tz,
    #              next_run, updated_at)
    due: str  # (now) -> name, COLUMNS, next_run
    fired: str  # (next_run, last_run, last_task, updated_at, name, due)
    next_due: str
    pause_state: str  # (name) -> paused, every, cron, tz, next_run
    set_paused: str  # (paused, next_run, updated_at, name)
    template: str  # (name) -> handler, payload, queue, priority, retries
    triggered: str  # (last_run, last_task, updated_at, name)


def sync(
    sql: ScheduleSQL, txn: Moves, schedules: Sequence[StoredSchedule], codec: Codec
) -> Plan[list[str]]:
    """Add new schedules and update changed ones (their next run is computed afresh);
    unchanged ones keep their next run. Returns the names added or changed."""
    changed = set()
    for s in sorted(schedules, key=lambda s: s.name):  # one lock order for every node
        stored = yield row(sql.defined, s.name)
        if records.schedule_unchanged(stored, s, codec):
            continue
        yield run(
            sql.upsert,
            *(s.name, s.handler, s.payload, s.queue, s.priority, s.retries),
            *(s.every, s.cron, s.tz, s.first_run, txn.now),
        )
        changed.add(s.name)
    return [s.name for s in schedules if s.name in changed]


def fire_due(
    sql: ScheduleSQL, txn: Moves, next_run: NextRun, by: str
) -> Plan[tuple[list[tuple[str, str, str]], float | None]]:
    """Enqueue every due run; returns (name, task id, queue) per run and the next due time."""
    now = txn.now
    fired = []
    for name, handler, payload, queue, priority, retries, every, cron, tz, due in (
        yield rows(sql.due, now)
    ):
        task_id = yield Insert(NewTask(handler, queue, priority, payload, retries), by)
        following = next_run(every, cron, tz, due, now)
        yield run(sql.fired, following, due, int(task_id), now, name, due)
        fired.append((name, str(task_id), queue))
    return fired, (yield value(sql.next_due))


def set_paused(
    sql: ScheduleSQL, txn: Moves, name: str, paused: bool, next_run: NextRun
) -> Plan[bool | Exception]:
    """Pause or resume; a resumed schedule runs next at its first time after now."""
    found = yield row(sql.pause_state, name)
    if found is None:
        return schedule_missing(name)
    if bool(found[0]) == paused:
        return False
    now = txn.now
    every, cron, tz, at = found[1:5]
    following = at if paused or at > now else next_run(every, cron, tz, now, now)
    yield run(sql.set_paused, paused, following, now, name)
    return True


def trigger(sql: ScheduleSQL, txn: Moves, name: str, by: str) -> Plan[str | Exception]:
    """Enqueue a run now, outside the schedule (its next run stays as it was)."""
    found = yield row(sql.template, name)
    if found is None:
        return schedule_missing(name)
    task_id = yield Insert(NewTask(found[0], found[2], found[3], found[1], found[4]), by)
    yield run(sql.triggered, txn.now, int(task_id), txn.now, name)
    return str(task_id)
