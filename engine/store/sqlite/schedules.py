"""Periodic schedules (see :mod:`engine.store.schedules`) on SQLite. A missing
schedule is *returned* as the exception (see :mod:`engine.store.sqlite.txn`)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.codec import Codec
from engine.store import schedules as shared
from engine.store.base import StoredSchedule
from engine.store.schedules import COLUMNS, LIST, NextRun, ScheduleSQL
from engine.store.sqlite.plans import drive
from engine.store.sqlite.txn import Txn

__all__ = ["LIST", "NextRun", "fire_due", "set_paused", "sync", "trigger"]

SQL = ScheduleSQL(
    defined=f"SELECT {COLUMNS} FROM schedules WHERE name = ?",
    upsert=(
        "INSERT INTO schedules (name, handler, payload, queue, priority, retries, every, cron, "
        "tz, next_run, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET handler = excluded.handler, payload = excluded.payload, "
        "queue = excluded.queue, priority = excluded.priority, retries = excluded.retries, "
        "every = excluded.every, cron = excluded.cron, tz = excluded.tz, "
        "next_run = excluded.next_run, updated_at = excluded.updated_at"
    ),
    due=(
        f"SELECT name, {COLUMNS}, next_run FROM schedules WHERE paused = 0 AND next_run <= ? "
        "ORDER BY next_run LIMIT 100"
    ),
    fired=(
        "UPDATE schedules SET next_run = ?, last_run = ?, last_task = ?, updated_at = ? "
        "WHERE name = ? AND next_run = ?"
    ),
    next_due="SELECT min(next_run) FROM schedules WHERE paused = 0",
    pause_state="SELECT paused, every, cron, tz, next_run FROM schedules WHERE name = ?",
    set_paused="UPDATE schedules SET paused = ?, next_run = ?, updated_at = ? WHERE name = ?",
    template="SELECT handler, payload, queue, priority, retries FROM schedules WHERE name = ?",
    triggered="UPDATE schedules SET last_run = ?, last_task = ?, updated_at = ? WHERE name = ?",
)


def sync(txn: Txn, schedules: Sequence[StoredSchedule], codec: Codec) -> list[str]:
    return drive(txn, shared.sync(SQL, txn, schedules, codec))


def fire_due(
    txn: Txn, next_run: NextRun, by: str
) -> tuple[list[tuple[str, str, str]], float | None]:
    return drive(txn, shared.fire_due(SQL, txn, next_run, by))


def set_paused(txn: Txn, name: str, paused: bool, next_run: NextRun) -> bool | Exception:
    return drive(txn, shared.set_paused(SQL, txn, name, paused, next_run))


def trigger(txn: Txn, name: str, by: str) -> str | Exception:
    return drive(txn, shared.trigger(SQL, txn, name, by))
