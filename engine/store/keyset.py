"""SQL that reads a task list by key instead of by OFFSET.

A list's order is a few columns (``priority DESC, id`` for queued tasks). The rows
that sort before a task are "a better first column, or an equal first column and
a better second one, …": one index range per column. Counting those ranges gives
the task's position; reading a few rows from each gives the page around it. Both
cost the same anywhere in a list of millions, where ``OFFSET`` walks every row
ahead of the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Ordering:
    """The columns of a list's ORDER BY, as ``(name, descending)`` pairs."""

    columns: tuple[tuple[str, bool], ...]

    @classmethod
    def parse(cls, order_by: str) -> Ordering:
        terms = [term.split() for term in order_by.split(",")]
        return cls(tuple((term[0], term[1:] == ["DESC"]) for term in terms))

    @property
    def names(self) -> str:
        return ", ".join(name for name, _ in self.columns)

    def sql(self, *, forward: bool = True, start: int = 0) -> str:
        """``ORDER BY`` text from column ``start`` on, in list order or reversed."""
        return ", ".join(
            f"{name} {'DESC' if descending == forward else 'ASC'}"
            for name, descending in self.columns[start:]
        )

    def sort_key(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """A Python sort key giving list order for numeric column values."""
        return tuple(-v if desc else v for v, (_, desc) in zip(values, self.columns, strict=True))

    def ranges(
        self, cond: str, params: list[Any], values: list[Any], *, after: bool
    ) -> list[tuple[int, str, list[Any]]]:
        """``(column index, WHERE, params)`` of the index ranges holding the rows before
        the row with key ``values``, or (``after``) the rows from it on, itself included."""
        out: list[tuple[int, str, list[Any]]] = []
        last = len(self.columns) - 1
        for depth, (name, descending) in enumerate(self.columns):
            equal = [f"{n} = ?" for n, _ in self.columns[:depth]]
            if after:  # later in the list: smaller under DESC; the row itself too
                op = ("<" if descending else ">") + ("=" if depth == last else "")
            else:
                op = ">" if descending else "<"
            terms = " AND ".join([cond, *equal, f"{name} {op} ?"])
            out.append((depth, terms, [*params, *values[: depth + 1]]))
        return out


def count_before(
    ordering: Ordering, conds: list[tuple[str, list[Any]]], values: list[Any]
) -> tuple[str, list[Any]]:
    """One statement counting the rows before ``values`` under each condition
    (one condition per index that serves the list, e.g. one per queue)."""
    parts: list[str] = []
    out: list[Any] = []
    for cond, params in conds:
        for _, where, range_params in ordering.ranges(cond, params, values, after=False):
            parts.append(f"(SELECT count(*) FROM tasks WHERE {where})")
            out += range_params
    return "SELECT " + " + ".join(parts), out


def window_around(
    ordering: Ordering,
    columns: str,
    conds: list[tuple[str, list[Any]]],
    values: list[Any],
    before: int,
    after: int,
) -> tuple[str, list[Any]]:
    """One statement for up to ``before`` rows ahead of the key and ``after`` rows from
    it on, in no particular order (sort them with :meth:`Ordering.sort_key`)."""
    sides: list[str] = []
    out: list[Any] = []
    for is_after, limit in ((False, before), (True, after)):
        if limit <= 0:
            continue
        parts: list[str] = []
        for cond, params in conds:
            for depth, where, range_params in ordering.ranges(cond, params, values, after=is_after):
                order = ordering.sql(forward=is_after, start=depth)
                parts.append(
                    f"SELECT * FROM (SELECT {columns} FROM tasks WHERE {where} "
                    f"ORDER BY {order} LIMIT ?)"
                )
                out += [*range_params, limit]
        union = " UNION ALL ".join(parts)
        sides.append(f"SELECT * FROM ({union} ORDER BY {ordering.sql(forward=is_after)} LIMIT ?)")
        out.append(limit)
    return " UNION ALL ".join(sides), out
