"""The options every command shares, and checked values for the numeric flags.

Global options (``--store``, ``--config``, ``--set``, ``--workers``, ``--app``,
``--key-file``, ``--log-level``, ``--json``) mean the same before or after the command:
``taskdeck --store x.db status`` is ``taskdeck status --store x.db``. Given in both places
with different values, or before a command they do not apply to, they are refused, never
dropped (``--set`` may be given many times, in both places).

Numeric flags are checked when the command line is read, with the messages settings
use (``--interval must be a number from 0.1 to 3600 s; got '0'``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from console.cli.errors import UserError
from engine import (
    PayloadError,
    QueryError,
    SettingsError,
    SettingSpec,
    check_note,
    parse_payload,
    parse_priority,
    parse_query,
    parse_text,
    validate_value,
)

BEFORE = "before_"


@dataclass(frozen=True)
class GlobalOption:
    flag: str
    dest: str
    help: str
    metavar: str | None = None
    kind: Callable[[str], Any] | None = None
    choices: tuple[str, ...] = ()
    switch: bool = False  # a flag with no value (``--json``)
    many: bool = False  # may be given many times (``--set``): a list

    def add(self, parser: argparse.ArgumentParser, prefix: str = "") -> None:
        if self.switch:
            parser.add_argument(self.flag, dest=prefix + self.dest, action="store_true",
                                help=self.help)  # fmt: skip
            return
        extra: dict[str, Any] = {"choices": self.choices} if self.choices else {}
        if self.many:
            extra["action"] = "append"
        if self.kind is not None:
            extra["type"] = self.kind
        parser.add_argument(
            self.flag, dest=prefix + self.dest, metavar=self.metavar, help=self.help, **extra
        )


def number_flag(flag: str, kind: type, low: float, high: float, unit: str) -> Callable[[str], Any]:
    """An argparse ``type`` that reads a number and checks it like a setting."""
    spec = SettingSpec(flag, kind, low, unit, "", low, high)

    def parse(text: str) -> Any:
        try:
            value = parse_text(spec, text)
        except SettingsError as exc:  # not a number at all
            raise argparse.ArgumentTypeError(exc.errors[flag]) from None
        try:
            return validate_value(spec, value)
        except SettingsError as exc:  # the setting's message, with the value as typed
            rule = exc.errors[flag].rsplit("; got ", 1)[0]
            raise argparse.ArgumentTypeError(f"{rule}; got {text.strip()}") from None

    parse.__name__ = flag.lstrip("-")  # argparse names the type in some messages
    return parse


def where_flag(text: str) -> str:
    """``--where QUERY``: read when the command line is (a malformed query says where
    and what was expected); the store, once open, refuses searching sealed text."""
    try:
        parse_query(text, time.time())
    except QueryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_where(parser: argparse.ArgumentParser, what: str = "tasks") -> None:
    """The ``--where QUERY`` option, for any command that picks tasks."""
    parser.add_argument(
        "--where",
        type=where_flag,
        metavar="QUERY",
        help=f'only {what} matching a query, e.g. "state=failed error~HEIC" or '
        '"handler=images.resize priority>5" (README: Finding tasks)',
    )


def priority_flag(text: str) -> int:
    try:
        return parse_priority(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("priority ")) from None


def task_id_flag(text: str) -> str:
    """A task (or workflow) id as typed: digits. Whether it exists is the store's answer."""
    raw = text.strip()
    if raw.isascii() and raw.isdigit() and int(raw) > 0:
        return raw
    raise argparse.ArgumentTypeError(f"ids are positive whole numbers such as 42; got {text!r}")


WORKERS = number_flag("--workers", int, 0, 4096, "workers")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
GLOBALS = (
    GlobalOption("--store", "store", "store URL or path (default sqlite:///taskdeck.db)", "URL"),
    GlobalOption(
        "--config",
        "config",
        "configuration file (or TASKDECK_CONFIG; default ./taskdeck.toml)",
        "FILE",
    ),
    GlobalOption(
        "--set",
        "set",
        "a setting for this process, above the file and the environment",
        "NAME=VALUE",
        many=True,
    ),
    GlobalOption("--workers", "workers", "worker slots (default 8; console and run)", "N", WORKERS),
    GlobalOption("--app", "app", "your Engine as module:attribute (default: the demo)", "M:A"),
    GlobalOption(
        "--key-file",
        "key_file",
        "file with the encryption key(s) (or TASKDECK_KEY_FILE, TASKDECK_KEY)",
        "PATH",
    ),
    GlobalOption(
        "--log-level",
        "log_level",
        "stderr log level (default WARNING)",
        "LEVEL",
        str.upper,
        LOG_LEVELS,
    ),
    GlobalOption("--json", "json", "print JSON (commands with JSON output)", switch=True),
)
#: The options of ``screenshot``, which runs its own demo store: none of the above.
NO_STORE_COMMANDS = frozenset({"screenshot"})


