"""``taskdeck serve --console`` (or ``taskdeck web``, the same): the console in a browser
at ``/console`` on the HTTP endpoint's port (see :mod:`console.http.browser`).

Each browser session runs ``taskdeck console --attach`` (a write token, or no tokens on
loopback) or ``taskdeck console --read-only`` (a read token) on the served store; the
store's URL reaches it through ``TASKDECK_STORE``, the configuration file and ``--set``
flags through its command line.
"""

from __future__ import annotations

import argparse
import sys

from console.cli.common import cli_config, store_url
from console.cli.errors import UserError
from console.http import Tokens
from console.http.browser import BrowserConsole
from engine import Engine

#: Where a session's console finds the store (the URL stays off the command line).
STORE_ENV = "TASKDECK_STORE"


def add_console_flag(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--console",
        action="store_true",
        help="the console in a browser too, at /console (one console process per session)",
    )


def browser_console(args: argparse.Namespace, engine: Engine, tokens: Tokens) -> BrowserConsole:
    """The sessions' command line and environment, from this command's flags."""
    command = [sys.executable, "-m", "console.cli", "console"]
    if args.config:
        command += ["--config", args.config]
    for item in args.set or ():
        command += ["--set", item]
    if args.key_file:
        command += ["--key-file", args.key_file]
    url = engine.store_url if args.app else store_url(args, cli_config(args))
    if "***" in url:  # an --app Engine shows its PostgreSQL URL without the password
        raise UserError(
            "serve --console with --app: the browser sessions need the store's URL with its "
            "password, which the Engine does not show; serve it without --app: "
            "taskdeck serve --console --store URL"
        )
    return BrowserConsole(tokens, command, {STORE_ENV: str(url)})
