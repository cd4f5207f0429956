"""Retry policies, and whether a failed attempt is retried or the task fails.

A policy's ``delay(n)`` is the wait before retry number ``n`` (1 = the first retry).
With ``jitter=True`` it is drawn uniformly from ``[0, bound(n)]`` ("full jitter"),
where ``bound(n)`` is the un-jittered delay capped at ``cap``.

:func:`decide` is the retry-or-fail decision for one failed attempt: a pure
function of the error, the attempt number, the task's ``max_retries`` and the
handler's policy (plus the random source the jitter draws from).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from engine.errors import PayloadDecodeError, RemoteError, ResultNotSerializable
from engine.model import TaskState

Kind = Literal["fixed", "linear", "exponential"]


def _seconds(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds; got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number < 0 or (positive and number == 0):
        rule = "a finite number above 0" if positive else "a finite number ≥ 0"
        raise ValueError(f"{name} must be {rule} (seconds); got {value!r}")
    return number


def check_exception_types(value: object, name: str = "retry_on") -> tuple[type[BaseException], ...]:
    """Validate a tuple of exception classes."""
    items = value if isinstance(value, tuple | list | set | frozenset) else (value,)
    out = []
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"{name} must list exception classes (e.g. (ConnectionError, TimeoutError)); "
                f"got {item!r}"
            )
        out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between attempts, and which errors are worth a retry."""

    kind: Kind = "exponential"
    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "linear", "exponential"):
            raise ValueError(f"kind must be fixed, linear or exponential; got {self.kind!r}")
        object.__setattr__(self, "base", _seconds("base", self.base))
        object.__setattr__(self, "cap", _seconds("cap", self.cap, positive=True))
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float):
            raise TypeError(f"factor must be a number; got {type(self.factor).__name__}")
        if not (1.0 <= float(self.factor) <= 100.0):
            raise ValueError(f"factor must be from 1 to 100; got {self.factor!r}")
        object.__setattr__(self, "factor", float(self.factor))
        object.__setattr__(self, "retry_on", check_exception_types(self.retry_on))

    @classmethod
    def fixed(
        cls,
        delay: float = 1.0,
        *,
        cap: float = 3600.0,
        jitter: bool = False,
        retry_on: tuple[type[BaseException], ...] = (),
    ) -> RetryPolicy:
        """The same wait before every retry."""
        return cls("fixed", delay, 1.0, cap, jitter, retry_on)

    @classmethod
    def linear(
        cls,
        base: float = 1.0,
        *,
        cap: float = 60.0,
        jitter: bool = False,
        retry_on: tuple[type[BaseException], ...] = (),
    ) -> RetryPolicy:
        """``base × n`` before retry ``n``."""
        return cls("linear", base, 1.0, cap, jitter, retry_on)

    @classmethod
    def exponential(
        cls,
        base: float = 0.5,
        *,
        cap: float = 60.0,
        factor: float = 2.0,
        jitter: bool = True,
        retry_on: tuple[type[BaseException], ...] = (),
    ) -> RetryPolicy:
        """``base × factor^(n-1)`` before retry ``n``."""
        return cls("exponential", base, factor, cap, jitter, retry_on)

    def bound(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (≥ 1), capped."""
        n = max(1, retry)
        if self.kind == "fixed":
            raw = self.base
        elif self.kind == "linear":
            raw = self.base * n
        else:
            # Guard the power against overflow for very large retry numbers.
            exponent = min(n - 1, 1000)
            raw = self.base * (self.factor**exponent) if self.base else 0.0
        return min(raw, self.cap)

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry``: ``bound`` or, with jitter, U(0, bound)."""
        bound = self.bound(retry)
        if not self.jitter or bound <= 0:
            return bound
        return (rng or random).uniform(0.0, bound)

    def should_retry(self, exc: BaseException) -> bool:
        """With ``retry_on`` set, only those exception types are retried."""
        return not self.retry_on or isinstance(exc, self.retry_on)

    def describe(self) -> str:
        if self.kind == "fixed":
            text = f"fixed {self.base:g} s"
        elif self.kind == "linear":
            text = f"linear {self.base:g} s × n"
        else:
            text = f"exponential {self.base:g} s × {self.factor:g}^(n-1)"
        text += f", cap {self.cap:g} s" + (", full jitter" if self.jitter else "")
        if self.retry_on:
            text += ", only on " + ", ".join(t.__name__ for t in self.retry_on)
        return text


DEFAULT_RETRY = RetryPolicy.exponential()


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What becomes of a task after a failed attempt.

    ``state`` is ``scheduled`` (retry after ``delay`` seconds), ``queued`` (retry
    now) or ``failed``; ``note`` says why, for the task's history.
    """

    state: TaskState
    delay: float
    note: str
    kind: str  # the error's type name

    @property
    def retry(self) -> bool:
        return self.state is not TaskState.FAILED


def error_kind(exc: BaseException) -> str:
    """The error's type name (for an error from a worker process, its own type's)."""
    return exc.type_name if isinstance(exc, RemoteError) else type(exc).__name__


def retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``policy`` retries ``exc``: never an unreadable payload or a result
    that is not JSON; with ``retry_on`` set, only those types (matched by name for an
    error raised in a worker process)."""
    if isinstance(exc, RemoteError):
        if exc.not_serializable:
            return False
        return not policy.retry_on or any(
            f"{c.__module__}.{c.__qualname__}" in exc.mro for c in policy.retry_on
        )
    if isinstance(exc, PayloadDecodeError | ResultNotSerializable):
        return False
    return policy.should_retry(exc)


def decide(
    exc: BaseException,
    attempt: int,
    max_retries: int,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Retry or fail after attempt number ``attempt`` (1 = the first) ended in ``exc``."""
    kind = error_kind(exc)
    max_attempts = max_retries + 1
    if not retryable(exc, policy):
        return RetryDecision(TaskState.FAILED, 0.0, f"{kind}; not retryable", kind)
    if attempt >= max_attempts:
        note = f"{kind}; attempt {attempt}/{max_attempts}"
        return RetryDecision(TaskState.FAILED, 0.0, note, kind)
    delay = policy.delay(attempt, rng)
    state = TaskState.SCHEDULED if delay > 0 else TaskState.QUEUED
    note = f"{kind}; retry {attempt}/{max_retries} in {delay:.2f} s"
    return RetryDecision(state, delay, note, kind)
