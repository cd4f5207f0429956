"""The task life cycle in the PostgreSQL store: claim, complete, leases, rescue, promote.

Each runs inside one :class:`Txn`, with the behaviour of :mod:`engine.store.sqlite.tasks`.
Every state change sets ``prev_state = state`` so the transition CHECK sees it,
appends a timeline line, and records its count change with ``txn.moved``. Rows
another node holds are skipped (``FOR UPDATE SKIP LOCKED``): claims, promotion and
rescue are shared work. Operator commands are in :mod:`engine.store.postgres.commands`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from engine.codec import Codec
from engine.model import TERMINAL_STATES, TaskId, TaskState, timeline_line
from engine.store.base import (
    Claimed,
    ClaimedTask,
    Completion,
    Expired,
    NewTask,
    Rescued,
)
from engine.store.completion_batch import merged, split_unstarted
from engine.store.postgres import followups as followups
from engine.store.postgres.conn import Txn, counted
from engine.store.postgres.insert import at_text, insert_one, js, line_sql
from engine.store.postgres.insert import enqueue as enqueue
from engine.store.postgres.insert import enqueue_workflow as enqueue_workflow

# -- claim -------------------------------------------------------------------

_CLAIMED = (
    "RETURNING t.id, t.handler, t.queue, t.priority, t.attempts, t.max_retries, t.payload, "
    "t.created_at, t.run_at, t.workflow_id, t.webhook, t.trace_context"
)
_LEASE = (
    "UPDATE tasks t SET state = 'running', prev_state = 'queued', attempts = t.attempts + 1, "
    "lease_owner = $2, lease_expires_at = $3, started_at = $4, worker = $2, progress = NULL, "
    "progress_message = NULL, "
    f"timeline = t.timeline || {line_sql(repr('running'), 't.attempts + 1', '$5', '$6')} "
    f"FROM picked WHERE t.id = picked.id {_CLAIMED}"
)
#: Nothing starts while everything is paused (``Engine.pause_all``).
ALL_PAUSED = "EXISTS (SELECT 1 FROM taskdeck_meta WHERE key = 'paused_all')"
#: The queues with queued tasks (from the counts), less the paused ones; none while
#: everything is paused.
READY_QUEUES = (
    f"SELECT c.queue FROM task_counts c WHERE c.state = 'queued' AND NOT {ALL_PAUSED} "
    "GROUP BY c.queue HAVING sum(c.n) > 0 EXCEPT SELECT name FROM queues WHERE paused"
)
#: The best ``$7`` queued tasks of the given handlers over every unpaused queue: each
#: queue's own best through its ``tasks_ready`` range (locked, skipping rows another
#: node is claiming), then the best of those. The CTE is materialised: a fence, so
#: the planner cannot turn the lock-and-limit into a join that locks more rows.
_PICK = (
    f"ready AS ({READY_QUEUES}), "
    "picked AS MATERIALIZED (SELECT p.id FROM ready r CROSS JOIN LATERAL ("
    "SELECT id, priority FROM tasks WHERE state = 'queued' AND queue = r.queue "
    "AND handler = ANY($1::text[]) ORDER BY priority DESC, id LIMIT $7 "
    "FOR UPDATE SKIP LOCKED) p ORDER BY p.priority DESC, p.id LIMIT $7)"
)
CLAIM = f"WITH {_PICK} {_LEASE}"
#: The same as a statement of its own (``Txn.alone``): it writes its count changes.
CLAIM_ALONE = (
    f"WITH {_PICK}, claimed AS ({_LEASE}), {counted('claimed', repr('queued'), repr('running'))} "
    "SELECT * FROM claimed"
)
#: The same with each queue's share given (flow control): queues ``$7``, caps ``$8``.
CLAIM_SHARES = (
    "WITH picked AS MATERIALIZED (SELECT p.id FROM unnest($7::text[], $8::int[]) AS r (queue, cap) "
    "CROSS JOIN LATERAL ("
    "SELECT id, priority FROM tasks WHERE state = 'queued' AND queue = r.queue "
    "AND handler = ANY($1::text[]) ORDER BY priority DESC, id LIMIT r.cap "
    "FOR UPDATE SKIP LOCKED) p ORDER BY p.priority DESC, p.id LIMIT $9) " + _LEASE
)


def _claimed(txn: Txn, rows: Sequence[Any]) -> Claimed:
    out = Claimed()
    for r in sorted(rows, key=lambda r: (-r[3], r[0])):
        txn.moved(r[2], TaskState.QUEUED, TaskState.RUNNING)
        out.append(
            ClaimedTask(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], txn.now, r[9], r[10], r[11]
            )
        )
    return out


def _lease_args(txn: Txn, owner: str, handlers: Sequence[str], lease_ttl: float) -> list[object]:
    now = txn.now
    return [list(handlers), owner, now + lease_ttl, now, at_text(now), js(owner)]


async def claim(
    txn: Txn, owner: str, limit: int, handlers: Sequence[str], lease_ttl: float
) -> Claimed:
    if limit <= 0 or not handlers:
        return Claimed()
    statement = CLAIM_ALONE if txn.alone else CLAIM
    rows = await txn.fetch(statement, *_lease_args(txn, owner, handlers, lease_ttl), limit)
    return _claimed(txn, rows)


async def claim_shares(
    txn: Txn,
    owner: str,
    caps: dict[str, int],
    limit: int,
    handlers: Sequence[str],
    lease_ttl: float,
) -> Claimed:
    """Claim up to ``caps[queue]`` from each queue and ``limit`` in all."""
    queues = sorted(caps)
    args = _lease_args(txn, owner, handlers, lease_ttl)
    rows = await txn.fetch(CLAIM_SHARES, *args, queues, [caps[q] for q in queues], limit)
    return _claimed(txn, rows)


HELD = (
    "SELECT id, state = 'running' AND lease_owner = $1, "
    f"queue IN (SELECT name FROM queues WHERE paused) OR {ALL_PAUSED} "
    "FROM tasks WHERE id = ANY($2::bigint[])"
)


async def claim_checking(
    txn: Txn, op: Callable[[Txn], Awaitable[Claimed]], owner: str, held: Sequence[int]
) -> Claimed:
    """Run the claim ``op`` and, in the same transaction, check the ``held`` tasks."""
    rows = await txn.fetch(HELD, owner, list(held))
    claimed = await op(txn)
    return claimed.check(held, [(r[0], bool(r[1]), bool(r[2])) for r in rows])


RECOVER = (
    "UPDATE tasks t SET state = 'queued', prev_state = 'running', attempts = t.attempts - 1, "
    "lease_owner = NULL, lease_expires_at = NULL, run_at = $3, "
    f"timeline = t.timeline || {line_sql(repr('queued'), 't.attempts - 1', '$4', '$5', '$6')} "
    "WHERE state = 'running' AND lease_owner = $1 AND started_at = $2 RETURNING queue"
)


async def recover_claim(txn: Txn, owner: str, at: float) -> int:
    """Return to the queue the tasks a claim at ``at`` leased to ``owner`` when its
    commit's outcome was lost with the connection: nobody got them."""
    note = js(
        "returned unstarted (the claim's reply was lost with the connection); attempt not counted"
    )
    rows = await txn.fetch(RECOVER, owner, at, txn.now, at_text(txn.now), js(owner), note)
    for (queue,) in rows:
        txn.moved(queue, TaskState.RUNNING, TaskState.QUEUED)
    return len(rows)


