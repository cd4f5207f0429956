"""The task query language: one grammar for ``engine.tasks(where=...)``, the CLI's
``--where`` and the console's ``/``.

::

    query   := or
    or      := and ("OR" and)*
    and     := not (["AND"] not)*          # terms side by side are ANDed
    not     := "NOT" not | "(" or ")" | compare | word
    compare := field op value              # state=failed  payload.user_id=42
    op      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"   # ~ contains, any case
    value   := word | "quoted text"        # \\" and \\\\ inside quotes
    word    := text without spaces, quotes, parentheses or operators

A bare word (``heic``) matches a handler, queue or error containing it, or an id
starting with it; ``handler:x``, ``queue:x`` and ``id:12`` still work as before.
Times are ISO 8601 (no offset: UTC) or relative to now: ``created>-1h`` (s m h d).

:func:`parse` gives a :class:`Query` (times already resolved against a clock);
:func:`to_sql` turns its tree into a parameterised WHERE (``?`` placeholders) for
SQLite or PostgreSQL. A malformed query raises :class:`QueryError`, whose message
starts with the 1-based column: ``at 14: expected a value after '='``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from engine.model import PRIORITY_NAMES, TaskState

#: Every field a query may name (``payload`` and ``result`` also take a JSON path).
FIELDS = (
    "id",
    "handler",
    "queue",
    "state",
    "priority",
    "attempts",
    "worker",
    "node",
    "created",
    "started",
    "finished",
    "error",
    "payload",
    "result",
)
#: A query that reads these (or a bare word, which reads ``error``) may scan every
#: task's text; ``tasks(where=...)`` stops it after :data:`SEARCH_SECONDS`.
TEXT_FIELDS = frozenset({"error", "payload", "result"})
SEARCH_SECONDS = 10.0
_INT_FIELDS = frozenset({"id", "priority", "attempts"})
_TIME_FIELDS = {"created": "created_at", "started": "started_at", "finished": "finished_at"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<lp>\()|(?P<rp>\))|(?P<op><=|>=|!=|=|<|>|~)"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\")|(?P<word>[^\s()=!<>~\"]+)"
)
_PATH_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|[0-9]+")
_RELATIVE = re.compile(r"([+-])(\d+(?:\.\d+)?)([smhd])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LEGACY = re.compile(r"(handler|queue|id):(.+)")

Dialect = Literal["sqlite", "postgres"]


class QueryError(ValueError):
    """A query that cannot be read or run; ``position`` is the 1-based column (0: the
    query as a whole)."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"at {position}: {message}" if position else message)
        self.position = position


# -- the tree ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Compare:
    """``field[.path] op value``; times are Unix seconds, states and numbers checked."""

    field: str
    op: str
    value: Any
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Word:
    """A bare word: handler, queue or (``errors``) error text containing it, or an id
    starting with it."""

    text: str
    errors: bool = True


@dataclass(frozen=True, slots=True)
class Not:
    term: Node


@dataclass(frozen=True, slots=True)
class AllOf:
    terms: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    terms: tuple[Node, ...]


