"""Alert rules: their text syntax, parsed into :class:`Rule`, and evaluated against an
:class:`Observation` — pure functions, no I/O.

A rule is one line::

    [SCOPE] MEASURE OP VALUE [for DURATION] [while [SCOPE] MEASURE OP VALUE]
        [severity info|warning|critical] [notify CHANNEL[,CHANNEL…]] [repeat DURATION]

- ``SCOPE``: ``store`` (the default: the whole store), ``queue:NAME``, ``handler:NAME``,
  or ``queue:*`` / ``handler:*`` (each queue or handler on its own: one alert each).
- ``MEASURE``: one of :data:`MEASURES` (``p95 wait`` and ``p95 run`` are accepted for
  ``wait_p95`` and ``run_p95``).
- ``OP``: ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``.
- ``VALUE``: a number, with a unit where the measure has one: durations ``500ms``,
  ``30s``, ``2m``, ``1h``; sizes ``512MB``, ``2GB``; rates ``10/s``, ``600/m``;
  ``5%`` for a failure rate (a plain number there is a fraction, 0.05).
- ``for``: how long the condition must hold before the alert fires (and be clear
  before it resolves): the hysteresis. ``repeat``: at most one notification per this
  long while it stays firing (default: once).

Examples: ``queue:images backlog > 1000 for 2m severity critical notify ops,slack``;
``throughput == 0 for 5m while backlog > 0``; ``handler:* failure_rate > 10% for 1m``.

A latency objective (``[alerts.slo] images = "p95 wait < 30s"``) is parsed by
:func:`parse_slo` into a rule on ``queue:images`` that fires when the objective is
missed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
ScopeKind = Literal["store", "queue", "handler"]

#: measure -> (what it is, its unit kind, the scopes it exists for)
MEASURES: Mapping[str, tuple[str, str, tuple[ScopeKind, ...]]] = {
    "backlog": ("tasks waiting (queued)", "count", ("store", "queue")),
    "oldest_wait": ("age of the oldest queued task", "duration", ("store", "queue")),
    "wait_p95": ("95th percentile wait before start", "duration", ("store", "queue", "handler")),
    "run_p95": ("95th percentile run time", "duration", ("store", "queue", "handler")),
    "failure_rate": ("failed share of attempts, last minute", "ratio", ("store", "handler")),
    "throughput": ("tasks finished per second", "rate", ("store", "queue", "handler")),
    "busy_workers": ("workers running a task", "count", ("store",)),
    "rss": ("resident memory of the engine process", "size", ("store",)),
    "loop_lag": ("event-loop lag", "duration", ("store",)),
    "dead_nodes": ("cluster nodes that stopped beating", "count", ("store",)),
    "paused_for": ("time paused (the longest-paused queue)", "duration", ("store", "queue")),
}
_ALIASES = {"p95 wait": "wait_p95", "p95 run": "run_p95", "wait p95": "wait_p95"}
_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_DURATION = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = {"b": 1, "kb": 1024, "k": 1024, "mb": 1024**2, "m": 1024**2, "gb": 1024**3, "g": 1024**3}
_RATE = {"/s": 1.0, "/m": 1 / 60, "/min": 1 / 60, "/h": 1 / 3600}
_TOKEN = re.compile(r"\s*([<>=!]+|,|[^\s,<>=!]+)")
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)(.*)$")


class RuleError(ValueError):
    """A rule that cannot be read: says where, what was wrong and what is allowed."""


def allowed_measures() -> str:
    return ", ".join(MEASURES)


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind = "store"
    name: str = ""  # "" for the store; "*" for each queue/handler

    def __str__(self) -> str:
        return "store" if self.kind == "store" else f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Condition:
    scope: Scope
    measure: str
    op: str
    value: float

    def holds(self, seen: float | None) -> bool:
        return seen is not None and _OPS[self.op](seen, self.value)

    def __str__(self) -> str:
        scope = "" if self.scope.kind == "store" else f"{self.scope} "
        return f"{scope}{self.measure} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule, parsed. ``name`` is its key in the configuration."""

    name: str
    text: str
    condition: Condition
    hold: float = 0.0  # seconds (``for``)
    while_: Condition | None = None
    severity: Severity = "warning"
    channels: tuple[str, ...] = ()
    repeat: float | None = None  # seconds between notifications while firing; None: once
    kind: Literal["rule", "slo", "bottleneck"] = "rule"


