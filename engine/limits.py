"""Flow control: rate limits ("100/m"), per-queue concurrency limits and queue weights.

They are settings (``queue_rate_limits``, ``handler_rate_limits``,
``queue_concurrency``, ``queue_weights``), so they change at runtime like any
other, and the store enforces them inside the claim transaction: a rate limit is a
token bucket kept in the store and a concurrency limit counts running tasks in the
store, so both hold across every process on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.checks import check_handler_name, check_queue_name

V = TypeVar("V")

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_SHORT = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+?)s?\s*$")
RATE_HELP = "<count>/<unit> such as '100/m', '10/s' or '5000/h' (units: s, m, h, d)"
MAX_WEIGHT = 1000.0


@dataclass(frozen=True)
class Rate:
    """``count`` tasks per ``period`` seconds, as a token bucket holding up to one
    second's worth of tokens (at least one), so bursts stay small."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def burst(self) -> float:
        return max(1.0, self.per_second)

    def __str__(self) -> str:
        return f"{self.count:g}/{_SHORT[self.period]}"


def parse_rate(text: object) -> Rate:
    """``"100/m"`` → 100 per minute; anything else → ``ValueError`` naming the form."""
    if isinstance(text, Rate):
        return text
    if not isinstance(text, str):
        raise TypeError(f"a rate limit is text, {RATE_HELP}; got {type(text).__name__}")
    match = _RATE.match(text.lower())
    unit = _UNITS.get(match.group(2)) if match else None
    if match is None or unit is None:
        raise ValueError(f"rate limit {text!r} is not understood: write {RATE_HELP}")
    count = float(match.group(1))
    if not 0 < count <= 1e9:
        raise ValueError(f"rate limit {text!r}: the count must be above 0; write {RATE_HELP}")
    return Rate(count, unit)


def _count(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise ValueError(f"must be a whole number of tasks from 1 to 100,000; got {value!r}")
    return value


def _weight(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be a number above 0; got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number above 0; got {value!r}")
    number = float(value)
    if not 0 < number <= MAX_WEIGHT or math.isnan(number):
        raise ValueError(f"must be above 0 and at most {MAX_WEIGHT:g}; got {value!r}")
    return number


def _rate_text(value: object) -> str:
    return str(parse_rate(value))


class LimitMap(Mapping[str, V]):
    """An immutable, hashable name → limit map that prints as ``a=1, b=2``."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, V] | None = None) -> None:
        self._items: dict[str, V] = dict(sorted((items or {}).items()))

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __str__(self) -> str:
        return ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self._items.items()
        )

    def __repr__(self) -> str:
        return repr(self._items)


@dataclass(frozen=True)
class LimitKind:
    """How one map setting's keys and values are checked."""

    keys: str  # "queue" or "handler"
    check: Callable[[object], Any]
    example: str

    def parse(self, value: object) -> LimitMap[Any]:
        """A map from a mapping or from text like ``"emails=100/m, reports=10/s"``;
        ``ValueError`` names the first bad entry and the form."""
        if isinstance(value, str):
            pairs: list[tuple[str, object]] = []
            for part in (p.strip() for p in value.split(",")):
                if not part:
                    continue
                name, sep, item = part.partition("=")
                if not sep:
                    raise ValueError(
                        f"{part!r} is not {self.keys}=value; write e.g. {self.example!r}"
                    )
                pairs.append((name.strip(), item.strip()))
            value = dict(pairs)
        if not isinstance(value, Mapping):
            raise ValueError(
                f"must be {self.keys}=value pairs such as {self.example!r}; "
                f"got {type(value).__name__}"
            )
        out = {}
        check_name = check_queue_name if self.keys == "queue" else check_handler_name
        for name, item in value.items():
            try:
                check_name(name)
            except (TypeError, ValueError) as exc:
                raise ValueError(str(exc)) from None
            try:
                out[name] = self.check(item)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from None
        return LimitMap(out)


QUEUE_RATES = LimitKind("queue", _rate_text, "emails=100/m, reports=10/s")
HANDLER_RATES = LimitKind("handler", _rate_text, "mail.send=100/m")
QUEUE_COUNTS = LimitKind("queue", _count, "reports=2, exports=1")
QUEUE_WEIGHTS = LimitKind("queue", _weight, "default=3, bulk=1")


@dataclass(frozen=True)
class FlowLimits:
    """What the claim transaction enforces (see :mod:`engine.store.sqlite.flow`)."""

    queue_rates: Mapping[str, Rate] = field(default_factory=dict)
    handler_rates: Mapping[str, Rate] = field(default_factory=dict)
    queue_concurrency: Mapping[str, int] = field(default_factory=dict)
    queue_weights: Mapping[str, float] = field(default_factory=dict)

    def holds(self, queue: str, handler: str) -> bool:
        """Whether a rate or concurrency limit applies to this queue or handler."""
        return (
            queue in self.queue_rates
            or queue in self.queue_concurrency
            or handler in self.handler_rates
        )

    def __bool__(self) -> bool:
        return bool(
            self.queue_rates or self.handler_rates or self.queue_concurrency or self.queue_weights
        )


def flow_limits(
    queue_rates: Mapping[str, str],
    handler_rates: Mapping[str, str],
    queue_concurrency: Mapping[str, int],
    queue_weights: Mapping[str, float],
) -> FlowLimits:
    return FlowLimits(
        {q: parse_rate(r) for q, r in queue_rates.items()},
        {h: parse_rate(r) for h, r in handler_rates.items()},
        dict(queue_concurrency),
        dict(queue_weights),
    )
