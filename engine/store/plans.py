"""Store logic written once for both drivers, as plans that name their statements.

A plan is a generator: it yields a :class:`Query` (the driver runs it in the open
transaction and sends back its rows, one row, one value, or nothing) or an
:class:`Insert` (the driver inserts the task and sends back its id), and returns
its result. Each driver runs plans with its own connection calls (SQLite: on the
writer thread; PostgreSQL: awaited), and passes in its own SQL: only the SQL and
the placeholder style differ between them, the logic does not.
"""

from __future__ import annotations

from collections.abc import Generator
from enum import Enum
from typing import Any, NamedTuple, Protocol, TypeVar

from engine.store.base import NewTask

T = TypeVar("T")


class Fetch(Enum):
    """What a query's answer is."""

    ROWS = "rows"  # every row
    ROW = "row"  # the first row, or None
    VALUE = "value"  # the first column of the first row, or None
    NOTHING = "nothing"  # a statement run for its effect


class Query(NamedTuple):
    fetch: Fetch
    sql: str
    args: tuple[Any, ...] = ()


class Insert(NamedTuple):
    """Insert ``task`` (by ``by``); answered with its :class:`~engine.model.TaskId`."""

    task: NewTask
    by: str


Plan = Generator[Query | Insert, Any, T]


class Moves(Protocol):
    """What a plan needs of the transaction itself: its time, and where it records
    count changes."""

    @property
    def now(self) -> float: ...

    def moved(self, queue: str, old: str, new: str, n: int = 1) -> None: ...


def rows(sql: str, *args: Any) -> Query:
    return Query(Fetch.ROWS, sql, args)


def row(sql: str, *args: Any) -> Query:
    return Query(Fetch.ROW, sql, args)


def value(sql: str, *args: Any) -> Query:
    return Query(Fetch.VALUE, sql, args)


def run(sql: str, *args: Any) -> Query:
    return Query(Fetch.NOTHING, sql, args)


F = TypeVar("F")


def reads_only(plan: F) -> F:
    """Mark ``plan`` as one that only reads: a driver may run it on a read connection,
    outside a write transaction (so it works on a store opened read-only)."""
    plan.reads_only = True  # type: ignore[attr-defined]
    return plan