# -- enqueue straight to an idle worker -------------------------------------------

#: Whether a new task must wait its turn: other tasks are ready, or its queue is paused.
MUST_WAIT = (
    f"SELECT EXISTS ({READY_QUEUES}) OR EXISTS (SELECT 1 FROM queues WHERE name = $1 AND paused) "
    f"OR {ALL_PAUSED}"
)
INSERT_RUNNING = (
    "INSERT INTO tasks (handler, queue, priority, state, prev_state, attempts, max_retries, "
    "retries, payload, created_at, started_at, worker, lease_owner, lease_expires_at, timeline, "
    "trace_context) "
    "VALUES ($1, $2, $3, 'running', 'queued', 1, $4, $4, $5, $6, $6, $7, $7, $8, $9, $10) "
    "RETURNING id"
)


async def enqueue_and_claim(
    txn: Txn, task: NewTask, by: str, lease_ttl: float
) -> tuple[TaskId, ClaimedTask | None]:
    """Insert ``task`` already leased to ``by`` when nothing else is waiting (see
    :func:`engine.store.sqlite.tasks.enqueue_and_claim`)."""
    if task.run_at is not None or not task.plain or await txn.fetchval(MUST_WAIT, task.queue):
        return (await enqueue(txn, [task], by))[0], None
    now = txn.now
    line = timeline_line(now, TaskState.RUNNING, 1, by)
    task_id = await txn.fetchval(
        INSERT_RUNNING,
        task.handler,
        task.queue,
        task.priority,
        task.retries,
        task.payload,
        now,
        by,
        now + lease_ttl,
        line,
        task.trace,
    )
    txn.moved(task.queue, "", TaskState.RUNNING)
    return TaskId(task_id), ClaimedTask.handed_over(task_id, task, now)


