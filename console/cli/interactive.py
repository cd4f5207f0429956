"""Commands that run an engine: ``console`` (the default), ``run`` and ``screenshot``.

The console needs a terminal. Without one (under nohup, systemd, cron or CI, or with
input from /dev/null) it is refused with a pointer to ``taskdeck run --headless``,
which runs the same engine with a status line instead of a screen.

``console --read-only`` (or ``TASKDECK_READ_ONLY=1``) watches a store like ``--attach``
and changes nothing: the store is opened read-only, no workers, demo, schedules or
node row, and every key that would change something is refused with a toast. ``run
--headless`` runs workers, so it is refused under TASKDECK_READ_ONLY. ``--hide-payloads``
(or ``TASKDECK_HIDE_PAYLOADS=1``) shows tasks without their payloads and results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from console.cli.common import (
    build_engine,
    cli_config,
    load_app,
    read_keys,
    read_only_env,
    refuse_if_read_only,
    store_url,
)
from console.cli.errors import Refused, UserError
from console.cli.options import HIDE_PAYLOADS_ENV, env_switch, number_flag
from console.cli.serve import DEFAULT_HOST, add_run_flags, http_server
from console.headless import run_headless
from console.log_format import LOG_FORMATS, name_node
from engine import Engine, sqlite_file

REFRESH = number_flag("--refresh", float, 0.1, 20, "per second")
INTERVAL = number_flag("--interval", float, 0.1, 3600, "s")
DEMO_RATE = number_flag("--demo-rate", float, 0.1, 1000, "per second")
SECONDS = number_flag("--seconds", float, 0, 600, "s")
DEFAULT_WORKERS = 8


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    console = sub.add_parser("console", parents=[common], help="the terminal console (default)")
    console.add_argument("--no-demo", action="store_true", help="do not generate demo load")
    console.add_argument(
        "--attach",
        action="store_true",
        help="watch and steer the engines (nodes) on --store; run no workers here",
    )
    console.add_argument(
        "--refresh", type=REFRESH, default=2.0, metavar="HZ", help="refreshes per second"
    )
    add_view_flags(console)
    console.set_defaults(func=cmd_console)

    run = sub.add_parser("run", parents=[common], help="run the engine")
    run.add_argument("--headless", action="store_true", help="no UI: print a status line")
    run.add_argument("--json", action="store_true", help="status as JSON lines")
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="stderr log lines as text (default) or JSON objects, one per line (--headless)",
    )
    run.add_argument(
        "--interval",
        type=INTERVAL,
        default=2.0,
        metavar="SECONDS",
        help="seconds between status lines (default 2)",
    )
    run.add_argument("--no-demo", action="store_true", help="do not generate demo load")
    run.add_argument(
        "--demo-rate",
        type=DEMO_RATE,
        default=3.0,
        metavar="N",
        help="demo images per second (default 3)",
    )
    run.add_argument("--refresh", type=REFRESH, default=2.0, metavar="HZ", help=argparse.SUPPRESS)
    add_view_flags(run, " (without --headless)")
    add_run_flags(run)
    run.set_defaults(func=cmd_run)

    shot = sub.add_parser("screenshot", help="write console screenshots (SVG, and PNG if possible)")
    shot.add_argument("--out", default="screenshots", help="directory (default screenshots/)")
    shot.add_argument(
        "--seconds", type=SECONDS, default=8.0, help="demo load before the shots (default 8)"
    )
    shot.set_defaults(func=cmd_screenshot)


def add_view_flags(parser: argparse.ArgumentParser, where: str = "") -> None:
    parser.add_argument(
        "--read-only",
        action="store_true",
        help=f"watch the store and change nothing (or TASKDECK_READ_ONLY=1){where}",
    )
    parser.add_argument(
        "--hide-payloads",
        action="store_true",
        help=f"show tasks without payloads and results (or TASKDECK_HIDE_PAYLOADS=1){where}",
    )


def require_terminal(command: str) -> None:
    """The console draws on a terminal and reads keys from it: refuse without one."""
    missing = [name for name, f in (("input", sys.stdin), ("output", sys.stdout)) if not _tty(f)]
    if missing:
        raise UserError(
            f"taskdeck {command} shows the console, which needs a terminal, but standard "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not one (nohup, "
            "systemd, cron, CI or a redirect); to run the engine without a screen use: "
            "taskdeck run --headless"
        )


def _tty(stream: Any) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced
        return False


def attached_engine(args: argparse.Namespace) -> Engine:
    """The engine of ``console --attach``: no workers (so it is no node itself), no
    handlers (any name can be enqueued for the nodes to run), its autoscaler off."""
    if args.app:
        raise UserError(
            "--attach cannot be combined with --app: the attached console runs no handlers; "
            "give the store with --store"
        )
    if args.workers is not None:
        raise UserError(
            "--attach runs no workers: choose a node in the Nodes panel and use ] [ w instead "
            "of --workers"
        )
    return watching_engine(args, "attach to")


def watching_engine(args: argparse.Namespace, what: str) -> Engine:
    """An engine with no workers and no handlers on ``--store``, which must exist."""
    config = cli_config(args)
    url = store_url(args, config)
    require_store(url, what)
    return Engine(
        url,
        workers=0,
        keys=read_keys(args.key_file),
        config=config,
        interface="console",
        strict_handlers=False,
    )


def require_store(url: str, what: str) -> None:
    """Refuse a SQLite store that does not exist (there is nothing to ``what``)."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise Refused(
            f"no Taskdeck store at {path}: nothing to {what}; check --store, or start a "
            f"node there first (taskdeck run --headless --store {url})"
        )


