"""Routes: which queue a handler's tasks go to, by handler name pattern.

``routes = {"reports.*": "reports", "images.resize": "cpu"}`` (the ``routes``
setting, or ``[engine] routes`` in ``taskdeck.toml``) maps glob patterns
(:mod:`fnmatch`: ``*``, ``?``, ``[abc]``) to queues. At enqueue the first pattern that
matches the handler's name, in the order given, picks the queue, unless the handler
was registered with its own queue (``@engine.task(queue=...)``) or the enqueue call
names one (``queue=``): the call beats the handler, the handler beats a route.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from engine.checks import MAX_HANDLER_NAME, check_queue_name
from engine.limits import LimitKind, LimitMap

#: What a pattern may hold: a handler name's characters and the wildcards.
_PATTERN_RE = re.compile(r"[A-Za-z0-9_.:\-*?\[\]!]+")
PATTERN_RULE = (
    "a handler name's characters (letters, digits, '_', '-', '.', ':') and the "
    "wildcards *, ? and [...]"
)
EXAMPLE = "reports.*=reports, images.resize=cpu"


def check_pattern(pattern: object) -> str:
    """``pattern`` if it is a valid route pattern, else ``ValueError`` with the rule."""
    if not isinstance(pattern, str):
        raise ValueError(f"a route pattern is text ({PATTERN_RULE}); got {type(pattern).__name__}")
    if not pattern.strip():
        raise ValueError(f"a route pattern is empty; write {PATTERN_RULE}, e.g. 'reports.*'")
    if len(pattern) > MAX_HANDLER_NAME or not _PATTERN_RE.fullmatch(pattern):
        bad = next((c for c in pattern if not _PATTERN_RE.fullmatch(c)), "")
        what = f"has {bad!r}, which" if bad else f"is over {MAX_HANDLER_NAME} characters and"
        raise ValueError(f"route pattern {pattern!r} {what} is not allowed: use {PATTERN_RULE}")
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"route pattern {pattern!r} has an unclosed '[': write e.g. 'img[12].*'")
    return pattern


def _queue(value: object) -> str:
    try:
        return check_queue_name(value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


class Routes(LimitMap[str]):
    """Pattern → queue rules in the order given (first match wins); prints as
    ``reports.*=reports, images.resize=cpu``."""

    __slots__ = ()

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._items = dict(items or {})

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and list(self._items.items()) == list(other.items())

    def queue_for(self, handler: str) -> str | None:
        """The queue of the first rule matching ``handler``, or None."""
        for pattern, queue in self._items.items():
            if fnmatchcase(handler, pattern):
                return queue
        return None

    def rule_for(self, handler: str) -> str | None:
        """The first pattern matching ``handler``, or None."""
        return next((p for p in self._items if fnmatchcase(handler, p)), None)


class RouteKind(LimitKind):
    """How the ``routes`` setting is read: from a mapping or from ``pattern=queue``
    pairs separated by commas; ``ValueError`` names the first bad entry."""

    def parse(self, value: object) -> Routes:
        if isinstance(value, str):
            pairs: list[tuple[str, Any]] = []
            for part in (p.strip() for p in value.split(",")):
                if not part:
                    continue
                pattern, sep, queue = part.partition("=")
                if not sep:
                    raise ValueError(f"{part!r} is not pattern=queue; write e.g. {EXAMPLE!r}")
                pairs.append((pattern.strip(), queue.strip()))
            value = dict(pairs)
        if not isinstance(value, Mapping):
            raise ValueError(
                f"must be pattern=queue pairs such as {EXAMPLE!r} (a table in the config "
                f"file); got {type(value).__name__}"
            )
        out: dict[str, str] = {}
        for pattern, queue in value.items():
            check_pattern(pattern)
            try:
                out[pattern] = _queue(queue)
            except ValueError as exc:
                raise ValueError(f"route {pattern!r}: {exc}") from None
        return Routes(out)


ROUTES = RouteKind("pattern", _queue, EXAMPLE)