# -- completion (fenced) -----------------------------------------------------

COMPLETE = """
UPDATE tasks t SET state = c.state, prev_state = 'running', result = c.result,
    error = CASE WHEN c.release THEN t.error ELSE c.error END,
    finished_at = c.finished, run_at = COALESCE(c.run_at, t.run_at), lease_owner = NULL,
    lease_expires_at = NULL, worker = c.worker, progress = COALESCE(c.progress, t.progress),
    progress_message = COALESCE(c.message, t.progress_message),
    attempts = t.attempts - CASE WHEN c.release THEN 1 ELSE 0 END,
    timeline = t.timeline || c.line
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::float8[],
            $7::float8[], $8::text[], $9::float8[], $10::text[], $11::text[], $12::text[],
            $13::int[]) WITH ORDINALITY
     AS c (id, state, result, release, error, finished, run_at, worker, progress, message,
           line, owner, attempt, ord)
WHERE t.id = c.id AND t.state = 'running' AND t.lease_owner = c.owner AND t.attempts = c.attempt
RETURNING c.ord, t.queue
"""
#: The same as a statement of its own (``Txn.alone``): it writes its count changes.
COMPLETE_ALONE = (
    f"WITH done AS ({COMPLETE.strip()}, c.state), "
    f"{counted('done', repr('running'), 'done.state')} SELECT ord, queue FROM done"
)
#: Stale completions that an earlier, ambiguous commit (connection lost while
#: committing) did apply: their own timeline line is already there.
ALREADY_APPLIED = """
SELECT c.ord FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS c (id, line, ord)
JOIN tasks t ON t.id = c.id WHERE strpos(t.timeline, c.line) > 0
"""


#: Held tasks given back unstarted: each claim undone (the claim's line, ``claimed``,
#: taken off the timeline, or, should another line follow it, a ``queued`` line added).
GIVE_BACK = """
UPDATE tasks t SET state = 'queued', prev_state = 'running', lease_owner = NULL,
    lease_expires_at = NULL, attempts = t.attempts - 1,
    timeline = CASE WHEN right(t.timeline, length(c.claimed)) = c.claimed
        THEN left(t.timeline, length(t.timeline) - length(c.claimed)) ELSE t.timeline || c.line END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[]) WITH ORDINALITY
     AS c (id, claimed, line, owner, attempt, ord)
WHERE t.id = c.id AND t.state = 'running' AND t.lease_owner = c.owner AND t.attempts = c.attempt
RETURNING c.ord, t.queue
"""


async def complete(
    txn: Txn, completions: Sequence[Completion], codec: Codec, by: str
) -> tuple[list[int], list[int]]:
    """Apply completions whose lease is still held; returns (applied, stale) indexes."""
    back, rest = split_unstarted(completions)
    if not back:
        return await _complete(txn, completions, codec, by)
    given = await give_back(txn, [completions[i] for i in back])
    done = await _complete(txn, [completions[i] for i in rest], codec, by) if rest else ([], [])
    return merged((back, given), (rest, done))


