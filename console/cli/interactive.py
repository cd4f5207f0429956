"""Commands that run an engine: ``console`` (the default), ``run`` and ``screenshot``.

The console needs a terminal. Without one (under nohup, systemd, cron or CI, or with
input from /dev/null) it is refused with a pointer to ``taskdeck run --headless``,
which runs the same engine with a status line instead of a screen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from console.cli.common import build_engine, cli_config, read_keys, store_url
from console.cli.errors import Refused, UserError
from console.cli.options import number_flag
from console.headless import run_headless
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
    console.set_defaults(func=cmd_console)

    run = sub.add_parser("run", parents=[common], help="run the engine")
    run.add_argument("--headless", action="store_true", help="no UI: print a status line")
    run.add_argument("--json", action="store_true", help="status as JSON lines")
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
    run.set_defaults(func=cmd_run)

    shot = sub.add_parser("screenshot", help="write console screenshots (SVG, and PNG if possible)")
    shot.add_argument("--out", default="screenshots", help="directory (default screenshots/)")
    shot.add_argument(
        "--seconds", type=SECONDS, default=8.0, help="demo load before the shots (default 8)"
    )
    shot.set_defaults(func=cmd_screenshot)


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
    config = cli_config(args)
    url = store_url(args, config)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise Refused(
            f"no Taskdeck store at {path}: nothing to attach to; check --store, or start a "
            f"node there first (taskdeck run --headless --store {url})"
        )
    return Engine(
        url,
        workers=0,
        keys=read_keys(args.key_file),
        config=config,
        interface="console",
        strict_handlers=False,
    )


def cmd_console(args: argparse.Namespace) -> int:
    attach = getattr(args, "attach", False)
    if attach:
        engine = attached_engine(args)
    else:
        workers = args.workers if args.workers is not None else DEFAULT_WORKERS
        engine = build_engine(args, workers=workers, interface="console")
        if args.app and args.workers is not None:
            asyncio.run(engine.set_workers(args.workers))
    require_terminal(args.command or "console")  # after the options' own mistakes
    from console.app import ConsoleApp  # Textual loads only when the console runs

    demo = not attach and not args.app and not args.no_demo
    app = ConsoleApp(engine, attach=attach, demo=demo, refresh_hz=args.refresh)
    code = app.run()
    if app.return_code:
        return app.return_code
    return code or 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.headless:
        if args.json:
            raise UserError("--json is for run --headless (the console has no JSON output)")
        return cmd_console(args)
    demo = not args.app and not args.no_demo
    workers = args.workers if args.workers is not None else DEFAULT_WORKERS
    engine = build_engine(args, workers=workers)
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
