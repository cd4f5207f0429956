"""The history's store transactions, composed from :mod:`engine.store.history`:
add a node's closed minutes, roll minutes up into hours and hours into days, and
prune each resolution past its retention."""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.history.cells import DAY, HOUR, MINUTE, Cell, Key, floor
from engine.store import history as sql
from engine.store.plans import Moves, Plan

Cells = dict[tuple[int, int, str, str], Cell]  # (step, t, handler, queue) -> cell
COARSER = {MINUTE: HOUR, HOUR: DAY}


def add(txn: Moves, cells: Mapping[Key, Cell]) -> Plan[int]:
    """Add minute cells to the stored rows (and to their hour and day when those were
    already rolled up); returns the rows written."""
    if not cells:
        return 0
    yield from sql.lock(txn)
    marks = yield from sql.marks(txn)
    folded: Cells = {}
    for (t, handler, queue), cell in cells.items():
        for step in (MINUTE, HOUR, DAY):
            start = floor(t, step)
            if step == MINUTE or start < marks.get(step, 0):
                folded.setdefault((step, start, handler, queue), Cell()).merge(cell)
    yield from _merge_stored(txn, folded)
    yield from sql.upsert(txn, {k: c.columns() for k, c in folded.items()})
    return len(folded)


def _merge_stored(txn: Moves, folded: Cells) -> Plan[None]:
    """Add what is stored under the same keys into ``folded`` (one read per step)."""
    for step in sorted({k[0] for k in folded}):
        times = [k[1] for k in folded if k[0] == step]
        for r in (yield from sql.existing(txn, step, min(times), max(times))):
            mine = folded.get((step, int(r[0]), str(r[1]), str(r[2])))
            if mine is not None:
                mine.add_row(r[3:])


def roll_up(txn: Moves, now: float, grace: float) -> Plan[dict[int, int]]:
    """Roll whole minutes into hours and whole hours into days, for periods that ended
    at least ``grace`` seconds ago and were not rolled yet; returns the new marks."""
    yield from sql.lock(txn)
    marks = yield from sql.marks(txn)
    for finer, step in ((MINUTE, HOUR), (HOUR, DAY)):
        upto = floor(now - grace, step)
        if step == DAY:
            upto = min(upto, floor(marks.get(HOUR, 0), DAY))
        start = marks.get(step, 0)
        if upto <= start:
            continue
        folded: Cells = {}
        for r in (yield from sql.read(txn, finer, start, upto, "*", "*")):
            key = (step, floor(int(r[0]), step), str(r[1]), str(r[2]))
            folded.setdefault(key, Cell()).add_row(r[3:])
        yield from sql.upsert(txn, {k: c.columns() for k, c in folded.items()})
        yield from sql.set_mark(txn, step, upto)
        marks[step] = upto
    return marks


def forget(txn: Moves, now: float, keep: Mapping[int, float]) -> Plan[dict[int, int]]:
    """Delete rows whose period started more than ``keep[step]`` seconds before
    ``now`` (never minutes or hours not yet rolled up); returns how many per step."""
    marks = yield from sql.marks(txn)
    gone = {}
    for step in (MINUTE, HOUR, DAY):
        before = now - keep[step]
        if step in COARSER:
            before = min(before, marks.get(COARSER[step], 0))
        gone[step] = yield from sql.forget(txn, step, math.ceil(before))
    return gone