@dataclass(frozen=True)
class Observation:
    """The measures at one moment: ``values[(kind, name)][measure]`` (store: name "").
    A missing value (no data yet) never makes a condition hold."""

    at: float
    values: Mapping[tuple[str, str], Mapping[str, float | None]]
    #: bottleneck findings seen: (severity, rule name, title)
    findings: Sequence[tuple[str, str, str]] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one rule sees for one scope key: whether its condition holds now."""

    rule: str
    key: str  # the scope key: "store", "queue:images", …
    active: bool
    value: float | None
    summary: str


# -- parsing -------------------------------------------------------------------------


class _Tokens:
    def __init__(self, text: str, name: str) -> None:
        self.text, self.name = text, name
        self.items: list[tuple[int, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or not m.group(1):
                break
            self.items.append((m.start(1), m.group(1)))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.items[self.i][1] if self.i < len(self.items) else None

    def pos(self) -> int:
        return self.items[self.i][0] if self.i < len(self.items) else len(self.text)

    def take(self, what: str) -> str:
        token = self.peek()
        if token is None:
            raise self.error(f"expected {what}, found the end of the rule")
        self.i += 1
        return token

    def error(self, message: str, at: int | None = None) -> RuleError:
        where = self.pos() if at is None else at
        return RuleError(
            f"alert rule {self.name!r}, at position {where + 1} "
            f"({self.text[:where]!s}▸{self.text[where:]!s}): {message}"
        )


def parse_rule(name: str, text: str) -> Rule:
    """Parse one rule line (see the module docstring); raises :class:`RuleError`."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError(
            f"alert rule {name!r} is empty; give e.g. 'backlog > 1000 for 2m' "
            f"(measures: {allowed_measures()})"
        )
    t = _Tokens(text, name)
    condition = _condition(t)
    hold, while_, severity, repeat = 0.0, None, "warning", None
    channels: tuple[str, ...] = ()
    seen: set[str] = set()
    while (word := t.peek()) is not None:
        at = t.pos()
        if word in seen:
            raise t.error(f"{word!r} is given twice", at)
        seen.add(word)
        t.take(word)
        if word == "for":
            hold = _duration(t, t.take("a duration after 'for' (e.g. 2m)"), at)
        elif word == "while":
            while_ = _condition(t)
        elif word == "severity":
            severity = _severity(t, t.take("a severity"))
        elif word == "notify":
            channels = _channels(t)
        elif word == "repeat":
            repeat = _duration(t, t.take("a duration after 'repeat' (e.g. 30m)"), at)
        else:
            raise t.error(
                f"unexpected {word!r}; after the condition come 'for DURATION', "
                "'while CONDITION', 'severity LEVEL', 'notify CHANNELS', 'repeat DURATION'",
                at,
            )
    return Rule(name, text, condition, hold, while_, severity, channels, repeat)  # type: ignore[arg-type]


def parse_slo(queue: str, text: str) -> Rule:
    """``"p95 wait < 30s [for 1m]"`` for a queue: a rule that fires while it is missed."""
    rule = parse_rule(f"slo:{queue}", f"queue:{queue} {text}" if text else "")
    c = rule.condition
    if c.scope != Scope("queue", queue) or c.op not in ("<", "<="):
        raise RuleError(
            f"latency objective for queue {queue!r} ({text!r}): write it as "
            "'p95 wait < 30s' or 'p95 run < 2m' (the measure, < or <=, the objective)"
        )
    missed = Condition(c.scope, c.measure, _NEGATED[c.op], c.value)
    return Rule(
        rule.name, text, missed, rule.hold, rule.while_, rule.severity, rule.channels,
        rule.repeat, "slo",
    )  # fmt: skip


def _condition(t: _Tokens) -> Condition:
    scope = Scope()
    start = t.pos()
    word = t.take(f"a measure ({allowed_measures()})")
    if word == "store" or ":" in word:
        scope = _scope(t, word, start)
        start = t.pos()
        word = t.take(f"a measure ({allowed_measures()})")
    nxt = t.peek()
    if nxt is not None and f"{word} {nxt}" in _ALIASES:
        t.take(nxt)
        word = _ALIASES[f"{word} {nxt}"]
    if word not in MEASURES:
        raise t.error(f"unknown measure {word!r}; the measures are {allowed_measures()}", start)
    if scope.kind not in MEASURES[word][2]:
        kinds = ", ".join(MEASURES[word][2])
        raise t.error(f"{word} is measured per {kinds}, not per {scope.kind}", start)
    at = t.pos()
    op = t.take("a comparison (>, >=, <, <=, ==, !=)")
    if op not in _OPS:
        raise t.error(f"expected a comparison (>, >=, <, <=, ==, !=), found {op!r}", at)
    at = t.pos()
    value = _value(t, word, t.take("a value"), at)
    return Condition(scope, word, op, value)


def _scope(t: _Tokens, word: str, at: int) -> Scope:
    if word == "store":
        return Scope()
    kind, _, name = word.partition(":")
    if kind not in ("queue", "handler") or not name:
        raise t.error(
            f"bad scope {word!r}; write store, queue:NAME, handler:NAME, queue:* or handler:*",
            at,
        )
    return Scope(kind, name)  # type: ignore[arg-type]