async def give_back(txn: Txn, completions: Sequence[Completion]) -> tuple[list[int], list[int]]:
    """Undo the claims of held tasks (``at``: each claim's time, as its line shows it)."""
    claimed = [
        f'{{"at":{at_text(c.at)},"state":"running","attempt":{c.attempt},"by":{js(c.owner)}}}\n'
        for c in completions
    ]
    lines = [
        timeline_line(c.at, TaskState.QUEUED, c.attempt - 1, c.owner, c.note) for c in completions
    ]
    ids, owners = [c.task_id for c in completions], [c.owner for c in completions]
    attempts = [c.attempt for c in completions]
    rows = await txn.fetch(GIVE_BACK, ids, claimed, lines, owners, attempts)
    applied = sorted(int(r[0]) - 1 for r in rows)
    for r in rows:
        txn.moved(r[1], TaskState.RUNNING, TaskState.QUEUED)
    done = set(applied)
    return applied, [i for i in range(len(completions)) if i not in done]


async def _complete(
    txn: Txn, completions: Sequence[Completion], codec: Codec, by: str
) -> tuple[list[int], list[int]]:
    """Apply completions whose lease is still held; returns (applied, stale) indexes.

    One statement for the whole batch; a row that does not match (the lease was lost)
    is stale. Final states of workflow steps and tasks with webhooks set off their
    follow-ups in the same transaction.
    """
    cols: list[list[object]] = [[] for _ in range(13)]
    for c in completions:
        attempt_shown = c.attempt - 1 if c.release else c.attempt
        line = timeline_line(c.at, c.state.value, attempt_shown, c.worker or c.owner, c.note)
        values = (
            c.task_id,
            c.state.value,
            c.result,
            c.release,
            c.error,
            c.at if c.state in TERMINAL_STATES else None,
            c.run_at,
            c.worker,
            c.progress,
            c.progress_message,
            line,
            c.owner,
            c.attempt,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    if len(completions) > 1:
        txn.fault("complete.mid_batch")
    rows = await txn.fetch(COMPLETE_ALONE if txn.alone else COMPLETE, *cols)
    applied = sorted(int(r[0]) - 1 for r in rows)
    for r in rows:
        txn.moved(r[1], TaskState.RUNNING, completions[int(r[0]) - 1].state)
    await _follow_up(txn, [completions[i] for i in applied], codec, by)
    done = set(applied)
    stale = [i for i in range(len(completions)) if i not in done]
    if stale:
        found = await txn.fetch(
            ALREADY_APPLIED, [completions[i].task_id for i in stale], [cols[10][i] for i in stale]
        )
        earlier = {stale[int(r[0]) - 1] for r in found}
        applied = sorted(done | earlier)
        stale = [i for i in stale if i not in earlier]
    return applied, stale


def completes_alone(completions: Sequence[Completion]) -> bool:
    """Whether ``complete`` can run as one statement (``Txn.alone``): no completion
    makes its task ``queued`` (that needs a wake-up) or sets off follow-ups."""
    return not any(c.state == TaskState.QUEUED or c.sets_off_follow_ups for c in completions)


async def _follow_up(txn: Txn, completions: Sequence[Completion], codec: Codec, by: str) -> None:
    finished = followups.finished(completions)
    if finished:
        await followups.after_final(txn, finished, codec, by)


# -- leases ------------------------------------------------------------------

RENEW = (
    "UPDATE tasks SET lease_expires_at = $1 WHERE state = 'running' AND lease_owner = $2 "
    "RETURNING id"
)


async def renew_leases(txn: Txn, owner: str, lease_ttl: float) -> set[int]:
    """Every lease of ``owner`` extended in one statement."""
    renewed = {int(r[0]) for r in await txn.fetch(RENEW, txn.now + lease_ttl, owner)}
    txn.fault("lease.renew")
    return renewed


EXPIRED_LEASES = (
    "SELECT id, handler, queue, attempts, max_retries, lease_owner, workflow_id, webhook "
    "FROM tasks WHERE state = 'running' AND lease_expires_at < $1 AND lease_owner <> $2 "
    "ORDER BY lease_expires_at LIMIT 500 FOR UPDATE SKIP LOCKED"
)
RESCUE = """
UPDATE tasks t SET state = r.state, prev_state = 'running', finished_at = r.finished,
    error = r.error, run_at = r.run_at, lease_owner = NULL, lease_expires_at = NULL,
    timeline = t.timeline || r.line
FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[], $5::float8[], $6::text[])
     AS r (id, state, finished, error, run_at, line)
WHERE t.id = r.id AND t.state = 'running'
"""


async def rescue(txn: Txn, exclude_owner: str, codec: Codec) -> list[Rescued]:
    """Requeue tasks whose lease expired; fail those that used their last attempt."""
    now = txn.now
    out: list[Rescued] = []
    final = []
    cols: list[list[object]] = [[] for _ in range(6)]
    for (
        task_id,
        handler,
        queue,
        attempts,
        max_retries,
        owner,
        workflow_id,
        webhook,
    ) in await txn.fetch(EXPIRED_LEASES, now, exclude_owner):
        lost = f"worker lost during attempt {attempts}/{max_retries + 1} (lease expired)"
        if attempts > max_retries:
            state, finished, run_at = TaskState.FAILED, now, None
        else:
            state, finished, run_at = TaskState.QUEUED, None, now
        line = timeline_line(now, state, attempts, None, f"rescued from {owner}: {lost}")
        for col, value in zip(
            cols, (task_id, state.value, finished, codec.seal(lost), run_at, line), strict=True
        ):
            col.append(value)
        txn.moved(queue, TaskState.RUNNING, state)
        out.append(Rescued(task_id, handler, queue, state, attempts, max_retries, owner))
        if state == TaskState.FAILED and (workflow_id is not None or webhook is not None):
            final.append(followups.Finished(task_id, state, workflow_id, webhook, None))
    if out:
        await txn.execute(RESCUE, *cols)  # the rows are locked: every one is updated
        txn.fault("rescue.mid")
    if final:
        await followups.after_final(txn, final, codec, exclude_owner)
    return out


# -- scheduled -> queued -----------------------------------------------------

PROMOTE = (
    "WITH due AS MATERIALIZED (SELECT id FROM tasks WHERE state = 'scheduled' AND run_at <= $1 "
    "ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED) "
    "UPDATE tasks t SET state = 'queued', prev_state = 'scheduled', "
    f"timeline = t.timeline || {line_sql(repr('queued'), 't.attempts', '$2')} "
    "FROM due WHERE t.id = due.id RETURNING t.id, t.queue"
)
NEXT_DUE = "SELECT min(run_at) FROM tasks WHERE state = 'scheduled'"


async def promote_due(txn: Txn) -> tuple[list[tuple[int, str]], float | None]:
    rows = await txn.fetch(PROMOTE, txn.now, at_text(txn.now))
    for _, queue in rows:
        txn.moved(queue, TaskState.SCHEDULED, TaskState.QUEUED)
    next_due = await txn.fetchval(NEXT_DUE)
    return sorted((int(r[0]), r[1]) for r in rows), next_due


__all__ = [
    "claim",
    "claim_shares",
    "complete",
    "enqueue",
    "enqueue_and_claim",
    "enqueue_workflow",
    "insert_one",
    "promote_due",
    "recover_claim",
    "renew_leases",
    "rescue",
]


# -- deletion ----------------------------------------------------------------

PURGE_EXPIRED = (
    "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE state = $1 AND finished_at < $2 "
    "ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "RETURNING id, handler, queue, state, finished_at"
)


async def purge_expired(
    txn: Txn, result_ttl: float, failed_ttl: float, limit: int
) -> list[Expired]:
    out: list[Expired] = []
    for state, ttl in (
        (TaskState.SUCCEEDED, result_ttl),
        (TaskState.FAILED, failed_ttl),
        (TaskState.CANCELLED, failed_ttl),
    ):
        room = limit - len(out)
        if room <= 0:
            break
        rows = await txn.fetch(PURGE_EXPIRED, state.value, txn.now - ttl, room)
        for r in sorted(rows, key=lambda r: (r[4], r[0])):
            txn.moved(r[2], r[3], "")
            out.append(Expired(str(r[0]), r[1], r[2], TaskState(r[3]), r[4]))
        if out:
            txn.fault("purge.mid")
    return out
