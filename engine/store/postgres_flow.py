"""Claiming under flow control on PostgreSQL: rate limits, concurrency limits, weights.

The same rules as :mod:`engine.store.sqlite_flow` (token buckets in
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
from engine.store.base import ClaimedTask
from engine.store.postgres_conn import Txn
from engine.store.postgres_ops import READY_QUEUES, claim_shares
from engine.store.sqlite_flow import Claimed, shares

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
    out = {}
    for key, rate in rates.items():
        tokens, at = stored.get(key, (rate.burst, now))
        out[key] = min(rate.burst, tokens + max(0.0, now - at) * rate.per_second)
    return out


def _token_wait(tokens: float, rate: Rate, floor: float) -> float:
    return max(floor, (1.0 - tokens) / rate.per_second)


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
    waits: list[float] = []
    running = {q: int(n) for q, n in await txn.fetch(RUNNING_COUNTS)}
    rates = {f"q:{q}": r for q, r in flow.queue_rates.items() if q in ready}
    rates.update({f"h:{h}": r for h, r in flow.handler_rates.items() if h in handlers})
    tokens = await _tokens(txn, rates) if rates else {}
    caps: dict[str, int] = {}
    for queue, count in ready.items():
        cap = min(count, limit)
        if queue in flow.queue_concurrency:
            cap = min(cap, flow.queue_concurrency[queue] - running.get(queue, 0))
        if f"q:{queue}" in tokens:
            have = tokens[f"q:{queue}"]
            if have < cap:
                waits.append(_token_wait(have - math.floor(have), flow.queue_rates[queue], 0.005))
            cap = min(cap, math.floor(have))
        if cap > 0:
            caps[queue] = cap
    held = {h: r for h, r in flow.handler_rates.items() if f"h:{h}" in tokens}
    waits += [
        _token_wait(tokens[f"h:{h}"], r, 0.05) for h, r in held.items() if tokens[f"h:{h}"] < 1
    ]
    out.retry_in = min(waits, default=None)
    if not caps:
        return out
    weighted = bool(flow.queue_weights)
    start: dict[str, float] = {}
    if weighted:
        row = await txn.fetchval(VTIME)
        vtime = float(row) if row is not None else 0.0
        served = {name: float(s) for name, s in await txn.fetch(SERVED)}
        start = {q: max(served.get(q, 0.0), vtime) for q in caps}
        caps = shares(caps, flow.queue_weights, start, limit)
    free = [h for h in handlers if f"h:{h}" not in tokens]
    claimed: list[ClaimedTask] = []
    if free:
        claimed = await claim_shares(txn, owner, caps, limit, free, lease_ttl)
    per_queue: dict[str, int] = {}
    for task in claimed:
        per_queue[task.queue] = per_queue.get(task.queue, 0) + 1
    # Rate-limited handlers: each gets at most its whole tokens, from what is left.
    for handler in (h for h in handlers if f"h:{h}" in tokens):
        room = min(limit - len(claimed), math.floor(tokens[f"h:{handler}"]))
        left = {q: c - per_queue.get(q, 0) for q, c in caps.items() if c > per_queue.get(q, 0)}
        if room <= 0 or not left:
            continue
        got = await claim_shares(txn, owner, left, room, [handler], lease_ttl)
        tokens[f"h:{handler}"] -= len(got)
        for task in got:
            per_queue[task.queue] = per_queue.get(task.queue, 0) + 1
        claimed += got
    for queue, count in per_queue.items():
        if f"q:{queue}" in tokens:
            tokens[f"q:{queue}"] -= count
    if tokens:
        keys = sorted(tokens)
        await txn.execute(SAVE_BUCKETS, keys, [tokens[k] for k in keys], txn.now)
    if weighted:
        after = {q: start[q] + per_queue.get(q, 0) / flow.queue_weights.get(q, 1.0) for q in start}
        names = sorted(after)
        await txn.execute(SAVE_SERVED, names, [after[q] for q in names])
        await txn.execute(SAVE_VTIME, repr(min(after.values())))
    claimed.sort(key=lambda t: (-t.priority, t.id))
    out.extend(claimed)
    return out
