"""The audit trail in the store (see :mod:`engine.audit`), written once for both
drivers as plans (see :mod:`engine.store.plans`; ``?`` placeholders, numbered for
PostgreSQL by its driver)."""

from __future__ import annotations

from typing import Any

from engine.store.plans import Moves, Plan, reads_only, rows, run, value

COLUMNS = "at, os_user, host, pid, interface, action, target, outcome, ok, note, task_id"
ADD = f"INSERT INTO audit ({COLUMNS}) VALUES ({', '.join('?' * 11)})"
FORGET = "DELETE FROM audit WHERE at < ?"
COUNT = "SELECT COUNT(*) FROM audit WHERE at < ?"


def add(txn: Moves, row: tuple[Any, ...]) -> Plan[None]:
    yield run(ADD, *row)


@reads_only
def entries(
    txn: Moves,
    since: float | None,
    task_id: int | None,
    user: str | None,
    host: str | None,
    action: str | None,
    limit: int,
) -> Plan[list[Any]]:
    """Newest first, filtered by whichever of the arguments are given."""
    where, args = [], []
    for sql, arg in (
        ("at >= ?", since),
        ("task_id = ?", task_id),
        ("os_user = ?", user),
        ("host = ?", host),
        ("action = ?", action),
    ):
        if arg is not None:
            where.append(sql)
            args.append(arg)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    found: list[Any] = yield rows(
        f"SELECT id, {COLUMNS} FROM audit{clause} ORDER BY id DESC LIMIT ?", *args, limit
    )
    return found


def forget(txn: Moves, before: float) -> Plan[int]:
    """Delete entries older than ``before``; returns how many."""
    count = yield value(COUNT, before)
    if count:
        yield run(FORGET, before)
    return int(count or 0)
