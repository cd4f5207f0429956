"""Claiming under flow control on PostgreSQL: rate limits, concurrency limits, weights.

The same rules as :mod:`engine.store.sqlite.flow` (token buckets in
``rate_buckets``, running tasks counted from ``task_counts``, weighted fair
queueing through ``queues.served``). SQLite runs one writer at a time; here
several nodes claim at once, so a flow-controlled claim first takes a
transaction-level advisory lock of the store (one flow claim at a time across the
cluster: the counts it reads cannot change under it from another claim) and
locks the bucket rows it spends (``SELECT … FOR UPDATE``), so two nodes never
spend the same tokens. Claims without limits do not take the lock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.limits import FlowLimits, Rate
from engine.store import flow_plan as plan_
from engine.store.base import Claimed, ClaimedTask
from engine.store.postgres.conn import Txn
from engine.store.postgres.tasks import READY_QUEUES, claim_shares

__all__ = ["Claimed", "claim"]

FLOW_LOCK = "SELECT pg_advisory_xact_lock(hashtext($1), 1414744901)"
READY_COUNTS = (
    "SELECT c.queue, sum(c.n)::bigint FROM task_counts c WHERE c.state = 'queued' "
    f"AND c.queue IN ({READY_QUEUES}) GROUP BY c.queue ORDER BY c.queue"
)
RUNNING_COUNTS = (
    "SELECT queue, sum(n)::bigint FROM task_counts WHERE state = 'running' GROUP BY queue "
    "HAVING sum(n) > 0"
)
NEW_BUCKETS = (
    "INSERT INTO rate_buckets (key, tokens, updated_at) "
    "SELECT k, b, $3 FROM unnest($1::text[], $2::float8[]) AS u (k, b) "
    "ON CONFLICT (key) DO NOTHING"
)
BUCKETS = (
    "SELECT key, tokens, updated_at FROM rate_buckets WHERE key = ANY($1::text[]) "
    "ORDER BY key FOR UPDATE"
)
SAVE_BUCKETS = (
    "UPDATE rate_buckets b SET tokens = u.tokens, updated_at = $3 "
    "FROM unnest($1::text[], $2::float8[]) AS u (key, tokens) WHERE b.key = u.key"
)
SERVED = "SELECT name, served FROM queues"
SAVE_SERVED = (
    "INSERT INTO queues (name, served) SELECT * FROM unnest($1::text[], $2::float8[]) "
    "ON CONFLICT (name) DO UPDATE SET served = excluded.served"
)
VTIME = "SELECT value FROM taskdeck_meta WHERE key = 'fair_vtime'"
SAVE_VTIME = (
    "INSERT INTO taskdeck_meta (key, value) VALUES ('fair_vtime', $1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


async def _tokens(txn: Txn, rates: Mapping[str, Rate]) -> dict[str, float]:
    """Each bucket's tokens now, its row locked (a bucket not seen yet starts full)."""
    now = txn.now
    keys = sorted(rates)
    await txn.execute(NEW_BUCKETS, keys, [rates[k].burst for k in keys], now)
    stored = {key: (tokens, at) for key, tokens, at in await txn.fetch(BUCKETS, keys)}
    return plan_.refill(stored, rates, now)


async def claim(
    txn: Txn,
    owner: str,
    limit: int,
    handlers: list[str],
    lease_ttl: float,
    flow: FlowLimits,
    lock_key: str,
) -> Claimed:
    """Claim under ``flow``; ``lock_key`` names the store's flow lock (its schema)."""
    out = Claimed()
    if limit <= 0 or not handlers:
        return out
    await txn.execute(FLOW_LOCK, lock_key)
    ready = {q: int(n) for q, n in await txn.fetch(READY_COUNTS)}
    if not ready:
        return out
    running = {q: int(n) for q, n in await txn.fetch(RUNNING_COUNTS)}
    rates = plan_.bucket_keys(flow, ready, handlers)
    tokens = await _tokens(txn, rates) if rates else {}
    caps, out.retry_in = plan_.plan(flow, ready, running, tokens, limit)
    if not caps:
        return out
    start: dict[str, float] = {}
    if flow.queue_weights:
        row = await txn.fetchval(VTIME)
        vtime = float(row) if row is not None else 0.0
        served = {name: float(s) for name, s in await txn.fetch(SERVED)}
        start = {q: max(served.get(q, 0.0), vtime) for q in caps}
        caps = plan_.shares(caps, flow.queue_weights, start, limit)
    free = [h for h in handlers if f"h:{h}" not in tokens]
    claimed: list[ClaimedTask] = []
    if free:
        claimed = await claim_shares(txn, owner, caps, limit, free, lease_ttl)
    taken = plan_.per_queue(claimed)
    # Rate-limited handlers: each gets at most its whole tokens, from what is left.
    for handler in (h for h in handlers if f"h:{h}" in tokens):
        room = min(limit - len(claimed), math.floor(tokens[f"h:{handler}"]))
        left = {q: c - taken.get(q, 0) for q, c in caps.items() if c > taken.get(q, 0)}
        if room <= 0 or not left:
            continue
        got = await claim_shares(txn, owner, left, room, [handler], lease_ttl)
        tokens[f"h:{handler}"] -= len(got)
        claimed += got
        taken = plan_.per_queue(claimed)
    plan_.spend(tokens, taken)
    if tokens:
        keys = sorted(tokens)
        await txn.execute(SAVE_BUCKETS, keys, [tokens[k] for k in keys], txn.now)
    if flow.queue_weights:
        after = plan_.served_after(start, taken, flow.queue_weights)
        names = sorted(after)
        await txn.execute(SAVE_SERVED, names, [after[q] for q in names])
        await txn.execute(SAVE_VTIME, repr(min(after.values())))
    claimed.sort(key=lambda t: (-t.priority, t.id))
    out.extend(claimed)
    return out
