"""The ``taskdeck`` command.

    taskdeck                       the demo: engine + demo load on ./taskdeck.db
    taskdeck run --headless        the engine as a service (status line; --json for JSON lines)
    taskdeck status [--json]       counts per queue and state, from another shell

Common options: ``--store URL``, ``--workers N``, ``--app module:attribute`` (your own
Engine), ``--key-file PATH`` (or ``TASKDECK_KEY``). Settings come from
``TASKDECK_<SETTING>`` environment variables (e.g. ``TASKDECK_LEASE_TTL=30``).
User mistakes print one clear line to stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from console.demo import register_demo
from console.headless import run_headless
from engine import (
    EncryptionKeyError,
    Engine,
    SettingsError,
    StoreError,
    StoreOpenError,
    TaskState,
)
from engine.settings import Settings
from engine.store import DEFAULT_URL

EXIT_USAGE = 2
EXIT_ERROR = 1


class UserError(Exception):
    """A mistake in how taskdeck was called; shown as one line, exit code 2."""


def read_keys(key_file: str | None) -> list[str] | None:
    """Keys from ``--key-file`` or ``TASKDECK_KEY`` (comma-separated: new first)."""
    if key_file:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise UserError(f"cannot read key file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UserError(
                f"key file {path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {path}"
            )
        text = path.read_text(encoding="utf-8")
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
        target = target()
    if not isinstance(target, Engine):
        raise UserError(f"--app {spec} is a {type(target).__name__}, not a taskdeck Engine")
    return target


def build_engine(args: argparse.Namespace, *, workers: int, demo: bool) -> Engine:
    """The user's Engine (``--app``), or one on ``--store`` with the demo handlers."""
    if args.app:
        if args.store:
            raise UserError("--store cannot be combined with --app: your Engine chooses its store")
        return load_app(args.app)
    settings = Settings.from_env()
    engine = Engine(
        args.store or DEFAULT_URL,
        workers=workers,
        keys=read_keys(args.key_file),
        settings=settings,
        strict_handlers=demo,
    )
    if demo:
        register_demo(engine)
    return engine


def cmd_run(args: argparse.Namespace) -> int:
    if not args.headless:
        raise UserError("the terminal console is not part of this version yet; use --headless")
    demo = not args.app and not args.no_demo
    workers = args.workers if args.workers is not None else 8
    engine = build_engine(args, workers=workers, demo=demo)
    return asyncio.run(
        run_headless(
            engine,
            workers=args.workers,  # None keeps what the app's Engine asked for
            json_lines=args.json,
            interval=args.interval,
            demo=demo,
            demo_rate=args.demo_rate,
        )
    )


def cmd_status(args: argparse.Namespace) -> int:
    engine = build_engine(args, workers=0, demo=False)

    async def read() -> dict[str, dict[str, int]]:
        async with engine:
            queues = engine.snapshot().queues  # counts as read from the store at open
        table = {}
        for name, info in queues.items():
            table[name] = {s.value: info.counts.get(s, 0) for s in TaskState}
            if info.paused:
                table[name]["paused"] = 1
        return table

    table = asyncio.run(read())
    if args.json:
        print(json.dumps({"store": engine.store_url, "queues": table}))
        return 0
    states = [s.value for s in TaskState]
    print(f"store {engine.store_url}")
    print(f"{'queue':<20}" + "".join(f"{s:>11}" for s in states))
    totals = dict.fromkeys(states, 0)
    for queue, per in table.items():
        mark = " (paused)" if per.get("paused") else ""
        print(f"{(queue + mark)[:20]:<20}" + "".join(f"{per.get(s, 0):>11,}" for s in states))
        for s in states:
            totals[s] += per.get(s, 0)
    print(f"{'total':<20}" + "".join(f"{totals[s]:>11,}" for s in states))
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help=f"store URL or path (default {DEFAULT_URL})")
    common.add_argument("--workers", type=int, help="worker slots (default 8)")
    common.add_argument("--app", help="your engine as module:attribute (default: the demo)")
    common.add_argument("--key-file", help="file with the encryption key(s) (or TASKDECK_KEY)")
    common.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    top = argparse.ArgumentParser(
        prog="taskdeck",
        parents=[common],
        description="Taskdeck: a durable task engine on one SQLite file.",
    )
    sub = top.add_subparsers(dest="command")
    run = sub.add_parser("run", parents=[common], help="run the engine")
    run.add_argument("--headless", action="store_true", help="no UI: print a status line")
    run.add_argument("--json", action="store_true", help="status as JSON lines")
    run.add_argument("--interval", type=float, default=2.0, help="seconds between status lines")
    run.add_argument("--no-demo", action="store_true", help="do not generate demo load")
    run.add_argument("--demo-rate", type=float, default=3.0, help="demo downloads per second")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", parents=[common], help="counts per queue and state")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:  # no command: the out-of-the-box demo
        args = parser().parse_args(["run", "--headless", *(argv or sys.argv[1:])])
    if args.workers is not None and args.workers < 0:
        print("taskdeck: error: --workers must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except UserError as exc:
        print(f"taskdeck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (
        StoreOpenError,
        EncryptionKeyError,
        SettingsError,
        StoreError,
        ValueError,
        TypeError,
        LookupError,
    ) as exc:
        print(f"taskdeck: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
