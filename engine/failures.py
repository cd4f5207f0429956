"""Failure groups: failed tasks grouped by handler and error fingerprint.

A task's error is kept as its traceback; its last line is the exception
(``ValueError: HEIC is not supported for 'a.heic'``). The fingerprint is the
exception type and the message *normalised*: quoted values, UUIDs, hex ids, other
ids (a word with letters and digits: ``img-00083.heic``) and numbers are replaced by
placeholders (``'…'``, ``<uuid>``, ``<hex>``, ``<id>``, ``<n>``), so
``upload 4411 failed: 'a.heic'`` and ``upload 97 failed: 'b.heic'`` are one group.

The scan is bounded: the newest ``scan`` failed tasks (10,000 by default) are read
in pages by the store's finished-tasks index, and each error is decrypted in the
engine when the store is encrypted (the store cannot group what it cannot read).
:class:`FailureGroups` says how many were scanned and whether older ones were left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_SCAN = 1_000_000
DEFAULT_SCAN = 10_000
PAGE = 500

_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_HEX = re.compile(
    r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
)
#: a word with both letters and digits (``img-00083.heic``, ``user7``, ``a1b2``): an id
_MIXED = re.compile(r"(?<![\w.\-])(?=[\w.\-]*\d)(?=[\w.\-]*[A-Za-z])\w(?:[\w.\-]*\w)?(?![\w\-])")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:[.,:]\d+)*")
_EXCEPTION = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s?(.*))?$")
MAX_MESSAGE = 300


def normalise(message: str) -> str:
    """``message`` without what differs between tasks: quoted values, UUIDs, hex ids,
    ids (words with letters and digits) and numbers become ``'…'``, ``<uuid>``,
    ``<hex>``, ``<id>`` and ``<n>``."""
    text = _QUOTED.sub("'…'", message)
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    text = _MIXED.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return " ".join(text.split())[:MAX_MESSAGE]


def last_line(error: str | None) -> str:
    """The line of an error text that names the exception (a traceback's last line)."""
    for line in reversed((error or "").splitlines()):
        if line.strip():
            return line.strip()
    return ""


def fingerprint(error: str | None) -> tuple[str, str]:
    """(exception type, normalised message) of an error text; the type is empty when
    the text names none (e.g. ``worker lost during attempt 2/3``)."""
    line = last_line(error)
    match = _EXCEPTION.match(line)
    if match is None:
        return "", normalise(line)
    return match.group(1), normalise(match.group(2) or "")


@dataclass(slots=True)
class FailureGroup:
    """Failed tasks of one handler with one error fingerprint."""

    handler: str
    error_type: str
    message: str  # normalised
    count: int
    first_seen: float  # finished_at of the oldest in the group (of those scanned)
    last_seen: float
    sample_id: str  # the newest task of the group
    sample_message: str  # its error's last line, as it is
    task_ids: list[str] = field(default_factory=list)  # newest first

    @property
    def fingerprint(self) -> str:
        """``ValueError: upload <n> failed``."""
        return f"{self.error_type}: {self.message}" if self.error_type else self.message

    def as_dict(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "error_type": self.error_type,
            "message": self.message,
            "fingerprint": self.fingerprint,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "sample_id": self.sample_id,
            "sample_message": self.sample_message,
            "task_ids": self.task_ids,
        }


class FailureGroups(list[FailureGroup]):
    """Groups, the most tasks first. ``scanned``: failed tasks read; ``complete``:
    False when older failed tasks were left unread (the scan's bound)."""

    scanned: int = 0
    complete: bool = True


def group_rows(
    rows: Iterable[tuple[str, str, str | None, float]],
) -> dict[tuple[str, str, str], FailureGroup]:
    """Groups from (id, handler, error text, finished_at) rows read newest first."""
    groups: dict[tuple[str, str, str], FailureGroup] = {}
    for task_id, handler, error, at in rows:
        kind, message = fingerprint(error)
        key = (handler, kind, message)
        group = groups.get(key)
        if group is None:
            groups[key] = FailureGroup(
                handler, kind, message, 1, at, at, task_id, last_line(error)[:MAX_MESSAGE],
                [task_id],
            )  # fmt: skip
            continue
        group.count += 1
        group.first_seen = min(group.first_seen, at)
        group.last_seen = max(group.last_seen, at)
        group.task_ids.append(task_id)
    return groups


def merge(
    into: dict[tuple[str, str, str], FailureGroup], more: dict[tuple[str, str, str], FailureGroup]
) -> None:
    """Add the groups of a later (older) page to ``into``."""
    for key, group in more.items():
        have = into.get(key)
        if have is None:
            into[key] = group
            continue
        have.count += group.count
        have.first_seen = min(have.first_seen, group.first_seen)
        have.last_seen = max(have.last_seen, group.last_seen)
        have.task_ids.extend(group.task_ids)
