"""``taskdeck serve``: the HTTP endpoint (Prometheus ``/metrics``, ``/health``,
``/ready``, the JSON API) on a store, and the ``--http`` flags of ``run --headless``.

``serve`` runs an engine with no workers and no handlers: it takes enqueues (any
handler name, for the nodes to run), cancels and retries, and exports the store's
counts, queues and nodes; the nodes (``run --headless``, optionally with ``--http``)
run the tasks. Under ``TASKDECK_READ_ONLY`` it opens the store read-only and refuses
every write with 403. Tokens: see :mod:`console.http.tokens`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from console.cli.common import cli_config, load_app, read_keys, read_only_env, store_url
from console.cli.errors import UserError
from console.cli.options import READ_ONLY_ENV, number_flag
from console.http import HttpServer, ServeOptions, Tokens, check_bind
from console.http.bridge import STALL_THRESHOLD
from console.stop_signals import StopSignals, exit_at_once
from engine import Config, Engine, load_config

PORT = number_flag("--port", int, 0, 65535, "")
HTTP_PORT = number_flag("--http", int, 0, 65535, "")
STALL = number_flag("--stall-threshold", float, 0.2, 60, "s")
DEFAULT_PORT = 8077
DEFAULT_HOST = "127.0.0.1"


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="HTTP endpoint: Prometheus /metrics, /health, /ready and a JSON API",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    serve.add_argument(
        "--port",
        type=PORT,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0: any free)",
    )
    add_stall_flag(serve)
    serve.set_defaults(func=cmd_serve)


def add_stall_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stall-threshold",
        type=STALL,
        metavar="SECONDS",
        help="/health answers 503 when the engine's loop has not run for this long (default 1)",
    )


def add_run_flags(run: argparse.ArgumentParser) -> None:
    """``run --headless --http PORT [--http-host HOST]``."""
    run.add_argument(
        "--http",
        type=HTTP_PORT,
        metavar="PORT",
        help="serve /metrics, /health and the JSON API on this port (see taskdeck serve)",
    )
    run.add_argument(
        "--http-host", metavar="HOST", help=f"address for --http (default {DEFAULT_HOST})"
    )
    add_stall_flag(run)


def tokens_of(args: argparse.Namespace) -> Tokens:
    """The tokens: the configuration file's ``[http]`` and the environment (with
    ``--app``, the file your Engine would read: ``TASKDECK_CONFIG`` or ./taskdeck.toml)."""
    config: Config = load_config() if args.app else cli_config(args)
    return Tokens.load(config, os.environ)


def http_server(args: argparse.Namespace, engine: Engine, host: str, port: int) -> HttpServer:
    tokens = tokens_of(args)
    try:
        check_bind(host, tokens)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    stall = args.stall_threshold if args.stall_threshold is not None else STALL_THRESHOLD
    options = ServeOptions(host, port, stall)
    read_only = read_only_reason()
    return HttpServer(engine, tokens, options, read_only=read_only, refresh_counts=bool(read_only))


def read_only_reason() -> str | None:
    return f"{READ_ONLY_ENV}={os.environ[READ_ONLY_ENV].strip()}" if read_only_env() else None


def serve_engine(args: argparse.Namespace) -> Engine:
    """Your ``--app`` Engine (its handlers check enqueues), else one with no handlers
    on ``--store``; it runs no workers either way."""
    if args.workers is not None:
        raise UserError(
            "taskdeck serve runs no workers; to run tasks and serve HTTP use: "
            "taskdeck run --headless --http PORT"
        )
    if args.app:
        return load_app(args.app)
    config = cli_config(args)
    return Engine(
        store_url(args, config),
        workers=0,
        keys=read_keys(args.key_file),
        config=config,
        interface="api",
        strict_handlers=False,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    engine = serve_engine(args)
    server = http_server(args, engine, args.host, args.port)
    return asyncio.run(serve(engine, server))


async def serve(engine: Engine, server: HttpServer) -> int:
    """Serve until SIGINT/SIGTERM; /ready is 503 until the engine runs and once it stops."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def graceful(name: str) -> None:
        print(f"{name}: stopping (send it again to stop at once)", file=sys.stderr, flush=True)
        stop.set()

    signals = StopSignals(graceful, exit_at_once)
    signals.install(loop)
    await server.start()
    try:
        if server.read_only:
            async with engine.client(read_only=True):
                announce(engine, server)
                await stop.wait()
                server.stopping = True
        else:
            await engine.set_workers(0)
            engine.audit.act_as("api")
            await engine.start()
            try:
                announce(engine, server)
                await stop.wait()
            finally:
                server.stopping = True
                await engine.stop()
    finally:
        await asyncio.to_thread(server.stop)
        signals.remove(loop)
    print("stopped", file=sys.stderr)
    return 0


def announce(engine: Engine, server: HttpServer) -> None:
    print(f"taskdeck serve on {engine.store_url}: {server.describe()}", file=sys.stderr, flush=True)
