"""Running the shared store plans (see :mod:`engine.store.plans`) in a PostgreSQL
transaction."""

from __future__ import annotations

from typing import Any, TypeVar

from engine.store.plans import Fetch, Insert, Plan, Query
from engine.store.postgres.conn import Txn
from engine.store.postgres.insert import insert_one

T = TypeVar("T")


async def drive(txn: Txn, plan: Plan[T]) -> T:
    """Run ``plan`` to its end in ``txn``; returns what it returns."""
    answer: Any = None
    try:
        while True:
            answer = await _answer(txn, plan.send(answer))
    except StopIteration as done:
        result: T = done.value
        return result


async def _answer(txn: Txn, step: Query | Insert) -> Any:
    if isinstance(step, Insert):
        return await insert_one(txn, step.task, step.by)
    if step.fetch is Fetch.ROWS:
        return await txn.fetch(step.sql, *step.args)
    if step.fetch is Fetch.ROW:
        return await txn.fetchrow(step.sql, *step.args)
    if step.fetch is Fetch.VALUE:
        return await txn.fetchval(step.sql, *step.args)
    return await txn.execute(step.sql, *step.args)
