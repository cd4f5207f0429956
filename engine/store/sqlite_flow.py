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
from engine.store.base import ClaimedTask
from engine.store.sqlite_ops import claim_sql, run_claim
from engine.store.sqlite_txn import Txn

READY_COUNTS = (
    "SELECT queue, n FROM task_counts WHERE state = 'queued' AND n > 0 "
    "AND queue NOT IN (SELECT name FROM queues WHERE paused = 1) ORDER BY queue"
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
    now = txn.now
    stored = {
        key: (tokens, at)
        for key, tokens, at in txn.execute(BUCKETS, (json.dumps(list(rates)),)).fetchall()
    }
    out = {}
    for key, rate in rates.items():
        tokens, at = stored.get(key, (rate.burst, now))
        out[key] = min(rate.burst, tokens + max(0.0, now - at) * rate.per_second)
    return out


def shares(
    caps: Mapping[str, int], weights: Mapping[str, float], start: Mapping[str, float], n: int
) -> dict[str, int]:
    """Split ``n`` claims between queues by weighted fair queueing (see module doc)."""
    alloc = dict.fromkeys(caps, 0)
    for _ in range(n):
        open_queues = [q for q in caps if alloc[q] < caps[q]]
        if not open_queues:
            break
        best = min(open_queues, key=lambda q: (start[q] + (alloc[q] + 1) / weights.get(q, 1.0), q))
        alloc[best] += 1
    return {q: k for q, k in alloc.items() if k}


class Claimed(list[ClaimedTask]):
    """Claimed tasks, and when a rate limit that held some back has a token again
    (seconds from now; None when no rate limit held anything back)."""

    retry_in: float | None = None


def _token_wait(tokens: float, rate: Rate, floor: float) -> float:
    return max(floor, (1.0 - tokens) / rate.per_second)


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
    waits: list[float] = []
    running = dict(txn.execute(RUNNING_COUNTS).fetchall())
    rates = {f"q:{q}": r for q, r in flow.queue_rates.items() if q in ready}
    rates.update({f"h:{h}": r for h, r in flow.handler_rates.items() if h in handlers})
    tokens = _tokens(txn, rates)
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
        row = txn.execute(VTIME).fetchone()
        vtime = float(row[0]) if row else 0.0
        served = dict(txn.execute(SERVED).fetchall())
        start = {q: max(float(served.get(q, 0.0)), vtime) for q in caps}
        caps = shares(caps, flow.queue_weights, start, limit)
    free = [h for h in handlers if f"h:{h}" not in tokens]
    claimed = _claim_queues(txn, owner, caps, limit, free, lease_ttl) if free else []
    per_queue: dict[str, int] = {}
    for task in claimed:
        per_queue[task.queue] = per_queue.get(task.queue, 0) + 1
    # Rate-limited handlers: each gets at most its whole tokens, from what is left.
    for handler in (h for h in handlers if f"h:{h}" in tokens):
        room = min(limit - len(claimed), math.floor(tokens[f"h:{handler}"]))
        left = {q: c - per_queue.get(q, 0) for q, c in caps.items() if c > per_queue.get(q, 0)}
        if room <= 0 or not left:
            continue
        got = _claim_queues(txn, owner, left, room, [handler], lease_ttl)
        tokens[f"h:{handler}"] -= len(got)
        for task in got:
            per_queue[task.queue] = per_queue.get(task.queue, 0) + 1
        claimed += got
    for queue, count in per_queue.items():
        if f"q:{queue}" in tokens:
            tokens[f"q:{queue}"] -= count
    now = txn.now
    txn.conn.executemany(SAVE_BUCKET, [(key, t, now) for key, t in tokens.items()])
    if weighted:
        after = {q: start[q] + per_queue.get(q, 0) / flow.queue_weights.get(q, 1.0) for q in start}
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
