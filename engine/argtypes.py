"""Payload values checked against a handler's simple annotations, at enqueue.

A handler ``resize(image_id: str, width: int)`` enqueued with ``{"image_id": null}``
would fail for good when it runs; this refuses it before anything is written:
``images.resize: field "image_id" must be str; got null``. Checked annotations: str,
int, float (an int is fine), bool (an int is not, and a bool is not an int), list,
dict, ``list[X]`` and ``dict[str, X]`` (their items too), ``X | None`` /
``Optional[X]``, unions of these, ``Annotated[X, …]``. Anything else, ``Any``, no
annotation, or one that cannot be resolved (a string annotation naming a type that is
not importable) accepts any value. A parameter whose default is None accepts null.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.codec import json_name
from engine.model import TaskId

_NONE = type(None)


@dataclass(frozen=True, slots=True)
class Expect:
    """What one parameter accepts: one or more simple kinds, maybe null, and for
    ``list[X]`` / ``dict[str, X]`` what its items must be."""

    text: str
    kinds: tuple[type, ...]
    nullable: bool = False
    items: Expect | None = None
    container: type | None = None  # list or dict: where ``items`` applies

    def mismatch(self, value: object, field: str, path: str = "") -> str | None:
        """None if ``value`` fits; else what it is: ``null``, or ``a string at sizes[2]``
        for an item (``path`` is where it sits below ``field``)."""
        if value is None:
            return None if self.nullable else _at("null", field, path)
        kind = list if type(value) is tuple else type(value)
        if (
            kind not in self.kinds
            and not (kind is int and float in self.kinds)
            and not (kind in _IDS and str in self.kinds)
        ):
            name = "a decimal number" if kind is float else json_name(value)
            return _at(name, field, path)
        if self.items is None or kind is not self.container:
            return None
        entries: Iterable[tuple[object, object]] = (
            enumerate(value)
            if isinstance(value, list | tuple)
            else ((json.dumps(k), v) for k, v in typing.cast(dict[str, Any], value).items())
        )
        for key, item in entries:
            found = self.items.mismatch(item, field, f"{path}[{key}]")
            if found is not None:
                return found
        return None


#: task ids as ``enqueue`` returns them are strings (see :class:`TaskId`)
_IDS = (TaskId, *TaskId.__subclasses__())


def _at(found: str, field: str, path: str) -> str:
    return f"{found} at {field}{path}" if path else found


_SIMPLE: dict[Any, tuple[str, type]] = {
    str: ("str", str),
    int: ("int", int),
    float: ("float", float),
    bool: ("bool", bool),
    list: ("list", list),
    dict: ("dict", dict),
    typing.List: ("list", list),  # noqa: UP006
    typing.Dict: ("dict", dict),  # noqa: UP006
}


def expect(annotation: Any) -> Expect | None:
    """The :class:`Expect` for an annotation, or None (it accepts anything)."""
    if annotation is None or annotation is _NONE:
        return Expect("None", (), nullable=True)
    try:
        simple = _SIMPLE.get(annotation)
    except TypeError:  # not hashable: not a simple type
        return None
    if simple is not None:
        return Expect(simple[0], (simple[1],))
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return expect(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return _union(args)
    if origin is list and len(args) == 1:
        items = expect(args[0])
        text = f"list[{items.text}]" if items else "list"
        return Expect(text, (list,), items=items, container=list)
    if origin is dict and len(args) == 2 and args[0] is str:
        items = expect(args[1])
        text = f"dict[str, {items.text}]" if items else "dict"
        return Expect(text, (dict,), items=items, container=dict)
    return None


def _union(members: tuple[Any, ...]) -> Expect | None:
    checked = []
    for member in members:
        part = expect(member)
        if part is None:
            return None  # one member accepts anything: so does the union
        checked.append(part)
    with_items = [p for p in checked if p.items is not None]
    one = with_items[0] if len(with_items) == 1 else None
    return Expect(
        " | ".join(p.text for p in checked),
        tuple(k for p in checked for k in p.kinds),
        nullable=any(p.nullable for p in checked),
        items=one.items if one else None,
        container=one.container if one else None,
    )


def _with_null(found: Expect) -> Expect:
    return Expect(f"{found.text} | None", found.kinds, True, found.items, found.container)


def field_types(fn: Callable[..., Any]) -> Mapping[str, Expect]:
    """The checked parameters of ``fn`` by name (string annotations resolved in the
    function's module); parameters that accept anything are left out."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    hints = _hints(fn, {p.name: p.annotation for p in parameters.values()})
    out: dict[str, Expect] = {}
    for p in parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name not in hints:
            continue
        found = expect(hints[p.name])
        if found is None:
            continue
        out[p.name] = _with_null(found) if p.default is None and not found.nullable else found
    return out


def _hints(fn: Callable[..., Any], annotations: dict[str, Any]) -> dict[str, Any]:
    """Resolved annotations; one that cannot be resolved is left out (not checked)."""
    present = {k: v for k, v in annotations.items() if v is not inspect.Parameter.empty}
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # one unresolvable name: resolve the others one by one
        pass
    target = inspect.unwrap(fn)
    namespace = getattr(target, "__globals__", {})
    out = {}
    for name, annotation in present.items():
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            out.update(typing.get_type_hints(holder, namespace, include_extras=True))
        except Exception:
            continue
    return out


def type_problems(name: str, fields: Mapping[str, Expect], payload: Mapping[str, Any]) -> str:
    """Every field of ``payload`` whose value does not fit, as one message ("" if none)."""
    problems = []
    for field, value in payload.items():
        wanted = fields.get(field)
        if wanted is None:
            continue
        found = wanted.mismatch(value, field)
        if found is not None:
            problems.append(f'field "{field}" must be {wanted.text}; got {found}')
    return f"{name}: " + "; ".join(problems) if problems else ""