def shared_parser() -> argparse.ArgumentParser:
    """The global options as a parent for each command's parser (``--json`` apart:
    only the commands with JSON output add it)."""
    common = argparse.ArgumentParser(add_help=False)
    for option in GLOBALS:
        if not option.switch:
            option.add(common)
    return common


def add_before(top: argparse.ArgumentParser) -> None:
    """The global options on the top-level parser (before the command)."""
    for option in GLOBALS:
        option.add(top, BEFORE)


def merge(args: argparse.Namespace) -> None:
    """Fold the options given before the command into the command's own: the same
    meaning in either place; a conflict or an option the command does not take is a
    :class:`UserError`."""
    for option in GLOBALS:
        before = getattr(args, BEFORE + option.dest)
        delattr(args, BEFORE + option.dest)
        given = before not in (None, False)
        if not hasattr(args, option.dest):
            if given:
                raise UserError(f"{option.flag} does not apply to taskdeck {args.command}")
            continue
        after = getattr(args, option.dest)
        if option.many:
            setattr(args, option.dest, [*(before or []), *(after or [])])
            continue
        if given and after not in (None, False) and after != before:
            raise UserError(
                f"{option.flag} was given twice with different values: {before!r} before "
                f"{args.command} and {after!r} after it; give it once"
            )
        if given:
            setattr(args, option.dest, before)
    if getattr(args, "log_level", None) is None:
        args.log_level = "WARNING"


#: The words an on/off environment variable takes (``TASKDECK_READ_ONLY=1``).
ON_WORDS = ("1", "true", "yes", "on")
OFF_WORDS = ("", "0", "false", "no", "off")
READ_ONLY_ENV = "TASKDECK_READ_ONLY"
HIDE_PAYLOADS_ENV = "TASKDECK_HIDE_PAYLOADS"


def env_switch(name: str, environ: Mapping[str, str]) -> bool:
    """An on/off environment variable: unset or one of :data:`OFF_WORDS` is off, one of
    :data:`ON_WORDS` on (any case); anything else is a :class:`UserError` naming them."""
    text = environ.get(name, "").strip().lower()
    if text in ON_WORDS:
        return True
    if text in OFF_WORDS:
        return False
    raise UserError(
        f"{name} must be one of {', '.join(ON_WORDS)} (on) or {', '.join(OFF_WORDS[1:])} "
        f"(off); got {environ[name]!r}"
    )


def note_flag(text: str) -> str | None:
    """``--note TEXT``: one line of at most 500 characters (kept in the audit trail)."""
    try:
        return check_note(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


NOTE_HELP = "why: kept with the action in the audit trail (taskdeck audit)"


def add_note(parser: argparse.ArgumentParser, help: str = NOTE_HELP) -> None:
    """The ``--note TEXT`` every command that changes something takes."""
    parser.add_argument("--note", type=note_flag, metavar="TEXT", help=help)


PAYLOAD_HELP = "JSON object, @file with one, or - for standard input"


def read_payload_arg(text: str) -> dict[str, Any]:
    """``--payload`` (of ``enqueue`` and ``edit``): JSON text, ``@file`` or ``-``
    (standard input), so a payload is not capped by the length of a command line."""
    try:
        if text == "-":
            return parse_payload(sys.stdin.buffer.read(), "--payload (standard input)")
        if text.startswith("@"):
            path = text[1:]
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError as exc:
                raise UserError(f"--payload {text}: cannot read {path}: {exc.strerror}") from None
            return parse_payload(raw, f"--payload {text}")
        return parse_payload(os.fsencode(text), "--payload")
    except PayloadError as exc:
        raise UserError(str(exc)) from None
