"""Reading ``taskdeck.toml``: its tables, and where each key is, for the messages.

:func:`read_file` checks the whole file and reports every bad entry, each with the
file, its line and what is allowed (``taskdeck.toml:7: [engine] lease_tll: unknown
setting; did you mean 'lease_ttl' or …?``). ``tomllib`` says where a syntax error is; for
the others the key's line is found by scanning the text (:class:`KeyLines`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.alerts.config import AlertConfigError, alert_config
from engine.errors import SettingsError
from engine.settings import SPEC_BY_NAME, parse_text, suggest, validate_value

#: The top-level tables of the file; ``[alerts]`` is kept as it is, for the alerts;
#: ``[http]`` holds the HTTP endpoint's tokens (``taskdeck serve``).
TABLES = ("engine", "alerts", "http")
#: ``[http]`` keys: the bearer tokens of each scope (a write token may read too).
HTTP_KEYS = ("read_tokens", "write_tokens")
#: The shortest token taken: a short one can be guessed.
MIN_TOKEN_LENGTH = 16
#: ``[engine]`` keys that are not settings.
ENGINE_KEYS = ("store",)

_PART = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""  # a bare or quoted key
_HEADER = re.compile(rf"^\s*\[\s*({_PART}(?:\s*\.\s*{_PART})*)\s*\]\s*(?:#.*)?$")
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_PART}(?:\s*\.\s*{_PART})*)\s*\]\]")
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")
_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
#: Where an ``[alerts]`` problem is: its dotted key, a rule's name, or an objective's queue.
_ALERT_KEY = re.compile(r"^alerts\.([A-Za-z0-9_.-]+)")
_ALERT_RULE = re.compile(r"^alert rule '(slo:)?([^']*)'")
_ALERT_SLO = re.compile(r"^latency objective for queue '([^']*)'")


def _parts(dotted: str) -> list[str]:
    """``engine."lease_ttl"`` → ``["engine", "lease_ttl"]``."""
    return [p.strip("\"'") for p in re.findall(_PART, dotted)]


class KeyLines:
    """Where each table and key of a TOML text is (1-based lines)."""

    def __init__(self, text: str) -> None:
        self.count = len(text.splitlines()) or 1
        self._lines: dict[tuple[str, ...], int] = {}
        table: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            header = _HEADER.match(line) or _ARRAY_HEADER.match(line)
            if header:
                table = _parts(header.group(1))
                self._lines.setdefault(tuple(table), number)
                continue
            key = _KEY.match(line)
            if key:
                self._lines.setdefault((*table, *_parts(key.group(1))), number)

    def of(self, *path: str) -> int | None:
        """The line of ``path`` (a table, or a table and key); else the first line
        under it (a dotted key, a sub-table); None when it cannot be found."""
        if path in self._lines:
            return self._lines[path]
        under = [n for p, n in self._lines.items() if p[: len(path)] == path]
        return min(under) if under else None


@dataclass
class FileContent:
    """What a valid file holds: ``[engine]`` settings (checked values), its ``store``,
    the raw ``[alerts]`` table and the ``[http]`` tokens by key."""

    settings: dict[str, Any] = field(default_factory=dict)
    store: str | None = None
    alerts: dict[str, Any] = field(default_factory=dict)
    http: dict[str, tuple[str, ...]] = field(default_factory=dict)


def check_http_tokens(value: object) -> tuple[str, ...]:
    """Bearer tokens as a list of texts (``[http] read_tokens``, or the comma-separated
    ``TASKDECK_HTTP_READ_TOKENS``): each at least :data:`MIN_TOKEN_LENGTH` printable
    ASCII characters without spaces or commas; ``ValueError`` says which is not."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError(f'must be a list of tokens, e.g. ["…"]; got {type(value).__name__}')
    tokens = []
    for number, token in enumerate(value, 1):
        if not isinstance(token, str):
            raise ValueError(f"token {number} must be text; got {type(token).__name__}")
        bad = next((c for c in token if not (c.isascii() and c.isprintable()) or c in " ,"), None)
        if bad is not None or len(token) < MIN_TOKEN_LENGTH:
            why = f"holds {bad!r}" if bad is not None else f"has {len(token)} characters"
            raise ValueError(
                f"token {number} {why}; a token is at least {MIN_TOKEN_LENGTH} printable "
                "ASCII characters without spaces or commas (e.g. from: openssl rand -hex 24)"
            )
        tokens.append(token)
    return tuple(tokens)


