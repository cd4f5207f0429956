"""The follow-ups of a final state (see :mod:`engine.store.followups`) on SQLite."""

from __future__ import annotations

from collections.abc import Sequence

from engine.codec import Codec
from engine.store import followups as shared
from engine.store.followups import STEP_COLUMNS, Finished, FollowUpSQL, finished
from engine.store.sqlite.plans import drive
from engine.store.sqlite.txn import Txn

__all__ = ["Finished", "after_final", "finished", "resume"]

SQL = FollowUpSQL(
    kind="SELECT kind FROM workflows WHERE id = ?",
    step_of="SELECT step, receives, handler FROM tasks WHERE id = ?",
    head=(
        "SELECT w.kind, t.step, t.receives FROM workflows w JOIN tasks t "
        "ON t.workflow_id = w.id WHERE t.id = ?"
    ),
    step=f"SELECT {STEP_COLUMNS} FROM tasks WHERE workflow_id = ? AND step = ?",
    callback=f"SELECT {STEP_COLUMNS} FROM tasks WHERE workflow_id = ? AND receives IS NOT NULL",
    members_left=(
        "SELECT count(*) FROM tasks WHERE workflow_id = ? AND receives IS NULL "
        "AND state != 'succeeded'"
    ),
    member_results=(
        "SELECT result FROM tasks WHERE workflow_id = ? AND receives IS NULL ORDER BY step"
    ),
    release=(
        "UPDATE tasks SET state = 'queued', prev_state = state, waiting = 0, payload = ?, "
        "run_at = ?, finished_at = NULL, timeline = timeline || ? WHERE id = ?"
    ),
    stop=(
        "UPDATE tasks SET state = 'cancelled', prev_state = state, finished_at = ?, "
        "timeline = timeline || ? "
        "WHERE workflow_id = ? AND step > ? AND state = 'scheduled' AND waiting = 1 "
        "RETURNING queue"
    ),
    resume=(
        "UPDATE tasks SET state = 'scheduled', prev_state = state, finished_at = NULL, "
        "run_at = ?, timeline = timeline || ? "
        "WHERE workflow_id = ? AND step > ? AND state = 'cancelled' AND waiting = 1 "
        "RETURNING queue"
    ),
)


def resume(txn: Txn, workflow_id: int, task_id: int, by: str) -> None:
    """A stopped step was retried: the steps its stop cancelled wait again."""
    drive(txn, shared.resume(SQL, txn, workflow_id, task_id, by))


def after_final(txn: Txn, finished: Sequence[Finished], codec: Codec, by: str) -> int:
    """Apply the follow-ups of ``finished``; returns how many tasks became queued."""
    return drive(txn, shared.after_final(SQL, txn, finished, codec, by))