Node = Compare | Word | Not | AllOf | AnyOf


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: ``root`` is its tree (None: every task)."""

    text: str
    root: Node | None

    @property
    def searches_text(self) -> bool:
        """Whether it reads payload, result or error text (so it may scan)."""
        return _searches(self.root)

    def pinned(self) -> tuple[dict[str, str], Query]:
        """``state``, ``queue`` and ``handler`` equalities ANDed at the top (they pick
        the list's order and index), and the query without them."""
        terms = self.root.terms if isinstance(self.root, AllOf) else (self.root,)
        pins: dict[str, str] = {}
        rest: list[Node] = []
        for term in terms:
            if term is None:
                continue
            if (
                isinstance(term, Compare)
                and term.op == "="
                and term.field in ("state", "queue", "handler")
                and term.field not in pins
            ):
                pins[term.field] = str(term.value)
            else:
                rest.append(term)
        root = None if not rest else rest[0] if len(rest) == 1 else AllOf(tuple(rest))
        return pins, replace(self, root=root)


def _searches(node: Node | None) -> bool:
    if isinstance(node, Compare):
        return node.field in TEXT_FIELDS
    if isinstance(node, Word):
        return node.errors
    if isinstance(node, Not):
        return _searches(node.term)
    if isinstance(node, AllOf | AnyOf):
        return any(_searches(t) for t in node.terms)
    return False


# -- reading -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # lp rp op str word
    text: str
    pos: int

    @property
    def keyword(self) -> str | None:
        up = self.text.upper()
        return up if self.kind == "word" and up in _KEYWORDS else None

    @property
    def value(self) -> str:
        if self.kind == "str":
            return re.sub(r"\\(.)", r"\1", self.text[1:-1])
        return self.text


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    at = 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            if text[at] == '"':
                raise QueryError(at + 1, "this quote is not closed")
            raise QueryError(at + 1, f"unexpected {text[at]!r} (did you mean '!='?)")
        kind = str(m.lastgroup)
        if kind != "space":
            out.append(_Token(kind, m.group(), at + 1))
        at = m.end()
    return out


def parse(text: str, now: float, *, encrypted: bool = False) -> Query:
    """Read ``text`` into a :class:`Query`; relative times count back from ``now``.
    ``encrypted``: payload, result and error are sealed, so naming them is refused
    and bare words match only handler, queue and id."""
    if not isinstance(text, str):
        raise QueryError(0, f"a query is text; got {type(text).__name__}")
    return Query(text, _Parser(text, now, encrypted).parse())


class _Parser:
    def __init__(self, text: str, now: float, encrypted: bool) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.now = now
        self.encrypted = encrypted

    @property
    def end(self) -> int:
        return len(self.text) + 1

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token | None:
        tok = self.peek()
        self.at += tok is not None
        return tok

    def where(self) -> int:
        tok = self.peek()
        return tok.pos if tok else self.end

    def parse(self) -> Node | None:
        if not self.tokens:
            return None
        node = self.any_of()
        tok = self.peek()
        if tok is not None:  # only a stray ')' stops a term list early
            raise QueryError(tok.pos, "unexpected ')': no '(' is open")
        return node

    def any_of(self) -> Node:
        terms = [self.all_of()]
        while (tok := self.peek()) is not None and tok.keyword == "OR":
            self.take()
            terms.append(self.all_of(after="OR"))
        return terms[0] if len(terms) == 1 else AnyOf(tuple(terms))

    def all_of(self, after: str | None = None) -> Node:
        terms = [self.negated(after)]
        while (tok := self.peek()) is not None and tok.kind != "rp" and tok.keyword != "OR":
            if tok.keyword == "AND":
                self.take()
                terms.append(self.negated("AND"))
            else:
                terms.append(self.negated())
        return terms[0] if len(terms) == 1 else AllOf(tuple(terms))

    def negated(self, after: str | None = None) -> Node:
        tok = self.peek()
        if tok is not None and tok.keyword == "NOT":
            self.take()
            return Not(self.negated("NOT"))
        return self.primary(after)

    def primary(self, after: str | None) -> Node:
        tok = self.take()
        if tok is None or tok.keyword in ("AND", "OR"):
            what = f"after {after}" if after else "here"
            raise QueryError(tok.pos if tok else self.end, f"expected a term {what}")
        if tok.kind == "lp":
            if (nxt := self.peek()) is not None and nxt.kind == "rp":
                raise QueryError(nxt.pos, "expected a term inside '(' ')'")
            node = self.any_of()
            if (close := self.take()) is None or close.kind != "rp":
                raise QueryError(self.end, f"expected ')' to close the '(' at {tok.pos}")
            return node
        if tok.kind == "rp":
            raise QueryError(tok.pos, "unexpected ')': no '(' is open")
        if tok.kind == "op":
            raise QueryError(tok.pos, f"expected a field name before {tok.text!r}")
        nxt = self.peek()
        if nxt is not None and nxt.kind == "op":
            return self.compare(tok, self.take() or nxt)
        return self.word(tok)

    def word(self, tok: _Token) -> Node:
        legacy = _LEGACY.fullmatch(tok.value) if tok.kind == "word" else None
        if legacy is None:
            return Word(tok.value, errors=not self.encrypted)
        field, value = legacy.groups()
        if field == "id":  # id:12 was (and is) a prefix
            return Compare("id", "prefix", value if value.isdigit() else "-")
        return Compare(field, "=", value)

    def compare(self, name: _Token, op: _Token) -> Compare:
        if name.kind == "str":
            raise QueryError(name.pos, "a field name is not quoted; fields: " + ", ".join(FIELDS))
        field, *path = name.text.split(".")
        field = field.lower()
        if field not in FIELDS:
            raise QueryError(name.pos, f"unknown field {field!r}; fields are: {', '.join(FIELDS)}")
        if field in TEXT_FIELDS and self.encrypted:
            raise QueryError(
                name.pos,
                f"{field} is encrypted in this store, so it cannot be searched; query "
                "id, handler, queue, state, priority, attempts, worker, node or the times",
            )
        if path and field not in ("payload", "result"):
            raise QueryError(name.pos, f"only payload and result take a path; {field} has none")
        for key in path:
            if not _PATH_KEY.fullmatch(key):
                raise QueryError(
                    name.pos, f"{name.text!r}: a path is keys (letters, digits, _ -) or indexes"
                )
        value = self.take()
        if value is None or value.kind not in ("word", "str") or value.keyword:
            raise QueryError(
                value.pos if value else self.end, f"expected a value after {op.text!r}"
            )
        check: _Check = _VALUES.get(field, _text) if not path else _json_value
        return Compare(field, op.text, check(self, field, op.text, value), tuple(path))


# -- values -------------------------------------------------------------------------
def _fail(tok: _Token, message: str) -> QueryError:
    return QueryError(tok.pos, message)


def _no_order(field: str, op: str, tok: _Token, ops: tuple[str, ...]) -> None:
    if op not in ops:
        raise _fail(tok, f"{field} takes {' '.join(ops)}, not {op!r}")


def _text(p: _Parser, field: str, op: str, tok: _Token) -> Any:
    if field in TEXT_FIELDS:
        _no_order(field, op, tok, ("=", "!=", "~"))
    return tok.value


def _state(p: _Parser, field: str, op: str, tok: _Token) -> Any:
    _no_order(field, op, tok, ("=", "!="))
    try:
        return TaskState(tok.value.lower()).value
    except ValueError:
        states = ", ".join(s.value for s in TaskState)
        raise _fail(tok, f"unknown state {tok.value!r}; states are: {states}") from None


def _int(p: _Parser, field: str, op: str, tok: _Token) -> Any:
    text = tok.value.lower()
    if field == "priority" and text in PRIORITY_NAMES:
        return PRIORITY_NAMES[text]
    if op == "~" and field == "id" and text.isdigit():
        return text
    if not re.fullmatch(r"-?\d+", text):
        names = " or low, normal, high, critical" if field == "priority" else ""
        raise _fail(tok, f"{field} takes a whole number{names}; got {tok.value!r}")
    return int(text)


def _time(p: _Parser, field: str, op: str, tok: _Token) -> Any:
    _no_order(field, op, tok, ("<", "<=", ">", ">=", "=", "!="))
    text = tok.value.strip()
    rel = _RELATIVE.fullmatch(text)
    if rel:
        sign, amount, unit = rel.groups()
        return p.now + (1 if sign == "+" else -1) * float(amount) * _UNITS[unit]
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(
            tok,
            f"{field} takes an ISO 8601 time (2026-11-23T02:00:00Z) or a time relative to "
            f"now (-30s, -15m, -1h, -2d); got {tok.value!r}",
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _json_value(p: _Parser, field: str, op: str, tok: _Token) -> Any:
    if tok.kind == "word" and op != "~":
        if _NUMBER.fullmatch(tok.text):
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        if tok.text in ("true", "false"):
            return tok.text == "true"
    return tok.value


_Check = Callable[[_Parser, str, str, _Token], Any]
_VALUES: dict[str, _Check] = {
    "state": _state,
    "id": _int,
    "priority": _int,
    "attempts": _int,
    **dict.fromkeys(_TIME_FIELDS, _time),
}
