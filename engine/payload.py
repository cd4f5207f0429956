"""Payloads given as JSON text (the CLI, the console's form): one parser, clear errors.

:func:`parse_payload` turns text or bytes into the dict ``enqueue`` takes, or raises
:class:`~engine.errors.PayloadError` with one line saying what is wrong and where:
bytes that are not UTF-8 (with the byte offset), text that is not JSON (line and
column), nesting deeper than :data:`~engine.codec.MAX_JSON_DEPTH` (counted before
parsing, so it is never a RecursionError), a lone surrogate or a non-finite number
(with the JSON path), or a value that is not a JSON object.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from engine.codec import MAX_INT_DIGITS, MAX_JSON_DEPTH, find_json_problem, json_name
from engine.errors import PayloadError

#: A JSON string (escapes included; an unclosed one runs to the end, so the scan stays
#: linear) or one bracket: what the depth scan looks at.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')


def parse_payload(text: str | bytes, what: str = "the payload") -> dict[str, Any]:
    """The JSON object in ``text`` as a dict; blank text means no arguments (``{}``).

    Raises :class:`PayloadError` (a ``ValueError``) with one line naming the problem:
    not UTF-8 (``byte 17 (0xff)``), not JSON (line and column), nested deeper than
    :data:`MAX_JSON_DEPTH`, a lone surrogate or NaN/Infinity (the JSON path), or not
    a JSON object. ``what`` starts each message (e.g. ``"--payload"``).
    """
    if isinstance(text, bytes | bytearray):
        text = _decode(bytes(text), what)
    elif isinstance(text, str):
        _check_unicode(text, what)
    else:
        raise TypeError(f"{what} must be JSON text (str or bytes); got {type(text).__name__}")
    if not text.strip():
        return {}
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise PayloadError(
            f"{what} is nested {depth:,} levels deep; at most {MAX_JSON_DEPTH} are allowed"
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"{what} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # NaN, Infinity, an integer too long to convert
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    if type(value) is not dict:
        raise PayloadError(
            f'{what} must be a JSON object ({{"name": value, …}}); got {json_name(value)}'
        )
    problem = find_json_problem(value, what)
    if problem is not None:
        raise PayloadError(problem)
    return value


def json_depth(text: str) -> int:
    """How deep objects and arrays nest in JSON ``text`` (``{"a": [1]}`` is 2), counted
    without parsing (brackets inside strings do not count); 0 for a scalar."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        first = match.group()[0]
        if first == "[" or first == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif first == "]" or first == "}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; JSON allows only finite numbers")


def _parse_int(digits: str) -> int:
    count = len(digits.lstrip("-"))
    if count > MAX_INT_DIGITS:
        raise ValueError(f"a number has {count:,} digits; at most {MAX_INT_DIGITS:,} are allowed")
    return int(digits)


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(_not_utf8(what, exc)) from None


_REASONS = {
    "invalid start byte": "cannot start a character",
    "invalid continuation byte": "starts a character the bytes after it do not complete",
    "unexpected end of data": "starts a character the text ends inside",
}


def _not_utf8(what: str, exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start]
    reason = _REASONS.get(exc.reason, exc.reason)
    return (
        f"{what} is not valid UTF-8: byte {exc.start:,} (0x{byte:02x}) {reason} "
        "(bytes counted from 0); give the text as UTF-8"
    )


def _check_unicode(text: str, what: str) -> None:
    """Refuse text holding lone surrogates. That is how Python decodes command-line
    bytes that are not UTF-8 (``surrogateescape``): name the first such byte."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
        return
    except UnicodeEncodeError as exc:
        at = exc.start
    try:
        os.fsencode(text).decode("utf-8")
    except UnicodeDecodeError as exc:  # the bytes as they came, and where they go wrong
        raise PayloadError(_not_utf8(what, exc)) from None
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        pass
    raise PayloadError(
        f"{what} is not valid Unicode: a lone surrogate U+{ord(text[at]):04X} at character "
        f"{at:,} (counted from 0); give the text as UTF-8"
    )
