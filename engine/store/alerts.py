"""Alerts in the store (see :mod:`engine.alerts`), written once for both drivers as
plans (see :mod:`engine.store.plans`). The statements are plain SQL with ``?``
placeholders; the PostgreSQL driver numbers them (``$1``…) with :func:`numbered`.

The leader lease is one row (``alert_leader``, id 1), claimed with a conditional
UPDATE: a node takes it when it is free or expired, and keeps it by renewing it.
:func:`apply` renews the lease *in the transaction that writes the transitions and
inserts their deliveries*: a node that lost the lease writes nothing, so no
transition is written (and notified) twice, and a transition and its deliveries
commit together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.store.base import NewTask
from engine.store.plans import Fetch, Insert, Moves, Plan, Query, T, row, rows, run, value

#: every column of an alert row after ``id``, in order
ALERT_COLUMNS = (
    "rule, key, state, severity, since, started_at, clear_since, last_notified, notified, "
    "acked_by, acked_at, note, value, summary"
)
_SELECT = f"SELECT id, {ALERT_COLUMNS} FROM alerts"

CLAIM = (
    "UPDATE alert_leader SET node = ?, expires_at = ? "
    "WHERE id = 1 AND (node = ? OR expires_at < ?) RETURNING node"
)
LEADER = "SELECT node, expires_at FROM alert_leader WHERE id = 1"
RELEASE = "UPDATE alert_leader SET expires_at = 0 WHERE id = 1 AND node = ?"
OPEN = f"{_SELECT} WHERE state IN ('pending', 'firing') ORDER BY id"
INSERT = f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ({', '.join('?' * 14)}) RETURNING id"
#: what the evaluator changes (never the acknowledgement, which an operator writes)
UPDATE = (
    "UPDATE alerts SET state = ?, severity = ?, since = ?, clear_since = ?, "
    "last_notified = ?, notified = ?, value = ?, summary = ? WHERE id = ?"
)
_UPDATED = (2, 3, 4, 6, 7, 8, 12, 13)  # those columns' places in ALERT_COLUMNS
EVENT = (
    "INSERT INTO alert_events (alert_id, at, kind, channel, task_id, detail) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
ONE = f"{_SELECT} WHERE id = ?"
ACK = "UPDATE alerts SET acked_by = ?, acked_at = ?, note = ? WHERE id = ?"
SILENCES = "SELECT rule, until, note, by, at FROM alert_silences WHERE until > ? ORDER BY rule"
SILENCE = (
    "INSERT INTO alert_silences (rule, until, note, by, at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (rule) DO UPDATE SET until = excluded.until, note = excluded.note, "
    "by = excluded.by, at = excluded.at"
)
RECENT = (
    f"{_SELECT} WHERE state IN ('pending', 'firing') OR (state = 'resolved' AND since >= ?) "
    "ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, since DESC, "
    "id DESC LIMIT ?"
)
EVENTS = (
    "SELECT id, alert_id, at, kind, channel, task_id, detail FROM alert_events "
    "WHERE (? = 0 OR alert_id = ?) ORDER BY id DESC LIMIT ?"
)
PAUSED = "SELECT name, changed_at FROM queues WHERE paused = TRUE"
FORGET_EVENTS = "DELETE FROM alert_events WHERE at < ?"
FORGET_ALERTS = "DELETE FROM alerts WHERE state IN ('resolved', 'cleared') AND since < ?"
FORGET_SILENCES = "DELETE FROM alert_silences WHERE until < ?"


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1``, ``$2``… (none appear in literals)."""
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", number, sql)


def numbered_plan(plan: Plan[T]) -> Plan[T]:
    """``plan`` with every query's placeholders numbered (for PostgreSQL)."""
    answer: Any = None
    try:
        while True:
            step = plan.send(answer)
            if isinstance(step, Query):
                step = step._replace(sql=numbered(step.sql))
            answer = yield step
    except StopIteration as done:
        result: T = done.value
        return result


#: the plans that only read: a driver may run them outside a write transaction (on a
#: read connection), so listing alerts works on a store opened read-only
READS = frozenset({"recent", "events", "silences", "leader", "one", "paused_since"})


def is_read(plan: Callable[..., Any]) -> bool:
    """Whether ``plan`` (one of this module's plans, one marked with
    :func:`~engine.store.plans.reads_only`, or a partial of one) only reads."""
    found = getattr(plan, "func", plan)
    if getattr(found, "reads_only", False):
        return True
    return getattr(found, "__module__", "") == __name__ and found.__name__ in READS


@dataclass(frozen=True, slots=True)
class _At:
    now: float

    def moved(self, queue: str, old: str, new: str, n: int = 1) -> None:
        raise TypeError("a read plan moves no task")


async def drive_reads(
    read: Callable[[str, tuple[Any, ...]], Awaitable[list[Any]]],
    plan: Callable[[Any], Plan[T]],
    now: float,
) -> T:
    """Run a read plan with ``read(sql, args) -> rows`` (a driver's read connection)."""
    steps = plan(_At(now))
    answer: Any = None
    try:
        while True:
            step = steps.send(answer)
            if not isinstance(step, Query) or step.fetch is Fetch.NOTHING:
                raise TypeError(f"a read plan wrote: {step!r}")
            found = await read(step.sql, step.args)
            first = found[0] if found else None
            answer = {Fetch.ROWS: found, Fetch.ROW: first}.get(
                step.fetch, first[0] if first is not None else None
            )
    except StopIteration as done:
        result: T = done.value
        return result


