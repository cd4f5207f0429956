"""Claiming under flow control: rate limits, concurrency limits and queue weights.

Runs inside the claim's write transaction, so every limit holds across all the
processes on one store:

- a queue's concurrency limit subtracts the tasks of that queue running anywhere
  (from ``task_counts``);
- a rate limit is a token bucket row in ``rate_buckets``, refilled by elapsed time
  and spent by each claimed task;
- queue weights share each claim between the busy queues by weighted fair
  queueing: every queue keeps a virtual time (``queues.served``) that grows by
  1/weight per task it gets, and the next task goes to the queue whose time would
  be lowest. A queue that was idle starts at the current virtual time, so it
  gets its share from now on, not a catch-up burst.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from engine.limits import FlowLimits, Rate
from engine.store import flow_plan as plan_
from engine.store.base import Claimed, ClaimedTask
from engine.store.sqlite.tasks import NOT_ALL_PAUSED, claim_sql, run_claim
from engine.store.sqlite.txn import Txn

READY_COUNTS = (
    "SELECT queue, n FROM task_counts WHERE state = 'queued' AND n > 0 "
    f"AND queue NOT IN (SELECT name FROM queues WHERE paused = 1) AND {NOT_ALL_PAUSED} "
    "ORDER BY queue"
)
RUNNING_COUNTS = "SELECT queue, n FROM task_counts WHERE state = 'running' AND n > 0"
BUCKETS = (
    "SELECT key, tokens, updated_at FROM rate_buckets WHERE key IN (SELECT value FROM json_each(?))"
)
SAVE_BUCKET = (
    "INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at"
)
SERVED = "SELECT name, served FROM queues"
SAVE_SERVED = (
    "INSERT INTO queues (name, served) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET served = excluded.served"
)
VTIME = "SELECT value FROM meta WHERE key = 'fair_vtime'"
SAVE_VTIME = "INSERT OR REPLACE INTO meta (key, value) VALUES ('fair_vtime', ?)"


def _tokens(txn: Txn, rates: Mapping[str, Rate]) -> dict[str, float]:
    """Each bucket's tokens now (a bucket not seen yet starts full)."""
    keys = json.dumps(list(rates))
    stored = {key: (tokens, at) for key, tokens, at in txn.execute(BUCKETS, (keys,)).fetchall()}
    return plan_.refill(stored, rates, txn.now)


def claim(
    txn: Txn,
    owner: str,
    limit: int,
    handlers: list[str],
    lease_ttl: float,
    flow: FlowLimits,
) -> Claimed:
    out = Claimed()
    ready = dict(txn.execute(READY_COUNTS).fetchall())
    if not ready or limit <= 0:
        return out
    running = dict(txn.execute(RUNNING_COUNTS).fetchall())
    tokens = _tokens(txn, plan_.bucket_keys(flow, ready, handlers))
    caps, out.retry_in = plan_.plan(flow, ready, running, tokens, limit)
    if not caps:
        return out
    start: dict[str, float] = {}
    if flow.queue_weights:
        row = txn.execute(VTIME).fetchone()
        vtime = float(row[0]) if row else 0.0
        served = dict(txn.execute(SERVED).fetchall())
        start = {q: max(float(served.get(q, 0.0)), vtime) for q in caps}
        caps = plan_.shares(caps, flow.queue_weights, start, limit)
    free = [h for h in handlers if f"h:{h}" not in tokens]
    claimed = _claim_queues(txn, owner, caps, limit, free, lease_ttl) if free else []
    taken = plan_.per_queue(claimed)
    # Rate-limited handlers: each gets at most its whole tokens, from what is left.
    for handler in (h for h in handlers if f"h:{h}" in tokens):
        room = min(limit - len(claimed), math.floor(tokens[f"h:{handler}"]))
        left = {q: c - taken.get(q, 0) for q, c in caps.items() if c > taken.get(q, 0)}
        if room <= 0 or not left:
            continue
        got = _claim_queues(txn, owner, left, room, [handler], lease_ttl)
        tokens[f"h:{handler}"] -= len(got)
        claimed += got
        taken = plan_.per_queue(claimed)
    plan_.spend(tokens, taken)
    now = txn.now
    txn.conn.executemany(SAVE_BUCKET, [(key, t, now) for key, t in tokens.items()])
    if flow.queue_weights:
        after = plan_.served_after(start, taken, flow.queue_weights)
        txn.conn.executemany(SAVE_SERVED, list(after.items()))
        txn.execute(SAVE_VTIME, (repr(min(after.values())),))
    claimed.sort(key=lambda t: (-t.priority, t.id))
    out.extend(claimed)
    return out


def _claim_queues(
    txn: Txn,
    owner: str,
    caps: Mapping[str, int],
    limit: int,
    handlers: list[str],
    lease_ttl: float,
) -> list[ClaimedTask]:
    queues = sorted(caps)
    params: dict[str, object] = {f"q{i}": q for i, q in enumerate(queues)}
    params.update({f"n{i}": caps[q] for i, q in enumerate(queues)})
    params["n"] = limit
    return run_claim(
        txn, claim_sql(len(queues), per_queue=True), params, owner, json.dumps(handlers), lease_ttl
    )


__all__ = ["Claimed", "claim"]
