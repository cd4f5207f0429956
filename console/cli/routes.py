"""``taskdeck routes [--json]``: the ``routes`` setting's rules in order, the handlers
each one catches, and the queue every registered handler's tasks go to.

A handler registered with its own ``queue=`` keeps it whatever the routes say; such a
handler is listed under the rule it would otherwise match as ``overridden``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from console.cli.common import Access, with_store
from engine import Engine, Handler, Routes


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser(
        "routes", parents=[common], help="the routes setting: which queue each handler gets"
    )
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(func=cmd_routes)


def cmd_routes(args: argparse.Namespace) -> int:
    return with_store(args, Access.READ, lambda engine: show_routes(engine, args.json))


def via(handler: Handler, routes: Routes) -> str:
    """Why a handler's tasks go where they go: ``handler``, ``route PATTERN`` or
    ``default``."""
    if handler.queue_given:
        return "handler"
    rule = routes.rule_for(handler.name)
    return f"route {rule}" if rule else "default"


def route_table(routes: Routes, handlers: list[Handler]) -> dict[str, Any]:
    """The rules with the handlers each catches, and every handler's queue."""
    rules = []
    for pattern, queue in routes.items():
        caught = [h for h in handlers if routes.rule_for(h.name) == pattern]
        rules.append(
            {
                "pattern": pattern,
                "queue": queue,
                "handlers": [h.name for h in caught if not h.queue_given],
                "overridden": [h.name for h in caught if h.queue_given],
            }
        )
    rows = [
        {"handler": h.name, "queue": h.routed_queue(routes), "via": via(h, routes)}
        for h in handlers
    ]
    return {"routes": rules, "handlers": rows}


async def show_routes(engine: Engine, as_json: bool) -> int:
    table = route_table(engine.settings.routes, engine.handlers)
    if as_json:
        print(json.dumps(table))
        return 0
    if not table["routes"]:
        print("no routes (set them with: taskdeck settings set 'routes=reports.*=reports')")
    else:
        width = max(len("PATTERN"), *(len(r["pattern"]) for r in table["routes"]))
        qwidth = max(len("QUEUE"), *(len(r["queue"]) for r in table["routes"]))
        print(f"{'PATTERN':<{width}}  {'QUEUE':<{qwidth}}  HANDLERS")
        for rule in table["routes"]:
            caught = ", ".join(rule["handlers"]) or "–"
            if rule["overridden"]:
                caught += f" (own queue: {', '.join(rule['overridden'])})"
            print(f"{rule['pattern']:<{width}}  {rule['queue']:<{qwidth}}  {caught}")
    if table["handlers"]:
        print()
        hwidth = max(len("HANDLER"), *(len(r["handler"]) for r in table["handlers"]))
        qwidth = max(len("QUEUE"), *(len(r["queue"]) for r in table["handlers"]))
        print(f"{'HANDLER':<{hwidth}}  {'QUEUE':<{qwidth}}  VIA")
        for row in table["handlers"]:
            print(f"{row['handler']:<{hwidth}}  {row['queue']:<{qwidth}}  {row['via']}")
    return 0