class FileCheck:
    """Reads one file, collecting a message per bad entry (see :func:`read_file`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: dict[str, str] = {}
        self.lines = KeyLines("")

    def where(self, *path: str) -> str:
        line = self.lines.of(*path)
        return f"{self.path}:{line}" if line is not None else str(self.path)

    def bad(self, path: tuple[str, ...], text: str) -> None:
        table, *key = path
        place = f"{self.where(*path)}: [{table}]" + (f" {'.'.join(key)}" if key else "")
        self.problems[place] = text

    def read(self) -> FileContent:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            self.problems[str(self.path)] = f"cannot read the configuration file: {exc.strerror}"
            return FileContent()
        except UnicodeDecodeError as exc:
            self.problems[str(self.path)] = (
                f"not UTF-8 text (a bad byte at offset {exc.start}); a TOML file is UTF-8"
            )
            return FileContent()
        self.lines = KeyLines(text)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self._syntax(str(exc))
            return FileContent()
        return self._content(data)

    def _syntax(self, message: str) -> None:
        at = _AT.search(message)
        line = self.lines.count if at is None or at.group(1) is None else int(at.group(1))
        where = "" if at is None or at.group(2) is None else f" (column {at.group(2)})"
        reason = message[: at.start()] if at else message
        self.problems[f"{self.path}:{line}"] = (
            f"not valid TOML: {reason}{where}; write each setting as name = value under "
            "[engine] (see https://toml.io)"
        )

    def _content(self, data: Mapping[str, Any]) -> FileContent:
        content = FileContent()
        allowed = ", ".join(f"[{t}]" for t in TABLES)
        for name, value in data.items():
            if name not in TABLES:
                if isinstance(value, dict):
                    close = suggest(name, TABLES).removeprefix("; ").rstrip("?")
                    hint = f" ({close}?)" if close else ""
                    self.bad((name,), f"unknown table{hint}; allowed: {allowed}")
                else:
                    setting = name in SPEC_BY_NAME or name in ENGINE_KEYS
                    fix = (
                        "a setting outside any table: put it under [engine]"
                        if setting
                        else "a key outside any table"
                    )
                    self.problems[f"{self.where(name)}: {name}"] = (
                        f"{fix}; allowed at the top: {allowed}"
                    )
            elif not isinstance(value, dict):
                self.bad((name,), f"must be a table ([{name}] on a line of its own)")
            elif name == "alerts":
                self._alerts(value)
                content.alerts = dict(value)
            elif name == "http":
                self._http(value, content)
            else:
                self._engine(value, content)
        return content

    def _alerts(self, table: Mapping[str, Any]) -> None:
        """Check the ``[alerts]`` table: each problem at the line of the key it is about
        (a rule's, a channel's, …), else at the table's."""
        try:
            alert_config(table)
        except AlertConfigError as exc:
            for problem in exc.problems:
                path = alert_path(problem)
                while len(path) > 1 and self.lines.of(*path) is None:
                    path = path[:-1]
                place = f"{self.where(*path)}: [alerts]"
                self.problems[place] = "; ".join(filter(None, (self.problems.get(place), problem)))

    def _http(self, table: Mapping[str, Any], content: FileContent) -> None:
        for name, value in table.items():
            if name not in HTTP_KEYS:
                close = suggest(name, list(HTTP_KEYS))
                self.bad(
                    ("http", name), f"unknown key{close or '; allowed: ' + ', '.join(HTTP_KEYS)}"
                )
                continue
            try:
                content.http[name] = check_http_tokens(value)
            except ValueError as exc:
                self.bad(("http", name), str(exc))

    def _engine(self, table: Mapping[str, Any], content: FileContent) -> None:
        for name, value in table.items():
            path = ("engine", name)
            if name == "store":
                if isinstance(value, str) and value.strip():
                    content.store = value
                else:
                    shown = repr(value) if isinstance(value, str) else type(value).__name__
                    self.bad(path, f"must be a store URL or path as text, e.g. "
                                   f"\"postgresql://host/db\"; got {shown}")  # fmt: skip
                continue
            spec = SPEC_BY_NAME.get(name)
            if spec is None:
                close = suggest(name, [*ENGINE_KEYS, *SPEC_BY_NAME])
                allowed = "; allowed: " + ", ".join([*ENGINE_KEYS, *SPEC_BY_NAME])
                self.bad(path, f"unknown setting{close or allowed}")
                continue
            try:
                if isinstance(value, str) and spec.kind is not str and spec.limit is None:
                    value = parse_text(spec, value)  # "30" as the environment gives it
                content.settings[name] = validate_value(spec, value)
            except SettingsError as exc:
                self.bad(path, exc.errors[name])


def alert_path(problem: str) -> tuple[str, ...]:
    """The key path an ``[alerts]`` problem is about (``("alerts", "rules", "images")``)."""
    if rule := _ALERT_RULE.match(problem):
        return ("alerts", "slo" if rule.group(1) else "rules", rule.group(2))
    if slo := _ALERT_SLO.match(problem):
        return ("alerts", "slo", slo.group(1))
    if key := _ALERT_KEY.match(problem):
        return ("alerts", *filter(None, key.group(1).split(".")))
    return ("alerts",)


def read_file(path: Path) -> tuple[FileContent, dict[str, str], KeyLines]:
    """The file's content, a message per bad entry (place: text; empty when the file
    is fine) and where its keys are."""
    check = FileCheck(path)
    content = check.read()
    return content, check.problems, check.lines
