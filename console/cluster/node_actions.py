"""Operator commands for the nodes of a cluster, from an attached console: send one,
say so, then wait (briefly) for what each node did and say that too.

A node carries a command out within a second of it being sent and records the
outcome; :func:`report` polls those outcomes for up to :data:`RESULT_WAIT` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from engine import CommandResult, Engine, NodeInfo

if TYPE_CHECKING:  # the command line uses this module without loading Textual
    from textual.app import App

Severity = Literal["information", "warning", "error"]

#: How long the console waits for the nodes' outcomes of a command.
RESULT_WAIT = 2.0
POLL = 0.1


def command_text(action: str, args: Mapping[str, Any]) -> str:
    """``set_workers 5``, ``update_settings autoscale=True``: a command in a toast."""
    if action == "set_workers":
        return f"set_workers {args['n']}"
    if action == "update_settings":
        return "update_settings " + ", ".join(f"{k}={v}" for k, v in args.items())
    return f"{action} " + " ".join(str(v) for v in args.values())


def json_ready(args: Mapping[str, Any]) -> dict[str, Any]:
    """Settings values as the command channel carries them (JSON: a rate-limit map is
    a plain object)."""
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in args.items()}


def refusal(node: NodeInfo | None, now: float) -> str | None:
    """Why a command cannot go to ``node`` (None: it can)."""
    if node is None:
        return "no node selected: choose one in the Nodes panel (tab, then ↑ ↓)"
    if node.state != "alive":
        seen = max(0.0, now - node.last_seen)
        return f"{node.id} is {node.state} (last seen {seen:.0f}s ago): it takes no commands"
    return None


async def results(engine: Engine, command_id: int, expected: int) -> list[CommandResult]:
    """The outcomes recorded so far, once ``expected`` nodes answered or the wait is up."""
    deadline = time.monotonic() + RESULT_WAIT
    done: list[CommandResult] = []
    while True:
        done = await engine.command_results(command_id)
        if len(done) >= expected or time.monotonic() >= deadline:
            return done
        await asyncio.sleep(POLL)


async def report(
    app: App[Any],
    engine: Engine,
    command_id: int,
    action: str,
    targets: list[str],
) -> list[CommandResult]:
    """Toast what ``targets`` (node ids) did with a command, or that they did not answer."""
    try:
        done = await results(engine, command_id, len(targets))
    except RuntimeError as exc:  # the store failed, or the engine is stopping
        app.notify(f"could not read what the nodes did with {action}: {exc}", severity="warning")
        return []
    for text, severity in outcome_lines(done, action, targets, "see Nodes"):
        if severity == "information":
            app.notify(text, timeout=4)
        else:
            app.notify(text, severity=severity)
    return done


def outcome_lines(
    done: list[CommandResult], action: str, targets: list[str], look: str
) -> list[tuple[str, Severity]]:
    """What ``targets`` did with a command, as (text, severity) lines: one line for a
    command every node carried out alike, a refusal per node that refused, and who did
    not answer (``look`` says where to look for them)."""
    lines: list[tuple[str, Severity]] = []
    ok = [r for r in done if r.ok]
    if len(ok) > 1 and len({r.outcome for r in ok}) == 1:
        lines.append((f"{len(ok)} nodes: {ok[0].outcome}", "information"))
    else:
        lines += [(f"{r.node}: {r.outcome}", "information") for r in ok]
    lines += [(f"{r.node} refused {action}: {r.outcome}", "error") for r in done if not r.ok]
    answered = {r.node for r in done}
    silent = [t for t in targets if t not in answered]
    if silent:
        lines.append(
            (
                f"no answer to {action} within {RESULT_WAIT:g} s from {', '.join(silent)} "
                f"(it may be overloaded or gone: {look})",
                "warning",
            )
        )
    return lines


async def send(engine: Engine, action: str, args: Mapping[str, Any], target: str) -> int:
    """Send a command to one node (its id) or every node (``"*"``: a node that joins
    meanwhile gets it too); returns its id. Raises what the engine raises for a command
    it refuses (ValueError, TypeError) or cannot store (RuntimeError)."""
    return await engine.send_command(action, json_ready(args), node=target)
