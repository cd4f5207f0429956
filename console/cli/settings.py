"""``taskdeck settings``: every setting with its value and where it comes from.

    taskdeck settings [--json]                 value, source, who changed it and when
    taskdeck settings set NAME=VALUE …         change settings for every node (saved)
    taskdeck settings reset NAME …             back to the file, environment or default

The source of a value is ``default``, ``file`` (``taskdeck.toml``), ``env``
(``TASKDECK_<NAME>``), ``flag`` (``--set``) or ``runtime`` (a change saved in the
store), as this process sees them. ``set`` and ``reset`` are all or nothing (every
bad one is named and nothing changes); the change is saved in the store with who made
it and when, and every running node takes it within a second, every node started
later when it starts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import UserError
from console.cli.options import add_note
from console.format import ago
from engine import (
    ConfigError,
    Engine,
    SettingInfo,
    Settings,
    SettingsError,
    SettingSpec,
    validate_value,
)

VERBS = ("set", "reset")
SPECS = {spec.name: spec for spec in Settings.specs()}


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    settings = sub.add_parser(
        "settings",
        parents=[common],
        help="every setting: value, source, who changed it; set or reset them",
        description="taskdeck settings [--json] | settings set NAME=VALUE … | "
        "settings reset NAME …",
    )
    settings.add_argument("verb", nargs="?", choices=VERBS, help="set or reset (none: list)")
    settings.add_argument("values", nargs="*", metavar="NAME[=VALUE]", help="what to change")
    settings.add_argument("--json", action="store_true", help="print JSON")
    add_note(settings, "why (set and reset): kept in the audit trail (taskdeck audit)")
    settings.set_defaults(func=cmd_settings)


def cmd_settings(args: argparse.Namespace) -> int:
    try:
        return run_settings(args)
    except SettingsError as exc:
        if isinstance(exc, ConfigError):
            raise
        lines = [f"{name}: {text}" for name, text in exc.errors.items()]
        raise UserError("\n".join([*lines, "nothing was changed"])) from None


def run_settings(args: argparse.Namespace) -> int:
    if args.verb is None:
        if args.values:
            raise UserError(
                f"taskdeck settings lists them all; to change one: taskdeck settings set "
                f"{args.values[0]}=VALUE, or reset {args.values[0]}"
            )
        return with_store(args, Access.READ, lambda engine: list_settings(engine, args.json))
    if not args.values:
        what = "NAME=VALUE" if args.verb == "set" else "NAME"
        raise UserError(f"taskdeck settings {args.verb} takes at least one {what}")
    if args.verb == "set":
        changes = parse_changes(args.values)  # a mistake here is a usage error: no store
        return with_store(args, Access.WRITE, lambda e: set_settings(e, changes, args.json))
    names = list(dict.fromkeys(args.values))
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        Settings.from_texts(dict.fromkeys(unknown, ""))  # the message, with "did you mean"
    return with_store(args, Access.WRITE, lambda e: reset_settings(e, names, args.json))


def parse_changes(values: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` words as checked values; every bad one named (SettingsError)."""
    texts: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise UserError(f"settings set takes NAME=VALUE, e.g. result_ttl=600; got {value!r}")
        texts[name.strip()] = text
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in texts.items():
        try:
            value = Settings.parse(name, text)  # unknown names: "did you mean"
        except SettingsError as exc:
            errors[name] = exc.errors[name]
            if errors[name] == "unknown setting":
                errors[name] += "; taskdeck settings lists them"
            continue
        try:
            changes[name] = validate_value(SPECS[name], value)
        except SettingsError as exc:  # the rule, with the value as typed
            errors[name] = f"{exc.errors[name].rsplit('; got ', 1)[0]}; got {text.strip()!r}"
    if errors:
        raise SettingsError(errors)
    return changes


def shown(spec: SettingSpec, value: Any) -> str:
    """A value with its unit: ``600 s``, ``on``, ``emails=100/m``, ``none``."""
    if spec.limit is not None:
        return str(value) or "none"
    if spec.kind is bool:
        return "on" if value else "off"
    if isinstance(value, int | float):
        number = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{number} {spec.unit}".strip()
    return str(value)


def plain(value: Any) -> Any:
    """A value for JSON (a limit map as an object)."""
    return dict(value) if isinstance(value, Mapping) else value


def row(info: SettingInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "value": plain(info.value),
        "unit": SPECS[info.name].unit,
        "source": info.source,
        "default": plain(info.default),
        "reset_to": plain(info.reset_to),
        "reset_from": info.reset_from,
        "changed_by": info.changed_by,
        "changed_at": info.changed_at,
        "pid": info.pid,
        "interface": info.interface,
    }


def changed_text(info: SettingInfo, now: float) -> str:
    if info.changed_at is None:
        return ""
    return f"{info.changed_by} ({info.interface}) {ago(now - info.changed_at)} ago"


async def list_settings(engine: Engine, as_json: bool) -> int:
    infos = await engine.settings_info()
    if as_json:
        print(json.dumps({"store": engine.store_url, "settings": [row(i) for i in infos]}))
        return 0
    now = time.time()
    table = [("SETTING", "VALUE", "SOURCE", "CHANGED")]
    for info in infos:
        value = shown(SPECS[info.name], info.value)
        table.append((info.name, value, info.source, changed_text(info, now)))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    print(f"store {engine.store_url}")
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


async def set_settings(engine: Engine, changes: dict[str, Any], as_json: bool) -> int:
    before = {i.name: i for i in await engine.settings_info()}
    await engine.update_settings(**changes)  # cross-checks against what is in force
    return await report(engine, before, list(changes), as_json, "saved")


async def reset_settings(engine: Engine, names: list[str], as_json: bool) -> int:
    before = {i.name: i for i in await engine.settings_info()}
    await engine.reset_settings(*names)
    return await report(engine, before, names, as_json, "reset")


async def report(
    engine: Engine, before: dict[str, SettingInfo], names: list[str], as_json: bool, verb: str
) -> int:
    after = {i.name: i for i in await engine.settings_info()}
    if as_json:
        print(json.dumps({"store": engine.store_url, "settings": [row(after[n]) for n in names]}))
        return 0
    for name in names:
        old, new = before[name], after[name]
        spec = SPECS[name]
        was = f"was {shown(spec, old.value)}, {old.source}"
        if verb == "reset" and old.source != "runtime":
            was = "it had no runtime change"
        print(f"{name} = {shown(spec, new.value)}  ({new.source}; {was})")
    print(
        f"{verb} in the store {engine.store_url}: every node on it takes the change within a "
        "second, and every node started later"
    )
    return 0
