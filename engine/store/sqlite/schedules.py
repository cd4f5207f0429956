"""Periodic schedules in the SQLite store (see :mod:`engine.schedule`).

``fire_due`` runs inside one write transaction: it reads the due schedules,
inserts their tasks and moves ``next_run`` on, so two processes can never both
enqueue the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.codec import Codec
from engine.store import rows as records
from engine.store.base import NewTask, StoredSchedule, schedule_missing
from engine.store.sqlite.insert import insert_one
from engine.store.sqlite.txn import Txn

NextRun = Callable[[float | None, str | None, str, float, float], float]


COLUMNS = "handler, payload, queue, priority, retries, every, cron, tz"
UPSERT = (
    "INSERT INTO schedules (name, handler, payload, queue, priority, retries, every, cron, tz, "
    "next_run, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(name) DO UPDATE SET handler = excluded.handler, payload = excluded.payload, "
    "queue = excluded.queue, priority = excluded.priority, retries = excluded.retries, "
    "every = excluded.every, cron = excluded.cron, tz = excluded.tz, "
    "next_run = excluded.next_run, updated_at = excluded.updated_at"
)


def sync(txn: Txn, schedules: Sequence[StoredSchedule], codec: Codec) -> list[str]:
    """Add new schedules and update changed ones (their next run is computed afresh);
    unchanged ones keep their next run. Returns the names added or changed."""
    changed = []
    for s in schedules:
        row = txn.execute(f"SELECT {COLUMNS} FROM schedules WHERE name = ?", (s.name,)).fetchone()
        if records.schedule_unchanged(row, s, codec):
            continue
        txn.execute(
            UPSERT,
            (
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
            ),
        )
        changed.append(s.name)
    return changed


DUE = (
    f"SELECT name, {COLUMNS}, next_run FROM schedules WHERE paused = 0 AND next_run <= ? "
    "ORDER BY next_run LIMIT 100"
)
FIRED = (
    "UPDATE schedules SET next_run = ?, last_run = ?, last_task = ?, updated_at = ? "
    "WHERE name = ? AND next_run = ?"
)
NEXT_DUE = "SELECT min(next_run) FROM schedules WHERE paused = 0"


def fire_due(
    txn: Txn, next_run: NextRun, by: str
) -> tuple[list[tuple[str, str, str]], float | None]:
    """Enqueue every due run; returns (name, task id, queue) per run and the next due time."""
    now = txn.now
    fired = []
    for name, handler, payload, queue, priority, retries, every, cron, tz, due in txn.execute(
        DUE, (now,)
    ).fetchall():
        task_id = insert_one(txn, NewTask(handler, queue, priority, payload, retries), by)
        following = next_run(every, cron, tz, due, now)
        txn.execute(FIRED, (following, due, int(task_id), now, name, due))
        fired.append((name, str(task_id), queue))
    return fired, txn.execute(NEXT_DUE).fetchone()[0]


def set_paused(txn: Txn, name: str, paused: bool, next_run: NextRun) -> bool | Exception:
    """Pause or resume; a resumed schedule runs next at its first time after now."""
    row = txn.execute(
        "SELECT paused, every, cron, tz, next_run FROM schedules WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return schedule_missing(name)
    if bool(row[0]) == paused:
        return False
    now = txn.now
    following = row[4] if paused or row[4] > now else next_run(row[1], row[2], row[3], now, now)
    txn.execute(
        "UPDATE schedules SET paused = ?, next_run = ?, updated_at = ? WHERE name = ?",
        (int(paused), following, now, name),
    )
    return True


def trigger(txn: Txn, name: str, by: str) -> str | Exception:
    """Enqueue a run now, outside the schedule (its next run stays as it was)."""
    row = txn.execute(
        "SELECT handler, payload, queue, priority, retries FROM schedules WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return schedule_missing(name)
    task_id = insert_one(txn, NewTask(row[0], row[2], row[3], row[1], row[4]), by)
    txn.execute(
        "UPDATE schedules SET last_run = ?, last_task = ?, updated_at = ? WHERE name = ?",
        (txn.now, int(task_id), txn.now, name),
    )
    return str(task_id)


LIST = (
    "SELECT s.name, s.handler, s.queue, s.every, s.cron, s.tz, s.next_run, s.last_run, "
    "s.last_task, s.paused, t.state FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task "
    "ORDER BY s.name"
)
