"""JSON codec for payloads, results and errors, with Fernet encryption at rest.

Payloads are JSON only (never pickle). Values are checked before encoding so that
an error names the exact path of the offending value (``$.items[2]``). With one or
more keys, encoded text is a Fernet token (MultiFernet: encrypt with the first key,
decrypt with any), which lets a store rotate keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from engine.errors import EncryptionKeyError, PayloadDecodeError, PayloadError
from engine.model import TaskId

#: Payloads and results may nest objects and arrays at most this many levels deep
#: (``{"a": [1]}`` is 2); deeper is refused with a clear error, never a RecursionError.
MAX_JSON_DEPTH = 200

#: A lone surrogate (U+D800–U+DFFF) is not Unicode text: UTF-8 cannot hold it. It is
#: what Python makes of bytes that are not UTF-8 (``surrogateescape``, e.g. in argv).
_SURROGATE = re.compile("[\ud800-\udfff]")

#: Python converts at most this many digits between int and text
#: (sys.get_int_max_str_digits' default); longer integers are refused, with the path.
MAX_INT_DIGITS = 4300
_SAFE_INT_BITS = int(MAX_INT_DIGITS * 3.3219280948873626)  # log2(10) bits a digit: fewer fit
_TOO_LONG = 10**MAX_INT_DIGITS

#: Every Fernet token starts with this (version byte 0x80, base64url); JSON never does.
_TOKEN_PREFIX = "gAAAAA"

_ENCODE = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


_JSON_NAMES: dict[type, str] = {
    str: "a string",
    int: "a number",
    float: "a number",
    dict: "an object",
    list: "an array",
    tuple: "an array",
}


def json_name(value: object) -> str:
    """What ``value`` is called in JSON: ``null``, ``true``, ``a number``, ``an object`` …"""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    for kind, name in _JSON_NAMES.items():
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__} (not JSON)"


def generate_key() -> str:
    """A new random Fernet key (32 url-safe base64-encoded bytes), as text."""
    return Fernet.generate_key().decode("ascii")


def _path_key(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def find_surrogate(text: str) -> int | None:
    """Where the first lone surrogate in ``text`` is (None: valid Unicode text)."""
    found = None if text.isascii() else _SURROGATE.search(text)
    return None if found is None else found.start()


def _surrogate_problem(text: str, what: str, where: str) -> str | None:
    at = find_surrogate(text)
    if at is None:
        return None
    return (
        f"{what} has the lone surrogate U+{ord(text[at]):04X} {where}: strings must be "
        "valid Unicode (was it decoded from bytes that are not UTF-8?)"
    )


#: Where a value sits in a payload, built only when a problem must be named: a chain
#: of (parent, key or index) pairs, None at the top (``$``).
_Where = tuple[Any, "str | int"] | None


def _path(where: _Where) -> str:
    steps: list[str | int] = []
    while where is not None:
        where, step = where
        steps.append(step)
    path = "$"
    for step in reversed(steps):
        path = f"{path}[{step}]" if isinstance(step, int) else _path_key(path, step)
    return path


#: task ids as ``enqueue`` returns them (see :class:`TaskId`): strings in JSON
_IDS = (TaskId, *TaskId.__subclasses__())


def find_json_problem(value: Any, what: str = "value") -> str | None:
    """Return a message naming the first part of ``value`` JSON cannot hold exactly.

    Allowed: dict with str keys, list, tuple (becomes a list), str (valid Unicode: no
    lone surrogates), int, finite float, bool, None, nested at most
    :data:`MAX_JSON_DEPTH` levels. Returns None when everything is fine. Iterative:
    any depth (or a circular reference) gives a message, never a RecursionError. The
    path (``$.items[2]``) is spelled out only for a problem, so a good payload costs
    one look at each value.
    """
    stack: list[tuple[Any, _Where, int]] = [(value, None, 0)]
    while stack:
        item, where, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and (
                problem := _surrogate_problem(item, what, f"at {_path(where)}")
            ):
                return problem
            continue
        if kind is int and item.bit_length() > _SAFE_INT_BITS and abs(item) >= _TOO_LONG:
            return (
                f"{what} has an integer of more than {MAX_INT_DIGITS:,} digits at "
                f"{_path(where)}; Python writes and reads at most that many"
            )
        if kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if math.isnan(item) or math.isinf(item):
                return f"{what} has {item!r} at {_path(where)}; JSON allows only finite numbers"
            continue
        if (kind is dict or kind is list or kind is tuple) and depth >= MAX_JSON_DEPTH:
            path = _path(where)
            shown = path if len(path) <= 60 else path[:60] + "…"
            return (
                f"{what} is nested deeper than {MAX_JSON_DEPTH} levels at {shown}; at most "
                f"{MAX_JSON_DEPTH} levels of objects and arrays are allowed (a circular reference?)"
            )
        if kind is dict:
            for key, sub in item.items():
                if type(key) is not str:
                    return (
                        f"{what} has a non-string key {key!r} ({type(key).__name__}) at "
                        f"{_path(where)}; JSON object keys must be strings"
                    )
                if not key.isascii() and (
                    problem := _surrogate_problem(key, what, f"in the key at {_path((where, key))}")
                ):
                    return problem
                stack.append((sub, (where, key), depth + 1))
            continue
        if kind is list or kind is tuple:
            for index, sub in enumerate(item):
                stack.append((sub, (where, index), depth + 1))
            continue
        if kind in _IDS:
            continue  # a task id as enqueue returns it: its digits, a plain JSON string
        if isinstance(item, str | int | float | dict | list | tuple):
            # Subclasses (e.g. enums, NamedTuples) would not round-trip exactly.
            return (
                f"{what} has a {type(item).__name__} at {_path(where)}; use plain "
                "str, int, float, bool, None, list or dict"
            )
        return (
            f"{what} is not JSON-serialisable at {_path(where)}: {type(item).__name__} "
            "(allowed: str, int, float, bool, None, list, dict)"
        )
    return None


def to_json(value: Any, what: str = "value") -> str:
    """Encode ``value`` as compact JSON, or raise :class:`PayloadError` (a ``ValueError``)
    naming the path."""
    if value is None:  # most handlers return nothing: no walk, no encoder call
        return "null"
    problem = find_json_problem(value, what)
    if problem is not None:
        raise PayloadError(problem)
    return _ENCODE(value)


def join_json(value: Any) -> str:
    """Encode a value built from parts that were checked when they were stored (a
    workflow step's arguments plus the previous result): it may nest a level or two
    deeper than :data:`MAX_JSON_DEPTH`, which must not stop it moving on."""
    return _ENCODE(value)


#: A Fernet key as generate_key() writes it: 32 bytes in url-safe base64, padded. Checked
#: here because cryptography 51 also takes unpadded or over-long text ("A" * 43).
_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]=")


def _load_keys(keys: Sequence[str | bytes]) -> MultiFernet:
    fernets = []
    for index, key in enumerate(keys, start=1):
        try:
            text = key.decode("ascii") if isinstance(key, bytes) else key
            if not isinstance(text, str) or not _FERNET_KEY.fullmatch(text.strip()):
                raise ValueError("not 44 characters of url-safe base64")
            fernets.append(Fernet(text.strip()))
        except (ValueError, TypeError) as exc:
            raise EncryptionKeyError(
                f"encryption key #{index} is not a valid Fernet key: it must be 32 url-safe "
                "base64-encoded bytes (44 characters); create one with engine.generate_key()"
            ) from exc
    return MultiFernet(fernets)


class Codec:
    """Encode and decode stored text; encrypts when keys are given."""

    def __init__(self, keys: Sequence[str | bytes] | None = None) -> None:
        keys = [k for k in (keys or []) if k]
        self._fernet: MultiFernet | None = _load_keys(keys) if keys else None

    @classmethod
    def of(cls, encryption_key: str | bytes | None, keys: Sequence[str | bytes] | None) -> Codec:
        """For ``Engine(encryption_key=…)`` or ``Engine(keys=[new, old])`` (not both)."""
        if encryption_key is not None and keys is not None:
            raise TypeError("give encryption_key= or keys=[new, old], not both")
        return cls(keys if keys is not None else [encryption_key] if encryption_key else None)

    @property
    def encrypted(self) -> bool:
        return self._fernet is not None

    # -- text ---------------------------------------------------------------
    def seal(self, text: str) -> str:
        """Encrypt ``text`` when a key is set; otherwise return it unchanged."""
        if self._fernet is None:
            return text
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    @staticmethod
    def is_sealed(stored: str) -> bool:
        """Whether ``stored`` is a Fernet token (text written with a key)."""
        return stored.startswith(_TOKEN_PREFIX)

    def unseal(self, stored: str) -> str:
        """Reverse :meth:`seal`; plaintext rows (written before a key was set) pass."""
        if not stored.startswith(_TOKEN_PREFIX):
            return stored
        if self._fernet is None:
            raise EncryptionKeyError(
                "this value is encrypted; start the engine with encryption_key= (or keys=)"
            )
        try:
            return self._fernet.decrypt(stored.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise EncryptionKeyError("no key given can decrypt this value") from exc

    # -- JSON ---------------------------------------------------------------
    def encode(self, value: Any, what: str = "payload") -> str:
        """Validate, encode and (maybe) encrypt ``value``; returns stored text."""
        return self.seal(to_json(value, what))

    def decode(self, stored: str | None) -> Any:
        """Decode stored text back into a value (None stays None)."""
        if stored is None:
            return None
        try:
            return json.loads(self.unseal(stored))
        except EncryptionKeyError as exc:
            raise PayloadDecodeError(f"cannot decrypt stored data: {exc}") from exc
        except ValueError as exc:
            raise PayloadDecodeError(f"stored data is not valid JSON: {exc}") from exc

    def decode_text(self, stored: str | None) -> str | None:
        if stored is None:
            return None
        return self.unseal(stored)

    # -- key check -----------------------------------------------------------
    def key_check_token(self) -> str | None:
        """A token the store keeps to tell at start whether the keys are right."""
        if self._fernet is None:
            return None
        return self.seal("taskdeck-key-check")

    def keys_match(self, token: str) -> bool:
        if self._fernet is None:
            return False
        try:
            return self.unseal(token) == "taskdeck-key-check"
        except EncryptionKeyError:
            return False
