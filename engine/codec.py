"""JSON codec for payloads, results and errors, with Fernet encryption at rest.

Payloads are JSON only (never pickle). Values are checked before encoding so that
an error names the exact path of the offending value (``$.items[2]``). With one or
more keys, encoded text is a Fernet token (MultiFernet: encrypt with the first key,
decrypt with any), which lets a store rotate keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from engine.errors import EncryptionKeyError, PayloadDecodeError

#: Deeper nesting than this is refused with a clear error (not a RecursionError).
MAX_DEPTH = 200

#: Every Fernet token starts with this (version byte 0x80, base64url); JSON never does.
_TOKEN_PREFIX = "gAAAAA"

_ENCODE = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


def generate_key() -> str:
    """A new random Fernet key (32 url-safe base64-encoded bytes), as text."""
    return Fernet.generate_key().decode("ascii")


def _path_key(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def find_json_problem(value: Any, what: str = "value") -> str | None:
    """Return a message naming the first part of ``value`` JSON cannot hold exactly.

    Allowed: dict with str keys, list, tuple (becomes a list), str, int, finite
    float, bool, None. Returns None when everything is fine.
    """
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return (
                f"{what} is nested deeper than {MAX_DEPTH} levels at {path[:120]}… "
                "(a circular reference?)"
            )
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if math.isnan(item) or math.isinf(item):
                return f"{what} has {item!r} at {path}; JSON allows only finite numbers"
            continue
        if kind is dict:
            for key, sub in item.items():
                if type(key) is not str:
                    return (
                        f"{what} has a non-string key {key!r} ({type(key).__name__}) at {path}; "
                        "JSON object keys must be strings"
                    )
                stack.append((sub, _path_key(path, key), depth + 1))
            continue
        if kind is list or kind is tuple:
            for index, sub in enumerate(item):
                stack.append((sub, f"{path}[{index}]", depth + 1))
            continue
        if isinstance(item, str | int | float | dict | list | tuple):
            # Subclasses (e.g. enums, NamedTuples) would not round-trip exactly.
            return (
                f"{what} has a {type(item).__name__} at {path}; use plain "
                "str, int, float, bool, None, list or dict"
            )
        return (
            f"{what} is not JSON-serialisable at {path}: {type(item).__name__} "
            "(allowed: str, int, float, bool, None, list, dict)"
        )
    return None


def to_json(value: Any, what: str = "value") -> str:
    """Encode ``value`` as compact JSON, or raise ``ValueError`` naming the path."""
    problem = find_json_problem(value, what)
    if problem is not None:
        raise ValueError(problem)
    return _ENCODE(value)


def _load_keys(keys: Sequence[str | bytes]) -> MultiFernet:
    fernets = []
    for index, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
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

    @property
    def encrypted(self) -> bool:
        return self._fernet is not None

    # -- text ---------------------------------------------------------------
    def seal(self, text: str) -> str:
        """Encrypt ``text`` when a key is set; otherwise return it unchanged."""
        if self._fernet is None:
            return text
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

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
