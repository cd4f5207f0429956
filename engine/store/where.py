"""A parsed task query (:mod:`engine.query`) as a parameterised SQL WHERE, for SQLite
(``json_extract``) or PostgreSQL (``jsonb``); ``?`` placeholders either way.

``!=`` keeps rows where the column is empty (``error!=x`` includes tasks without an
error). ``~`` is "contains, any case" (SQLite's LIKE ignores ASCII case; PostgreSQL
uses ILIKE). Payload and result text is stored as ASCII JSON, so a search for text
is encoded the same way first. A JSON path's value is compared as its text
(``payload.user_id=42`` matches 42 and "42"); ``<`` ``>`` compare numbers as numbers.
"""

from __future__ import annotations

import json
from typing import Any

from engine.query import AllOf, AnyOf, Compare, Dialect, Node, Not, Word

_COLUMNS = {
    "created": "created_at",
    "started": "started_at",
    "finished": "finished_at",
}


def like(text: str) -> str:
    """A LIKE pattern for "contains ``text``" (backslash escapes)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def to_sql(node: Node, dialect: Dialect) -> tuple[str, list[Any]]:
    """``(WHERE text, params)`` for the tree."""
    params: list[Any] = []
    return _Compiler(dialect, params).node(node), params


class _Compiler:
    def __init__(self, dialect: Dialect, params: list[Any]) -> None:
        self.pg = dialect == "postgres"
        self.params = params

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def node(self, node: Node) -> str:
        if isinstance(node, AllOf):
            return "(" + " AND ".join(self.node(t) for t in node.terms) + ")"
        if isinstance(node, AnyOf):
            return "(" + " OR ".join(self.node(t) for t in node.terms) + ")"
        if isinstance(node, Not):
            inner = self.node(node.term)
            return f"NOT COALESCE({inner}, FALSE)" if self.pg else f"NOT COALESCE({inner}, 0)"
        if isinstance(node, Word):
            return self.word(node)
        return self.compare(node)

    def contains(self, expr: str, text: str) -> str:
        if self.pg:
            return f"{expr} ILIKE {self.bind(like(text))}"
        return f"{expr} LIKE {self.bind(like(text))} ESCAPE '\\'"

    def id_text(self) -> str:
        return "CAST(id AS text)" if self.pg else "CAST(id AS TEXT)"

    def word(self, w: Word) -> str:
        parts = [self.contains("handler", w.text), self.contains("queue", w.text)]
        if w.text.isdigit():
            parts.append(f"{self.id_text()} LIKE {self.bind(w.text + '%')}")
        if w.errors:
            parts.append(self.contains("error", w.text))
        return "(" + " OR ".join(parts) + ")"

    def column(self, field: str) -> str:
        if field == "node":  # the part of the worker's name before "/"
            if self.pg:
                return "split_part(worker, '/', 1)"
            return (
                "(CASE WHEN instr(worker, '/') > 0 THEN substr(worker, 1, instr(worker, '/') - 1)"
                " ELSE worker END)"
            )
        return _COLUMNS.get(field, field)

    def compare(self, c: Compare) -> str:
        if c.path:
            return self.json_path(c)
        if c.field == "state":  # a literal (checked): partial indexes name the state
            return f"state {'=' if c.op == '=' else '<>'} '{c.value}'"
        if c.field == "node" and self.pg and c.op in ("=", "!="):
            return self.node_is(str(c.value), c.op == "=")
        column = self.column(c.field)
        value = c.value
        if c.op == "prefix":  # the console's old id:12
            return f"{self.id_text()} LIKE {self.bind(str(value) + '%')}"
        if c.op == "~":
            if c.field in ("payload", "result"):
                value = json.dumps(str(value))[1:-1]  # stored as ASCII JSON: \u00e9, \"
            expr = self.id_text() if c.field == "id" else column
            return self.contains(expr, str(value))
        if c.op == "!=":
            return f"{column} {'IS DISTINCT FROM' if self.pg else 'IS NOT'} {self.bind(value)}"
        return f"{column} {c.op} {self.bind(value)}"

    def node_is(self, node: str, equal: bool) -> str:
        """PostgreSQL: ``worker LIKE 'node/%'``, which the planner estimates from the
        column's statistics (an expression gets a blind guess, and a bad plan)."""
        escaped = node.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = self.bind(escaped + "/%")
        return (
            f"worker LIKE {pattern}" if equal else f"(worker IS NULL OR worker NOT LIKE {pattern})"
        )

    def json_text(self, column: str, path: tuple[str, ...]) -> str:
        """The value at ``path`` as text (what PostgreSQL's ``#>>`` gives)."""
        if self.pg:
            return f"({column}::jsonb #>> {self.bind(list(path))}::text[])"
        at = _sqlite_path(path)
        return (
            f"(CASE json_type({column}, {self.bind(at)}) WHEN 'true' THEN 'true' "
            f"WHEN 'false' THEN 'false' "
            f"ELSE CAST(json_extract({column}, {self.bind(at)}) AS TEXT) END)"
        )

    def json_number(self, column: str, path: tuple[str, ...]) -> str:
        """The value at ``path`` if it is a number, else NULL."""
        if self.pg:
            keys = list(path)
            return (
                f"(CASE WHEN jsonb_typeof({column}::jsonb #> {self.bind(keys)}::text[]) = "
                f"'number' THEN ({column}::jsonb #>> {self.bind(keys)}::text[])::float8 END)"
            )
        at = _sqlite_path(path)
        return (
            f"(CASE WHEN json_type({column}, {self.bind(at)}) IN ('integer', 'real') "
            f"THEN json_extract({column}, {self.bind(at)}) END)"
        )

    def json_path(self, c: Compare) -> str:
        value = c.value
        if c.op == "~":
            return self.contains(self.json_text(c.field, c.path), str(value))
        if c.op in ("<", "<=", ">", ">=") and isinstance(value, int | float):
            number = self.json_number(c.field, c.path)
            return f"{number} {c.op} {self.bind(float(value) if self.pg else value)}"
        text = self.json_text(c.field, c.path)
        shown = json.dumps(value) if isinstance(value, bool) else str(value)
        if c.op == "!=":
            return f"{text} {'IS DISTINCT FROM' if self.pg else 'IS NOT'} {self.bind(shown)}"
        return f"{text} {c.op} {self.bind(shown)}"


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f"[{k}]" if k.isdigit() else f'."{k}"' for k in path)
