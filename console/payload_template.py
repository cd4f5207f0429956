"""The enqueue form's starting payload: one example value of the right type per
parameter, never ``null`` (a null for a ``str`` parameter is refused, or fails the task
for good), so the operator edits values rather than discovering the types."""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from engine import Handler

#: The example for a plain annotation (a subclass counts: an IntEnum is an int).
EXAMPLES: tuple[tuple[type, Any], ...] = (
    (bool, False),  # before int: a bool is an int
    (str, ""),
    (int, 0),
    (float, 0.0),
    (Mapping, {}),
    (list, []),
    (tuple, []),
    (set, []),
)
MISSING = object()


def example(annotation: Any) -> Any:
    """A JSON value that fits ``annotation``: ``""`` for str, ``0`` for int, ``[]`` for a
    list, the first choice of a Literal, the first non-None member of a union (an
    Optional included); ``""`` when the annotation says nothing JSON can follow."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return example(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return choices[0] if choices and choices[0] is not None else ""
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return example(members[0]) if members else ""
    plain = origin or annotation
    if isinstance(plain, type):
        for kind, value in EXAMPLES:
            if issubclass(plain, kind):
                return value
        if issubclass(plain, Sequence) and not issubclass(plain, str | bytes):
            return []
    return ""


def annotations_of(handler: Handler) -> dict[str, Any]:
    """The handler's resolved annotations (``from __future__ import annotations`` too);
    none when they cannot be resolved (a name that is not importable)."""
    try:
        return typing.get_type_hints(handler.fn, include_extras=True)
    except Exception:  # any error evaluating a string annotation: no examples from it
        return {}


def template(handler: Handler) -> dict[str, Any]:
    """Every parameter the payload names: a required one with an example of its type,
    one with a default that JSON can carry with that default; one that defaults to
    ``None`` is left out (the handler does without it)."""
    hints = annotations_of(handler)
    params = inspect.signature(handler.fn).parameters
    out: dict[str, Any] = {}
    for name in handler.params:
        param = params.get(name)
        default = MISSING if param is None else param.default
        if default is inspect.Parameter.empty or default is MISSING:
            out[name] = example(hints.get(name, param.annotation if param else Any))
        elif default is not None and _is_json(default):
            out[name] = default
    return out


def template_text(handler: Handler) -> str:
    return json.dumps(template(handler), indent=2, ensure_ascii=False)


def _is_json(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True
