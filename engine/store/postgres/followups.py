"""The follow-ups of a final state (see :mod:`engine.store.followups`) on PostgreSQL.

The workflow's row is locked first (``FOR UPDATE``) and finished tasks are taken in
one order, so two members of a group finishing on two nodes at once cannot both (or
neither) release the callback.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.codec import Codec
from engine.store import followups as shared
from engine.store.followups import STEP_COLUMNS, Finished, FollowUpSQL, finished
from engine.store.postgres.conn import Txn
from engine.store.postgres.plans import drive

__all__ = ["Finished", "after_final", "finished", "resume"]

SQL = FollowUpSQL(
    kind="SELECT kind FROM workflows WHERE id = $1 FOR UPDATE",
    step_of="SELECT step, receives, handler FROM tasks WHERE id = $1",
    head=(
        "SELECT w.kind, t.step, t.receives FROM workflows w JOIN tasks t "
        "ON t.workflow_id = w.id WHERE t.id = $1"
    ),
    step=f"SELECT {STEP_COLUMNS} FROM tasks WHERE workflow_id = $1 AND step = $2",
    callback=f"SELECT {STEP_COLUMNS} FROM tasks WHERE workflow_id = $1 AND receives IS NOT NULL",
    members_left=(
        "SELECT count(*) FROM tasks WHERE workflow_id = $1 AND receives IS NULL "
        "AND state <> 'succeeded'"
    ),
    member_results=(
        "SELECT result FROM tasks WHERE workflow_id = $1 AND receives IS NULL ORDER BY step"
    ),
    release=(
        "UPDATE tasks SET state = 'queued', prev_state = state, waiting = false, payload = $1, "
        "run_at = $2, finished_at = NULL, timeline = timeline || $3 WHERE id = $4"
    ),
    stop=(
        "UPDATE tasks SET state = 'cancelled', prev_state = state, finished_at = $1, "
        "timeline = timeline || $2 "
        "WHERE workflow_id = $3 AND step > $4 AND state = 'scheduled' AND waiting "
        "RETURNING queue"
    ),
    resume=(
        "UPDATE tasks SET state = 'scheduled', prev_state = state, finished_at = NULL, "
        "run_at = $1, timeline = timeline || $2 "
        "WHERE workflow_id = $3 AND step > $4 AND state = 'cancelled' AND waiting "
        "RETURNING queue"
    ),
)


async def resume(txn: Txn, workflow_id: int, task_id: int, by: str) -> None:
    """A stopped step was retried: the steps its stop cancelled wait again."""
    await drive(txn, shared.resume(SQL, txn, workflow_id, task_id, by))


async def after_final(txn: Txn, finished: Sequence[Finished], codec: Codec, by: str) -> int:
    """Apply the follow-ups of ``finished``; returns how many tasks became queued."""
    in_lock_order = sorted(finished, key=lambda f: (f.workflow_id or 0, f.task_id))
    return await drive(txn, shared.after_final(SQL, txn, in_lock_order, codec, by))
