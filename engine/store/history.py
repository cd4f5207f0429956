"""Metrics history in the store (see :mod:`engine.history`), written once for both
drivers as plans (``?`` placeholders, numbered for PostgreSQL).

``history`` holds one row per (step, period start, handler, queue): the counts and
the encoded histograms of :class:`~engine.history.cells.Cell`. ``history_marks``
says up to where minutes have been rolled into hours (step 3600) and hours into
days (step 86400). ``leases`` holds named leader leases (``history``: the node that
rolls up and prunes), claimed like the alert lease: a conditional UPDATE.

Every node adds its own closed minutes into the shared rows (:func:`add`): the
histograms merge by adding counts, so two nodes make one history with exact
totals, never two. A minute that arrives after its hour was rolled up is added to
the hour (and day) too, so roll-ups stay exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.store.plans import Moves, Plan, reads_only, row, rows, run, value

COLUMNS = "runs, successes, failures, retries, timeouts, run_sum, run_hist, wait_hist, backlog"
_NAMES = [c.strip() for c in COLUMNS.split(",")]
UPSERT_HEAD = f"INSERT INTO history (step, t, handler, queue, {COLUMNS}) VALUES "
UPSERT_TAIL = " ON CONFLICT (step, t, handler, queue) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _NAMES
)
EXISTING = f"SELECT t, handler, queue, {COLUMNS} FROM history WHERE step = ? AND t >= ? AND t <= ?"
READ = (
    f"SELECT t, handler, queue, {COLUMNS} FROM history WHERE step = ? AND t >= ? AND t < ? "
    "AND (? = '*' OR handler = ? OR handler = '') AND (? = '*' OR queue = ?) ORDER BY t"
)
NAMES = (
    "SELECT DISTINCT handler, queue FROM history WHERE (step = 60 AND t >= ?) "
    "OR (step = 3600 AND t >= ?) OR (step = 86400 AND t >= ?)"
)
MARKS = "SELECT step, upto FROM history_marks"
SET_MARK = "UPDATE history_marks SET upto = ? WHERE step = ?"
FORGET = "DELETE FROM history WHERE step = ? AND t < ?"
CLAIM = (
    "UPDATE leases SET node = ?, expires_at = ? "
    "WHERE name = ? AND (node = ? OR expires_at < ?) RETURNING node"
)
HOLDER = "SELECT node, expires_at FROM leases WHERE name = ?"
#: a write to the lease row that changes nothing: on PostgreSQL it locks the row until
#: the transaction ends, so history writers (every node's minute, the roll-up) take
#: turns; SQLite's write transactions take turns already
LOCK = "UPDATE leases SET node = node WHERE name = 'history'"

CHUNK = 1000  # rows a statement (13 arguments each)
Row = tuple[Any, ...]  # (t, handler, queue, *columns)
Folded = Mapping[tuple[int, int, str, str], tuple[Any, ...]]  # (step, t, h, q) -> columns


def claim(txn: Moves, name: str, node: str, ttl: float) -> Plan[bool]:
    """Take or renew the lease ``name`` for ``ttl`` seconds; True if ``node`` holds it."""
    held = yield value(CLAIM, node, txn.now + ttl, name, node, txn.now)
    return bool(held == node)


def lock(txn: Moves) -> Plan[None]:
    """Wait for, then hold until commit, the history's write turn (see :data:`LOCK`):
    a read-add-write of a row must not interleave with another node's."""
    yield run(LOCK)


@reads_only
def holder(txn: Moves, name: str) -> Plan[tuple[str, float] | None]:
    found = yield row(HOLDER, name)
    return (str(found[0]), float(found[1])) if found and found[0] else None


@reads_only
def marks(txn: Moves) -> Plan[dict[int, int]]:
    found = yield rows(MARKS)
    return {int(r[0]): int(r[1]) for r in found}


def existing(txn: Moves, step: int, first: int, last: int) -> Plan[list[Row]]:
    """The stored rows of ``step`` with ``first <= t <= last``."""
    found: list[Row] = yield rows(EXISTING, step, first, last)
    return found


def upsert(txn: Moves, cells: Folded) -> Plan[None]:
    """Write these rows (replacing what is stored under the same key), one statement
    per :data:`CHUNK` rows (PostgreSQL takes at most 32,767 arguments a statement)."""
    places = "(" + ", ".join("?" * (4 + len(_NAMES))) + ")"
    items = sorted(cells.items())
    for first in range(0, len(items), CHUNK):
        chunk = items[first : first + CHUNK]
        args = [v for key, cols in chunk for v in (*key, *cols)]
        yield run(UPSERT_HEAD + ", ".join([places] * len(chunk)) + UPSERT_TAIL, *args)


@reads_only
def read(
    txn: Moves, step: int, since: int, until: int, handler: str, queue: str
) -> Plan[list[Row]]:
    """Rows of ``step`` in ``[since, until)``; ``"*"``: any handler or queue (a queue's
    backlog rows, handler ``""``, come with every handler filter)."""
    found: list[Row] = yield rows(READ, step, since, until, handler, handler, queue, queue)
    return found


def set_mark(txn: Moves, step: int, upto: int) -> Plan[None]:
    yield run(SET_MARK, upto, step)


def forget(txn: Moves, step: int, before: int) -> Plan[int]:
    """Delete the rows of ``step`` older than ``before``; returns how many."""
    n = yield value("SELECT count(*) FROM history WHERE step = ? AND t < ?", step, before)
    if n:
        yield run(FORGET, step, before)
    return int(n or 0)


@reads_only
def names(txn: Moves, since: int) -> Plan[list[Row]]:
    """Every (handler, queue) with a row since ``since`` (handler ``""``: a backlog)."""
    found: list[Row] = yield rows(NAMES, since, since, since)
    return found