def read_only_engine(args: argparse.Namespace) -> Engine:
    """The engine of ``console --read-only``: your ``--app`` Engine (for its store and
    keys), else one with no handlers on ``--store``; either only reads (no workers)."""
    if args.workers is not None:
        raise UserError("--read-only runs no workers: leave out --workers")
    if not args.app:
        return watching_engine(args, "watch")
    engine = load_app(args.app)
    require_store(engine.store_url, "watch")
    return engine


def view_flags(args: argparse.Namespace) -> tuple[bool, bool]:
    """(read-only, hide payloads): the flags, or the environment variables."""
    read_only = bool(getattr(args, "read_only", False)) or read_only_env()
    hide = bool(getattr(args, "hide_payloads", False)) or env_switch(HIDE_PAYLOADS_ENV, os.environ)
    return read_only, hide


def cmd_console(args: argparse.Namespace) -> int:
    read_only, hide = view_flags(args)
    attach = getattr(args, "attach", False) or read_only
    if read_only:
        engine = read_only_engine(args)
    elif attach:
        engine = attached_engine(args)
    else:
        workers = args.workers if args.workers is not None else DEFAULT_WORKERS
        engine = build_engine(args, workers=workers, interface="console")
        if args.app and args.workers is not None:
            asyncio.run(engine.set_workers(args.workers))
    require_terminal(args.command or "console")  # after the options' own mistakes
    from console.app import ConsoleApp  # Textual loads only when the console runs

    demo = not attach and not args.app and not args.no_demo
    app = ConsoleApp(
        engine,
        attach=attach,
        demo=demo,
        refresh_hz=args.refresh,
        read_only=read_only,
        hide_payloads=hide,
    )
    code = app.run()
    if app.return_code:
        return app.return_code
    return code or 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.headless:
        if args.json:
            raise UserError("--json is for run --headless (the console has no JSON output)")
        if args.log_format != "text":
            raise UserError("--log-format is for run --headless (the console shows no log)")
        for flag, given in (("--http", args.http), ("--http-host", args.http_host),
                            ("--stall-threshold", args.stall_threshold)):  # fmt: skip
            if given is not None:
                raise UserError(f"{flag} is for run --headless (the console serves no HTTP)")
        return cmd_console(args)
    for flag, given in (
        ("--http-host", args.http_host),
        ("--stall-threshold", args.stall_threshold),
    ):
        if given is not None and args.http is None:
            raise UserError(f"{flag} needs --http PORT (the port to serve on)")
    for flag, given in (("--read-only", args.read_only), ("--hide-payloads", args.hide_payloads)):
        if given:
            raise UserError(
                f"{flag} is for the console (run without --headless, or taskdeck console); "
                "run --headless runs workers and shows no tasks"
            )
    refuse_if_read_only(args, "runs workers, which change the store")
    demo = not args.app and not args.no_demo
    workers = args.workers if args.workers is not None else DEFAULT_WORKERS
    engine = build_engine(args, workers=workers)
    name_node(engine.node)
    host = args.http_host or DEFAULT_HOST
    server = None if args.http is None else http_server(args, engine, host, args.http)
    return asyncio.run(
        run_headless(
            engine,
            workers=args.workers,  # None keeps what the app's Engine asked for
            json_lines=args.json,
            interval=args.interval,
            demo=demo,
            demo_rate=args.demo_rate,
            log_json=args.log_format == "json",
            http=server,
        )
    )


def cmd_screenshot(args: argparse.Namespace) -> int:
    from console.screenshot import take_screenshots

    out = Path(args.out)
    try:  # before the demo runs for --seconds, not after
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Refused(f"cannot write screenshots to {out}: {exc.strerror}") from None
    written = asyncio.run(take_screenshots(out, seconds=args.seconds))
    for path in written:
        print(path)
    return 0
