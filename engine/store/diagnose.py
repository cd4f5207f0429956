"""What ``engine.diagnose`` reads (see :mod:`engine.diagnose`), written once for both
drivers as read-only plans (see :mod:`engine.store.plans`; ``?`` placeholders,
numbered for PostgreSQL by its driver). Nothing here writes."""

from __future__ import annotations

from typing import Any

from engine.store.plans import Moves, Plan, reads_only, row, rows

EARLIER_STEP = (
    "SELECT id, state FROM tasks WHERE workflow_id = ? AND step < ? AND state != 'succeeded' "
    "ORDER BY step DESC, id LIMIT 1"
)
KEY_HOLDER = (
    "SELECT id, state FROM tasks WHERE unique_key = ? AND id != ? "
    "AND state IN ('queued', 'scheduled', 'running') LIMIT 1"
)
BUCKET = "SELECT tokens, updated_at FROM rate_buckets WHERE key = ?"
#: failed tasks newest first, by the ``tasks_finished (state, finished_at)`` index;
#: a page continues after the last (finished_at, id) of the one before
FAILED_PAGE = (
    "SELECT id, handler, error, finished_at FROM tasks "
    "WHERE state = 'failed' AND finished_at >= ? "
    "AND (finished_at < ? OR (finished_at = ? AND id < ?)) "
    "ORDER BY finished_at DESC, id DESC LIMIT ?"
)


@reads_only
def earlier_step(txn: Moves, workflow_id: int, step: int) -> Plan[Any]:
    """The latest earlier step of the workflow that has not succeeded: (id, state)."""
    found = yield row(EARLIER_STEP, workflow_id, step)
    return found


@reads_only
def key_holder(txn: Moves, key: str, task_id: int) -> Plan[Any]:
    """Another active task holding ``key``: (id, state), or None."""
    found = yield row(KEY_HOLDER, key, task_id)
    return found


@reads_only
def bucket(txn: Moves, key: str) -> Plan[tuple[Any, float]]:
    """A rate limit's bucket as stored, (tokens, updated_at) or None, and the store's now."""
    found = yield row(BUCKET, key)
    return found, txn.now


@reads_only
def failed_page(txn: Moves, since: float, before: tuple[float, int], limit: int) -> Plan[list[Any]]:
    """Up to ``limit`` failed tasks finished at or after ``since`` and before ``before``
    (finished_at, id): (id, handler, error as stored, finished_at), newest first."""
    at, task_id = before
    found: list[Any] = yield rows(FAILED_PAGE, since, at, at, task_id, limit)
    return found
