"""Periodic schedules (see :mod:`engine.store.schedules`) on PostgreSQL.

``fire_due`` locks the due schedule rows with ``FOR UPDATE SKIP LOCKED``: a node that
finds a row locked skips it, and once the holder commits the row is no longer due,
so each run is enqueued exactly once however many nodes share the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.codec import Codec
from engine.store import schedules as shared
from engine.store.base import StoredSchedule
from engine.store.postgres.conn import Txn
from engine.store.postgres.plans import drive
from engine.store.schedules import COLUMNS, LIST, NextRun, ScheduleSQL

__all__ = ["LIST", "NextRun", "fire_due", "set_paused", "sync", "trigger"]

SQL = ScheduleSQL(
    defined=f"SELECT {COLUMNS} FROM schedules WHERE name = $1 FOR UPDATE",
    upsert=(
        "INSERT INTO schedules (name, handler, payload, queue, priority, retries, every, cron, "
        "tz, next_run, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (name) DO UPDATE SET handler = excluded.handler, payload = excluded.payload, "
        "queue = excluded.queue, priority = excluded.priority, retries = excluded.retries, "
        "every = excluded.every, cron = excluded.cron, tz = excluded.tz, "
        "next_run = excluded.next_run, updated_at = excluded.updated_at"
    ),
    due=(
        f"SELECT name, {COLUMNS}, next_run FROM schedules WHERE NOT paused AND next_run <= $1 "
        "ORDER BY next_run LIMIT 100 FOR UPDATE SKIP LOCKED"
    ),
    fired=(
        "UPDATE schedules SET next_run = $1, last_run = $2, last_task = $3, updated_at = $4 "
        "WHERE name = $5 AND next_run = $6"
    ),
    next_due="SELECT min(next_run) FROM schedules WHERE NOT paused",
    pause_state=(
        "SELECT paused, every, cron, tz, next_run FROM schedules WHERE name = $1 FOR UPDATE"
    ),
    set_paused="UPDATE schedules SET paused = $1, next_run = $2, updated_at = $3 WHERE name = $4",
    template=(
        "SELECT handler, payload, queue, priority, retries FROM schedules WHERE name = $1 "
        "FOR UPDATE"
    ),
    triggered=(
        "UPDATE schedules SET last_run = $1, last_task = $2, updated_at = $3 WHERE name = $4"
    ),
)


async def sync(txn: Txn, schedules: Sequence[StoredSchedule], codec: Codec) -> list[str]:
    return await drive(txn, shared.sync(SQL, txn, schedules, codec))


async def fire_due(
    txn: Txn, next_run: NextRun, by: str
) -> tuple[list[tuple[str, str, str]], float | None]:
    return await drive(txn, shared.fire_due(SQL, txn, next_run, by))


async def set_paused(txn: Txn, name: str, paused: bool, next_run: NextRun) -> bool:
    result = await drive(txn, shared.set_paused(SQL, txn, name, paused, next_run))
    if isinstance(result, Exception):
        raise result
    return result


async def trigger(txn: Txn, name: str, by: str) -> str:
    result = await drive(txn, shared.trigger(SQL, txn, name, by))
    if isinstance(result, Exception):
        raise result
    return result
