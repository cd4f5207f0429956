"""``taskdeck nodes`` and ``taskdeck node``: the cluster from the command line.

    taskdeck nodes [--json]                          every node on the store
    taskdeck node NODE|all set-workers N             resize one node's pool, or every node's
    taskdeck node NODE|all pause|resume QUEUE        (queue pauses are stored: every node sees them)
    taskdeck node NODE|all settings NAME=VALUE …     change settings at runtime

A command goes through the store's command channel; each node carries it out within a
second and records what it did, which is printed (exit 1 if a node refused it or did
not answer in time). The client runs no workers, so it is no node itself.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import Refused
from console.cli.options import WORKERS, add_note
from console.cluster.node_actions import outcome_lines, refusal, results, send
from console.cluster.node_rows import COLUMNS, cell_texts
from engine import Engine, NodeInfo, Settings

#: The verbs of ``taskdeck node``, and the engine command each sends.
VERBS = {
    "set-workers": "set_workers",
    "pause": "pause",
    "resume": "resume",
    "settings": "update_settings",
}
EVERY = "all"


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``nodes`` and ``node``."""
    nodes = sub.add_parser("nodes", parents=[common], help="the engines (nodes) on the store")
    nodes.add_argument("--json", action="store_true", help="print JSON")
    nodes.set_defaults(func=cmd_nodes)
    node = sub.add_parser("node", parents=[common], help="send a command to one node, or 'all'")
    node.add_argument("target", help=f"a node id (see taskdeck nodes) or '{EVERY}'")
    node.add_argument("verb", choices=list(VERBS), help="what to do")
    node.add_argument(
        "values",
        nargs="+",
        help="set-workers: N; pause/resume: QUEUE; settings: NAME=VALUE …",
    )
    node.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    add_note(node)
    node.set_defaults(func=cmd_node)


def cmd_nodes(args: argparse.Namespace) -> int:
    return with_store(args, Access.READ, lambda engine: list_nodes(engine, args.json))


def cmd_node(args: argparse.Namespace) -> int:
    payload = command_args(args.verb, args.values)  # a mistake here is a usage error
    return with_store(args, Access.WRITE, lambda engine: command_nodes(engine, args, payload))


def node_row(node: NodeInfo) -> dict[str, Any]:
    """A node for JSON output."""
    row = asdict(node)
    row["snapshot"] = dict(node.snapshot)
    return row


async def list_nodes(engine: Engine, as_json: bool) -> int:
    nodes = await engine.nodes()
    if as_json:
        print(json.dumps({"store": engine.store_url, "nodes": [node_row(n) for n in nodes]}))
        return 0
    print(f"store {engine.store_url}")
    if not nodes:
        print("no nodes: no engine with workers has run on this store")
        return 0
    now = time.time()
    rows = [cell_texts(n, now) for n in nodes]
    widths = {c.key: max(len(c.label), *(len(r[c.key]) for r in rows)) for c in COLUMNS}
    for cells in [{c.key: c.label for c in COLUMNS}, *rows]:
        print(
            "  ".join(
                cells[c.key].rjust(widths[c.key]) if c.right else cells[c.key].ljust(widths[c.key])
                for c in COLUMNS
            ).rstrip()
        )
    return 0


def command_args(verb: str, values: list[str]) -> dict[str, Any]:
    """The command's arguments from the words after the verb; ValueError says what was
    expected."""
    if verb in ("set-workers", "pause", "resume"):
        if len(values) != 1:
            what = "one worker count" if verb == "set-workers" else "one queue name"
            raise ValueError(f"{verb} takes {what}; got {' '.join(values)!r}")
        if verb != "set-workers":
            return {"queue": values[0]}
        try:
            return {"n": WORKERS(values[0])}
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"set-workers: the worker count {exc}") from None
    texts: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise ValueError(f"settings are NAME=VALUE, e.g. result_ttl=600; got {value!r}")
        texts[name.strip()] = text
    parsed = Settings.from_texts(texts)  # every bad one is reported at once
    return {name: getattr(parsed, name) for name in texts}


async def command_nodes(engine: Engine, args: argparse.Namespace, payload: dict[str, Any]) -> int:
    action = VERBS[args.verb]
    nodes = await engine.nodes()
    alive = [n for n in nodes if n.state == "alive"]
    if args.target == EVERY:
        if not alive:
            raise Refused("no node is alive on this store to take the command")
        target, expected = "*", [n.id for n in alive]
    else:
        node = next((n for n in nodes if n.id == args.target), None)
        if node is None:
            known = ", ".join(n.id for n in nodes) or "none"
            raise Refused(f"no node {args.target!r} on this store; nodes: {known}")
        reason = refusal(node, time.time())
        if reason is not None:
            raise Refused(reason)
        target, expected = node.id, [node.id]
    command_id = await send(engine, action, payload, target)
    done = await results(engine, command_id, len(expected))
    lines = outcome_lines(done, action, expected, "see taskdeck nodes")
    if args.json:
        outcomes = [
            {"node": r.node, "ok": r.ok, "outcome": r.outcome, "at": r.done_at} for r in done
        ]
        silent = [n for n in expected if n not in {r.node for r in done}]
        print(json.dumps({"command": command_id, "results": outcomes, "no_answer": silent}))
    else:
        for text, _ in lines:
            print(text)
    failed = any(not r.ok for r in done) or len({r.node for r in done}) < len(expected)
    return 1 if failed else 0
