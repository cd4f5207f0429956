"""The rule for a worker count, shared by ``Engine(workers=…)``, ``set_workers`` and
every client that asks an operator for a count (the console's dialog)."""

from __future__ import annotations


def workers_rule(limit: int) -> str:
    """What a worker count may be: ``a whole number from 0 to 256 (max_workers)`` (0: the
    engine only enqueues)."""
    return f"a whole number from 0 to {limit} (max_workers)"


def check_workers(n: object, limit: int) -> int:
    """``n`` as a worker count from 0 to ``limit``; a TypeError (not an int) or a
    ValueError (out of range) says what is allowed (and what 0 means, for the API)."""
    rule = f"a whole number from 0 (produce only) to {limit} (max_workers)"
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"workers must be {rule}; got {type(n).__name__} {n!r}")
    if not 0 <= n <= limit:
        raise ValueError(f"workers must be {rule}; got {n}")
    return n


def parse_workers(text: str, limit: int) -> int:
    """A worker count typed by an operator: ``"-3"`` is refused as -3 (never read as 3),
    ``"3.5"`` and ``"x"`` as not whole numbers, with :func:`workers_rule`."""
    try:
        n = int(text.strip())
    except ValueError:
        raise ValueError(f"workers must be {workers_rule(limit)}; got {text.strip()!r}") from None
    if not 0 <= n <= limit:
        raise ValueError(f"workers must be {workers_rule(limit)}; got {n}")
    return n