@dataclass(frozen=True, slots=True)
class AlertWrite:
    """One alert's change: ``id`` 0 inserts it. ``row``: values of ALERT_COLUMNS.
    ``event``: the transition to record (or None); ``notice``: what to send to each of
    ``channels`` (a delivery task each, made by the ``make_task`` given to apply)."""

    id: int
    row: tuple[Any, ...]
    event: str | None = None
    detail: str = ""
    notice: str | None = None
    channels: tuple[str, ...] = ()


#: (alert id, channel, notice) -> the delivery task
MakeTask = Callable[[int, str, str], NewTask]


def claim(txn: Moves, node: str, ttl: float) -> Plan[bool]:
    """Take or renew the lease for ``ttl`` seconds; True if this node holds it."""
    held = yield value(CLAIM, node, txn.now + ttl, node, txn.now)
    return bool(held == node)


def release(txn: Moves, node: str) -> Plan[None]:
    yield run(RELEASE, node)


def leader(txn: Moves) -> Plan[tuple[str, float] | None]:
    found = yield row(LEADER)
    return (str(found[0]), float(found[1])) if found and found[0] else None


def open_alerts(txn: Moves) -> Plan[list[Any]]:
    found: list[Any] = yield rows(OPEN)
    return found


#: (open alert rows, silenced rule names, now) -> the changes to write
Decide = Callable[[list[Any], set[str], float], Sequence[AlertWrite]]


def evaluate(
    txn: Moves, node: str, ttl: float, decide: Decide, make_task: MakeTask
) -> Plan[list[AlertWrite] | None]:
    """In one transaction: renew the lease (or, if another node holds it, do nothing
    and return None), read the open alerts and silences, ``decide`` the changes, write
    them with their history rows and delivery tasks. Returns the changes written."""
    if not (yield from claim(txn, node, ttl)):
        return None
    open_rows = yield rows(OPEN)
    silenced = {r[0] for r in (yield rows(SILENCES, txn.now))}
    writes = list(decide(open_rows, silenced, txn.now))
    ids = yield from _apply(txn, node, writes, make_task)
    return [w if w.id else replace(w, id=i) for w, i in zip(writes, ids, strict=True)]


def _apply(
    txn: Moves, node: str, writes: Sequence[AlertWrite], make_task: MakeTask
) -> Plan[list[int]]:
    ids = []
    for w in writes:
        alert_id = w.id
        if alert_id == 0:
            alert_id = int((yield value(INSERT, *w.row)))
        else:
            yield run(UPDATE, *(w.row[i] for i in _UPDATED), alert_id)
        ids.append(alert_id)
        if w.event is not None:
            yield run(EVENT, alert_id, txn.now, w.event, None, None, w.detail)
        if w.notice is None:
            continue
        for channel in w.channels:
            task_id = yield Insert(make_task(alert_id, channel, w.notice), node)
            yield run(EVENT, alert_id, txn.now, "queued", channel, int(task_id), w.notice)
    return ids


def one(txn: Moves, alert_id: int) -> Plan[Any]:
    found = yield row(ONE, alert_id)
    return found


def ack(txn: Moves, alert_id: int, by: str, note: str) -> Plan[Any]:
    """Acknowledge an alert; returns its row before, or None if there is none."""
    found = yield row(ONE, alert_id)
    if found is None:
        return None
    yield run(ACK, by, txn.now, note, alert_id)
    yield run(EVENT, alert_id, txn.now, "ack", None, None, f"by {by}: {note}".rstrip(": "))
    return found


def silence(txn: Moves, rule: str, until: float, note: str, by: str) -> Plan[None]:
    yield run(SILENCE, rule, until, note, by, txn.now)
    yield run(
        EVENT, None, txn.now, "silence", None, None, f"{rule} until {until:.0f} by {by}: {note}"
    )


def silences(txn: Moves) -> Plan[list[Any]]:
    found: list[Any] = yield rows(SILENCES, txn.now)
    return found


def recent(txn: Moves, since: float, limit: int) -> Plan[list[Any]]:
    found: list[Any] = yield rows(RECENT, since, limit)
    return found


def events(txn: Moves, alert_id: int, limit: int) -> Plan[list[Any]]:
    found: list[Any] = yield rows(EVENTS, alert_id, alert_id, limit)
    return found


def record(
    txn: Moves, alert_id: int | None, kind: str, channel: str | None, task_id: int | None,
    detail: str,
) -> Plan[None]:  # fmt: skip
    yield run(EVENT, alert_id, txn.now, kind, channel, task_id, detail)


def paused_since(txn: Moves) -> Plan[list[Any]]:
    found: list[Any] = yield rows(PAUSED)
    return found


def forget(txn: Moves, keep: float) -> Plan[None]:
    """Drop history older than ``keep`` seconds (open alerts stay)."""
    before = txn.now - keep
    yield run(FORGET_EVENTS, before)
    yield run(FORGET_ALERTS, before)
    yield run(FORGET_SILENCES, before)
