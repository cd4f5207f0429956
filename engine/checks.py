"""Checks for what callers name: queues, handlers, schedules, nodes, ids, durations.

Each returns the value (normalised) or raises ``ValueError``/``TypeError``/
``LookupError`` with the rule, so every caller (the API, the CLI, the console) says
the same thing.
"""

from __future__ import annotations

import math
import re

from engine.errors import TaskNotFound

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
MAX_QUEUE_NAME = 64
MAX_HANDLER_NAME = 128


def _check_name(kind: str, value: object, limit: int) -> str:
    rule = (
        f"1–{limit} characters: letters, digits, '_', '-', '.', ':', "
        "starting with a letter or digit"
    )
    if not isinstance(value, str):
        raise TypeError(f"{kind} name must be a string ({rule}); got {type(value).__name__}")
    if not value or len(value) > limit or not _NAME_RE.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValueError(f"{kind} name {shown!r} is not allowed: use {rule}")
    return value


def check_queue_name(value: object) -> str:
    """Return ``value`` if it is a valid queue name, else raise with the rule."""
    return _check_name("queue", value, MAX_QUEUE_NAME)


def check_handler_name(value: object) -> str:
    """Return ``value`` if it is a valid handler name, else raise with the rule."""
    return _check_name("handler", value, MAX_HANDLER_NAME)


def check_schedule_name(value: object) -> str:
    """Schedule names follow the handler-name rule (a schedule is named after its
    handler by default); the error says "schedule"."""
    return _check_name("schedule", value, MAX_HANDLER_NAME)


def check_node_id(value: object) -> str:
    """Node ids follow the handler-name rule too; the error says "node"."""
    return _check_name("node", value, MAX_HANDLER_NAME)


#: The largest id a store can hold (a signed 64-bit integer in SQLite and PostgreSQL).
MAX_ID = 2**63 - 1


def parse_task_id(value: object, kind: str = "task") -> int:
    """Ids (of tasks; ``kind`` names workflows, commands …) are decimal strings
    (``"42"``); ints are accepted too. Anything else raises ``LookupError``
    (:class:`TaskNotFound` for tasks) with the rule; a well-formed id too large for
    any store (2**63 or more) is simply not there: the same error as a missing one."""
    number = storable_id(value, kind)
    if number is None:
        text = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
        raise (TaskNotFound if kind == "task" else LookupError)(f"no {kind} with id '{text}'")
    return number


def storable_id(value: object, kind: str = "task") -> int | None:
    """Like :func:`parse_task_id`, but None for a well-formed id too large for any store
    (for calls where a missing id is an answer, not an error)."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        digits = value.lstrip("0")  # "0042" is 42; "0" … "000" are no id
        number = int(digits or "0") if len(digits) <= 20 else MAX_ID + 1
    if number is not None and number > MAX_ID:
        return None
    if number is not None and number > 0:
        return number
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise (TaskNotFound if kind == "task" else LookupError)(
        f"no {kind} with id {shown}: {kind} ids are positive integers such as '42'"
    )


def check_seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    """Validate a duration in seconds: a finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds; got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{name} must be a finite number of seconds; got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise ValueError(f"{name} must be {bound} seconds; got {value!r}")
    return number
