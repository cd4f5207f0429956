"""The ``taskdeck`` command.

    taskdeck                         the console on ./taskdeck.db with the demo handlers and load
    taskdeck console [--no-demo]     the console (on your engine with --app)
    taskdeck console --attach        the console on the nodes of a store (--store URL):
                                     runs no workers; steers the engines that do
    taskdeck console --read-only     watches them and changes nothing (or TASKDECK_READ_ONLY=1,
                                     which refuses every command that writes)
    taskdeck run --headless          the engine as a service (status line; --json for JSON lines;
                                     --http PORT: metrics, health and the JSON API too;
                                     --log-format json: stderr log lines as JSON objects)
    taskdeck serve [--port 8077]     HTTP: Prometheus /metrics, /health, /ready, a JSON API
    taskdeck web                     serve --console: the console in a browser too, at /console/
    taskdeck enqueue HANDLER [JSON]  enqueue one task; prints its id (or --payload @FILE / -)
    taskdeck status [--json]         counts per queue and state
    taskdeck tasks [--state S]       a page of tasks (no payloads: list views never show them)
    taskdeck show ID [--json]        one task: payload, result, error, timeline
                                     (--hide-payloads: without payload and result), logs
    taskdeck logs ID [--follow]      what the task's handler logged, per attempt (--json)
    taskdeck stack ID [--json]       a running task's live stack: its handler's line now (any node)
    taskdeck cancel ID… / retry ID…  act on tasks
    taskdeck edit ID --payload JSON  change a task that is not running (--retry: run it again)
    taskdeck bulk ACTION …           cancel, retry, reprioritize, move, set-retries or purge many
                                     tasks (--ids or --state/--queue/--handler) in batches
    taskdeck ops [--json]            bulk operations: progress and results; ops abort ID
    taskdeck schedules [--json]      periodic schedules: rule, next and last run, last state
    taskdeck schedule pause|resume|run NAME   steer one schedule
    taskdeck workflow ID [--json]    a chain or group with each step's state
    taskdeck nodes [--json]          the engines (nodes) on the store: workers, done/s, CPU …
    taskdeck node NODE|all VERB …    set-workers N, pause/resume QUEUE, settings NAME=VALUE
    taskdeck settings [--json]       every setting: value, source, who changed it and when
    taskdeck settings set|reset …    change settings for every node (saved), or undo that
    taskdeck screenshot              SVG (and PNG) screenshots of the console into screenshots/
    taskdeck completion SHELL        the completion script for bash, zsh or fish
    taskdeck --version               the installed version

Global options (before or after the command, the same meaning): ``--store URL``,
``--config FILE``, ``--set NAME=VALUE``, ``--workers N``, ``--app module:attribute`` (your
own Engine), ``--key-file PATH`` (or ``TASKDECK_KEY_FILE``; or the keys in
``TASKDECK_KEY``), ``--log-level``, ``--json``. Settings come from ``taskdeck.toml`` (or
``--config``), then ``TASKDECK_<SETTING>`` environment variables (e.g.
``TASKDECK_LEASE_TTL=30``), then ``--set``, then the runtime changes saved in the store.
Mistakes print one line to stderr, never a traceback; the exit codes are in
:mod:`console.cli.errors`.
"""

from __future__ import annotations

from console.cli.main import main

__all__ = ["main"]
