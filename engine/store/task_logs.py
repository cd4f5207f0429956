"""Task log lines in the store (see :mod:`engine.tasklog`), written once for both
drivers as plans (``?`` placeholders, numbered for PostgreSQL).

A task's lines live in ``task_logs``, ordered by ``id``; a trigger deletes them
with their task (purge, cleanup, retention), so no delete path has to know of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.store.plans import Moves, Plan, reads_only, rows, run

COLUMNS = "task_id, attempt, at, level, logger, message"
READ = (
    "SELECT id, attempt, at, level, logger, message FROM task_logs "
    "WHERE task_id = ? AND id > ? ORDER BY id LIMIT ?"
)


def add(txn: Moves, rows: Sequence[tuple[Any, ...]]) -> Plan[None]:
    """Insert lines (task id, attempt, time, level, logger, message) in one statement."""
    if not rows:
        return
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows))
    args = [v for line in rows for v in line]
    yield run(f"INSERT INTO task_logs ({COLUMNS}) VALUES {values}", *args)


@reads_only
def read(txn: Moves, task_id: int, after: int, limit: int) -> Plan[list[Any]]:
    """Up to ``limit`` lines of a task after line ``after``, oldest first."""
    found: list[Any] = yield rows(READ, task_id, after, limit)
    return found
