"""Running the shared store plans (see :mod:`engine.store.plans`) in an SQLite
write transaction, on the writer thread."""

from __future__ import annotations

from typing import Any, TypeVar

from engine.store.plans import Fetch, Insert, Plan, Query
from engine.store.sqlite.insert import insert_one
from engine.store.sqlite.txn import Txn

T = TypeVar("T")


def drive(txn: Txn, plan: Plan[T]) -> T:
    """Run ``plan`` to its end in ``txn``; returns what it returns."""
    answer: Any = None
    try:
        while True:
            answer = _answer(txn, plan.send(answer))
    except StopIteration as done:
        result: T = done.value
        return result


def _answer(txn: Txn, step: Query | Insert) -> Any:
    if isinstance(step, Insert):
        return insert_one(txn, step.task, step.by)
    cursor = txn.execute(step.sql, step.args)
    if step.fetch is Fetch.ROWS:
        return cursor.fetchall()
    if step.fetch is Fetch.NOTHING:
        return None
    found = cursor.fetchone()
    if step.fetch is Fetch.ROW or found is None:
        return found
    return found[0]
