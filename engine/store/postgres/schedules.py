"""Periodic schedules in the PostgreSQL store (see :mod:`engine.schedule`).

``fire_due`` locks the due schedule rows with ``FOR UPDATE SKIP LOCKED``, inserts
their tasks and moves ``next_run`` on in the same transaction: a node that finds a
row locked skips it, and once the holder commits the row is no longer due, so
each run is enqueued exactly once however many nodes share the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.codec import Codec
from engine.store import rows as records
from engine.store.base import NewTask, StoredSchedule, schedule_missing
from engine.store.postgres.conn import Txn
from engine.store.postgres.insert import insert_one
from engine.store.sqlite.schedules import NextRun

__all__ = ["LIST", "NextRun", "fire_due", "set_paused", "sync", "trigger"]

COLUMNS = "handler, payload, queue, priority, retries, every, cron, tz"
UPSERT = (
    "INSERT INTO schedules (name, handler, payload, queue, priority, retries, every, cron, tz, "
    "next_run, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
    "ON CONFLICT (name) DO UPDATE SET handler = excluded.handler, payload = excluded.payload, "
    "queue = excluded.queue, priority = excluded.priority, retries = excluded.retries, "
    "every = excluded.every, cron = excluded.cron, tz = excluded.tz, "
    "next_run = excluded.next_run, updated_at = excluded.updated_at"
)


async def sync(txn: Txn, schedules: Sequence[StoredSchedule], codec: Codec) -> list[str]:
    """Add new schedules and update changed ones (their next run is computed afresh);
    unchanged ones keep their next run. Returns the names added or changed."""
    changed = set()
    for s in sorted(schedules, key=lambda s: s.name):  # one lock order for every node
        row = await txn.fetchrow(
            f"SELECT {COLUMNS} FROM schedules WHERE name = $1 FOR UPDATE", s.name
        )
        if records.schedule_unchanged(row, s, codec):
            continue
        await txn.execute(
            UPSERT,
            s.name,
            s.handler,
            s.payload,
            s.queue,
            s.priority,
            s.retries,
            s.every,
            s.cron,
            s.tz,
            s.first_run,
            txn.now,
        )
        changed.add(s.name)
    return [s.name for s in schedules if s.name in changed]


DUE = (
    f"SELECT name, {COLUMNS}, next_run FROM schedules WHERE NOT paused AND next_run <= $1 "
    "ORDER BY next_run LIMIT 100 FOR UPDATE SKIP LOCKED"
)
FIRED = (
    "UPDATE schedules SET next_run = $1, last_run = $2, last_task = $3, updated_at = $4 "
    "WHERE name = $5 AND next_run = $6"
)
NEXT_DUE = "SELECT min(next_run) FROM schedules WHERE NOT paused"


async def fire_due(
    txn: Txn, next_run: NextRun, by: str
) -> tuple[list[tuple[str, str, str]], float | None]:
    """Enqueue every due run; returns (name, task id, queue) per run and the next due time."""
    now = txn.now
    fired = []
    for name, handler, payload, queue, priority, retries, every, cron, tz, due in await txn.fetch(
        DUE, now
    ):
        task_id = await insert_one(txn, NewTask(handler, queue, priority, payload, retries), by)
        following = next_run(every, cron, tz, due, now)
        await txn.execute(FIRED, following, due, int(task_id), now, name, due)
        fired.append((name, str(task_id), queue))
    return fired, await txn.fetchval(NEXT_DUE)


async def set_paused(txn: Txn, name: str, paused: bool, next_run: NextRun) -> bool:
    """Pause or resume; a resumed schedule runs next at its first time after now."""
    row = await txn.fetchrow(
        "SELECT paused, every, cron, tz, next_run FROM schedules WHERE name = $1 FOR UPDATE", name
    )
    if row is None:
        raise schedule_missing(name)
    if bool(row[0]) == paused:
        return False
    now = txn.now
    following = row[4] if paused or row[4] > now else next_run(row[1], row[2], row[3], now, now)
    await txn.execute(
        "UPDATE schedules SET paused = $1, next_run = $2, updated_at = $3 WHERE name = $4",
        paused,
        following,
        now,
        name,
    )
    return True


async def trigger(txn: Txn, name: str, by: str) -> str:
    """Enqueue a run now, outside the schedule (its next run stays as it was)."""
    row = await txn.fetchrow(
        "SELECT handler, payload, queue, priority, retries FROM schedules WHERE name = $1 "
        "FOR UPDATE",
        name,
    )
    if row is None:
        raise schedule_missing(name)
    task_id = await insert_one(txn, NewTask(row[0], row[2], row[3], row[1], row[4]), by)
    await txn.execute(
        "UPDATE schedules SET last_run = $1, last_task = $2, updated_at = $1 WHERE name = $3",
        txn.now,
        int(task_id),
        name,
    )
    return str(task_id)


LIST = (
    "SELECT s.name, s.handler, s.queue, s.every, s.cron, s.tz, s.next_run, s.last_run, "
    "s.last_task, s.paused, t.state FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task "
    "ORDER BY s.name"
)
