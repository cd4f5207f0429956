"""What the commands share: the engine they act on and how they open its store.

Commands that only read (``status``, ``tasks``, ``show``, ``schedules``, ``workflow``,
``nodes``, ``alerts``) open the store read-only: nothing is written, nothing is created, no
scheduler or other background service runs, and they never wait for another
process's write lock. Commands that change something open it as a client (no workers,
no background services); only ``enqueue`` creates a store that does not exist yet.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import stat
import sys
from collections.abc import Awaitable, Callable
from enum import Enum
from pathlib import Path

from console.cli.errors import Refused, UserError
from console.cli.options import READ_ONLY_ENV, env_switch
from console.demo import register_demo
from engine import DEFAULT_URL, Config, Engine, load_config, sqlite_file

Work = Callable[[Engine], Awaitable[int]]


class Access(Enum):
    """How a command opens the store."""

    READ = "read"  # read-only: refuses a store that does not exist
    WRITE = "write"  # changes tasks of an existing store
    CREATE = "create"  # may create the store (enqueue: a producer may come first)


def read_keys(key_file: str | None) -> list[str] | None:
    """Keys from ``--key-file`` (or ``TASKDECK_KEY_FILE``) or ``TASKDECK_KEY``
    (comma-separated: new first). A key file that is missing, unreadable or readable
    by other users is refused (exit 1: a key problem)."""
    key_file = key_file or os.environ.get("TASKDECK_KEY_FILE")
    if key_file:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise Refused(f"key file {path} is not a file")
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise Refused(
                    f"key file {path} is readable by other users (mode "
                    f"{stat.S_IMODE(mode):o}); run: chmod 600 {path}"
                )
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise Refused(f"cannot read key file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise Refused(f"key file {path} is not text (keys are base64 text)") from None
    else:
        text = os.environ.get("TASKDECK_KEY", "")
    keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
    return keys or None


def load_app(spec: str) -> Engine:
    """``module:attribute`` → the user's Engine (or a function returning one)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UserError(
            f"--app must look like module:attribute (e.g. myapp.tasks:engine); got {spec!r}"
        )
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import {module_name!r} for --app: {exc}") from None
    target = getattr(module, attribute, None)
    if target is None:
        raise UserError(f"module {module_name!r} has no attribute {attribute!r}")
    if callable(target) and not isinstance(target, Engine):
        try:
            target = target()
        except Exception as exc:
            raise UserError(
                f"--app {spec} is a function, but calling it with no arguments failed: {exc}"
            ) from None
    if not isinstance(target, Engine):
        raise UserError(f"--app {spec} is a {type(target).__name__}, not a taskdeck Engine")
    return target


def flag_settings(values: list[str] | None) -> dict[str, str]:
    """``--set NAME=VALUE`` flags as texts by name (a later one wins)."""
    texts: dict[str, str] = {}
    for value in values or []:
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set takes NAME=VALUE, e.g. --set lease_ttl=30; got {value!r}")
        texts[name.strip()] = text
    return texts


def cli_config(args: argparse.Namespace) -> Config:
    """The configuration: ``--config`` (or ``TASKDECK_CONFIG``, or ``./taskdeck.toml``),
    the environment and ``--set`` flags; a bad one is refused with every bad entry."""
    if args.config is not None and not args.config.strip():
        raise UserError("--config is empty; give the path of a TOML file")
    return load_config(args.config, flags=flag_settings(args.set))


def build_engine(
    args: argparse.Namespace, *, workers: int, client: bool = False, interface: str = "cli"
) -> Engine:
    """The user's Engine (``--app``), or one on ``--store`` with the demo handlers
    (and, unless it is a ``client`` of the store, the demo's schedules), configured
    from the file, the environment and ``--set``."""
    if args.app:
        for flag, given in (
            ("--store", args.store),
            ("--config", args.config),
            ("--set", args.set),
        ):
            if given:
                raise UserError(
                    f"{flag} cannot be combined with --app: your Engine chooses its store and "
                    "settings (Engine(config=load_config()) reads taskdeck.toml)"
                )
        return load_app(args.app)
    config = cli_config(args)
    engine = Engine(
        store_url(args, config),
        workers=workers,
        keys=read_keys(args.key_file),
        config=config,
        interface=interface,
    )
    register_demo(engine, schedules=not client)
    return engine


def store_url(args: argparse.Namespace, config: Config) -> str:
    """``--store``, else ``TASKDECK_STORE`` or the file's ``[engine] store``, else the
    default (an empty ``--store`` is refused, not taken for the default)."""
    if args.store is None:
        return config.store or DEFAULT_URL
    if not args.store.strip():
        raise UserError(f"--store is empty; give a URL or a path (default {DEFAULT_URL})")
    return str(args.store)


def with_store(args: argparse.Namespace, access: Access, work: Work) -> int:
    """Open the store as a client (no workers, no background services), run ``work``,
    close. See :class:`Access`. Under ``TASKDECK_READ_ONLY`` a command that writes is
    refused before the store is opened."""
    if access is not Access.READ:
        refuse_if_read_only(args, "changes the store")
    else:
        read_only_env()  # a bad value is refused by every command
    engine = build_engine(args, workers=0, client=True)
    path = sqlite_file(engine.store_url)
    new = access is Access.CREATE and path is not None and not path.exists()

    async def main() -> int:
        read_only = access is Access.READ
        async with engine.client(read_only=read_only, create=access is Access.CREATE):
            if new:
                print(
                    f"taskdeck: note: created a new store at {path} (no engine runs on it "
                    "yet: start one with taskdeck run --headless)",
                    file=sys.stderr,
                )
            if read_only:
                return await work(engine)
            with engine.audit.note(getattr(args, "note", None)):  # an operator's action
                return await work(engine)

    return asyncio.run(main())


def read_only_env() -> bool:
    """``TASKDECK_READ_ONLY`` as on or off (a value that is neither is a UserError)."""
    return env_switch(READ_ONLY_ENV, os.environ)


def command_words(args: argparse.Namespace) -> str:
    """The command as typed, without its values: ``cancel``, ``schedule pause``,
    ``node node-1 set-workers``, ``pause --all``."""
    words = [str(args.command)]
    if args.command == "node":
        words.append(str(args.target))
    for name in ("action", "verb"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            words.append(value)
    if getattr(args, "everything", False):
        words.append("--all")
    return " ".join(words)


def refuse_if_read_only(args: argparse.Namespace, does: str) -> None:
    """Refuse a command that ``does`` something to the store under TASKDECK_READ_ONLY."""
    if read_only_env():
        given = os.environ[READ_ONLY_ENV].strip()
        raise Refused(
            f"read-only ({READ_ONLY_ENV}={given}): taskdeck {command_words(args)} {does}; "
            f"nothing was done (unset {READ_ONLY_ENV} to allow changes)"
        )