def _value(t: _Tokens, measure: str, token: str, at: int) -> float:
    unit_kind = MEASURES[measure][1]
    m = _NUMBER.match(token)
    if m is None:
        raise t.error(f"expected a number for {measure}, found {token!r}", at)
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit_kind == "duration":
        return _duration(t, token, at)
    units: dict[str, Mapping[str, float]] = {"size": _SIZE, "rate": _RATE, "ratio": {"%": 0.01}}
    table = units.get(unit_kind, {})
    if not unit:
        return number
    if unit not in table:
        allowed = ", ".join(table) if table else "none (a plain number)"
        raise t.error(f"unknown unit {unit!r} for {measure}; units: {allowed}", at)
    return number * table[unit]


def _duration(t: _Tokens, token: str, at: int) -> float:
    m = _NUMBER.match(token)
    unit = m.group(2).lower() if m else ""
    if m is None or float(m.group(1)) < 0 or (unit and unit not in _DURATION):
        raise t.error(
            f"bad duration {token!r}; write a number with ms, s, m, h or d (e.g. 30s, 2m)", at
        )
    return float(m.group(1)) * _DURATION.get(unit or "s", 1.0)


def parse_duration(text: str, what: str = "duration") -> float:
    """``"30s"``, ``"2m"``, ``"1h"`` (a bare number: seconds) -> seconds; ValueError."""
    t = _Tokens(str(text), what)
    try:
        return _duration(t, str(text).strip(), 0)
    except RuleError:
        raise ValueError(
            f"bad {what} {text!r}; write a number with ms, s, m, h or d (e.g. 30s, 2m)"
        ) from None


def _severity(t: _Tokens, word: str) -> str:
    if word not in SEVERITIES:
        raise t.error(f"unknown severity {word!r}; allowed: {', '.join(SEVERITIES)}")
    return word


def _channels(t: _Tokens) -> tuple[str, ...]:
    names = [t.take("a channel name")]
    while t.peek() == ",":
        t.take(",")
        names.append(t.take("a channel name after ','"))
    return tuple(names)


# -- evaluation ------------------------------------------------------------------------


def evaluate(rule: Rule, seen: Observation) -> list[Verdict]:
    """Whether ``rule`` holds now, for each of its scope keys (a wildcard scope: each
    queue or handler in the observation; a named one: that one, even without data)."""
    if rule.kind == "bottleneck":
        return _findings(rule, seen)
    c = rule.condition
    if c.scope.name == "*":
        keys = sorted(name for kind, name in seen.values if kind == c.scope.kind)
    else:
        keys = [c.scope.name]
    out = []
    for name in keys:
        scope = Scope(c.scope.kind, name)
        value = seen.values.get((scope.kind, name), {}).get(c.measure)
        active = c.holds(value) and (rule.while_ is None or _also(rule.while_, scope, seen))
        shown = "no data" if value is None else f"{value:.4g}"
        out.append(Verdict(rule.name, str(scope), active, value, f"{c.measure} = {shown}"))
    return out


def _also(c: Condition, scope: Scope, seen: Observation) -> bool:
    """The ``while`` condition: its own scope, or (if it has none and the rule's scope
    is a queue or handler that has the measure) the same scope as the rule."""
    own = c.scope
    if own.kind == "store" and c.measure in MEASURES and scope.kind in MEASURES[c.measure][2]:
        own = scope
    elif own.name == "*":
        own = Scope(own.kind, scope.name)
    return c.holds(seen.values.get((own.kind, own.name), {}).get(c.measure))


def _findings(rule: Rule, seen: Observation) -> list[Verdict]:
    floor = SEVERITIES.index(rule.severity)
    out = []
    for severity, name, title in seen.findings:
        if severity in SEVERITIES and SEVERITIES.index(severity) >= floor:
            out.append(Verdict(rule.name, f"finding:{name or title}", True, None, title))
    return out


def bottleneck_rule(level: object, channels: Sequence[str] = ()) -> Rule | None:
    """The "every bottleneck finding at LEVEL or above" switch: ``true`` is warning,
    ``false`` is off, or a severity name."""
    if level is False or level is None:
        return None
    severity = "warning" if level is True else level
    if severity not in ("warning", "critical"):
        raise RuleError(
            f"alerts.bottlenecks must be true, false, 'warning' or 'critical'; got {level!r}"
        )
    condition = Condition(Scope(), "backlog", ">=", 0)  # unused for this kind
    return Rule(
        "bottlenecks", f"bottleneck findings at {severity} or above", condition,
        severity=severity, channels=tuple(channels), kind="bottleneck",
    )  # fmt: skip
