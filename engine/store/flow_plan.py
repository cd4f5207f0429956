"""The arithmetic of a flow-controlled claim, shared by every store backend.

A backend reads the ready and running counts, the token buckets and the queues'
virtual service times inside its claim transaction; these functions decide how
many tasks each queue may give (:func:`plan`), split a claim between weighted
queues (:func:`shares`), and say what to write back (:func:`spend`,
:func:`served_after`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.limits import FlowLimits, Rate
from engine.store.base import ClaimedTask


def refill(
    stored: Mapping[str, tuple[float, float]], rates: Mapping[str, Rate], now: float
) -> dict[str, float]:
    """Each bucket's tokens now, from (tokens, updated_at) as stored (a bucket not
    seen yet starts full)."""
    out = {}
    for key, rate in rates.items():
        tokens, at = stored.get(key, (rate.burst, now))
        out[key] = min(rate.burst, tokens + max(0.0, now - at) * rate.per_second)
    return out


def bucket_keys(flow: FlowLimits, ready: Mapping[str, int], handlers: list[str]) -> dict[str, Rate]:
    """The buckets a claim reads: ``q:<queue>`` for ready queues, ``h:<handler>``."""
    rates = {f"q:{q}": r for q, r in flow.queue_rates.items() if q in ready}
    rates.update({f"h:{h}": r for h, r in flow.handler_rates.items() if h in handlers})
    return rates


def _wait(tokens: float, rate: Rate, floor: float) -> float:
    return max(floor, (1.0 - tokens) / rate.per_second)


def plan(
    flow: FlowLimits,
    ready: Mapping[str, int],
    running: Mapping[str, int],
    tokens: Mapping[str, float],
    limit: int,
) -> tuple[dict[str, int], float | None]:
    """How many tasks each queue may give now, and when a rate limit that held tasks
    back has a token again (None: none did)."""
    caps: dict[str, int] = {}
    waits: list[float] = []
    for queue, count in ready.items():
        cap = min(count, limit)
        if queue in flow.queue_concurrency:
            cap = min(cap, flow.queue_concurrency[queue] - running.get(queue, 0))
        have = tokens.get(f"q:{queue}")
        if have is not None:
            if have < cap:
                waits.append(_wait(have - math.floor(have), flow.queue_rates[queue], 0.005))
            cap = min(cap, math.floor(have))
        if cap > 0:
            caps[queue] = cap
    for handler, rate in flow.handler_rates.items():
        have = tokens.get(f"h:{handler}")
        if have is not None and have < 1:
            waits.append(_wait(have, rate, 0.05))
    return caps, min(waits, default=None)


def shares(
    caps: Mapping[str, int], weights: Mapping[str, float], start: Mapping[str, float], n: int
) -> dict[str, int]:
    """Split ``n`` claims between queues by weighted fair queueing: the next task goes
    to the queue whose virtual time (``start`` + tasks/weight) would be lowest."""
    alloc = dict.fromkeys(caps, 0)
    for _ in range(n):
        open_queues = [q for q in caps if alloc[q] < caps[q]]
        if not open_queues:
            break
        best = min(open_queues, key=lambda q: (start[q] + (alloc[q] + 1) / weights.get(q, 1.0), q))
        alloc[best] += 1
    return {q: k for q, k in alloc.items() if k}


def per_queue(tasks: list[ClaimedTask]) -> dict[str, int]:
    out: dict[str, int] = {}
    for task in tasks:
        out[task.queue] = out.get(task.queue, 0) + 1
    return out


def spend(tokens: dict[str, float], claimed_per_queue: Mapping[str, int]) -> None:
    """Take the queues' tokens for what was claimed (handler buckets are spent as
    their own claims go)."""
    for queue, count in claimed_per_queue.items():
        if f"q:{queue}" in tokens:
            tokens[f"q:{queue}"] -= count


def served_after(
    start: Mapping[str, float], claimed_per_queue: Mapping[str, int], weights: Mapping[str, float]
) -> dict[str, float]:
    """Each weighted queue's virtual time after this claim."""
    return {q: start[q] + claimed_per_queue.get(q, 0) / weights.get(q, 1.0) for q in start}
