"""Many engine processes on one store: node rows and the operator command channel.

Every engine is a *node*. Twice a second its :class:`NodeKeeper` writes the node's
row (host, pid, workers busy/total and a compact snapshot) and, in the same
transaction, picks up the commands addressed to it or to every node (``"*"``),
so a command is carried out within a second; each outcome is recorded with the
command. A node silent for :data:`DEAD_AFTER` seconds is marked dead; its running
tasks come back through the usual lease expiry. A console attached to the store
reads the node rows and sends commands, so one terminal steers the cluster.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

from engine.events import EventBus, EventKind
from engine.model import COMMAND_ACTIONS, CommandResult, NodeCommand, NodeInfo
from engine.services import Service
from engine.settings import Settings
from engine.snapshot import SEVERITY_ORDER, Finding
from engine.store.base import Store

log = logging.getLogger(__name__)

HEARTBEAT = 0.5  # seconds between a node's heartbeats (and command pickups)
DEAD_AFTER = 5.0  # a node silent this long is marked dead
NODE_FINDINGS = 3  # the worst findings a heartbeat carries
HELD_SHOWN = 500  # ids of tasks held ready (prefetched, not started) a heartbeat carries
UNSERVED_SCAN = 10_000  # queued tasks counted at most, per look for unserved handlers


def version() -> str:
    try:
        return metadata.version("taskdeck")
    except metadata.PackageNotFoundError:
        return "dev"


def check_command(action: str, args: Mapping[str, Any]) -> None:
    """Refuse a command no node could carry out, before it is sent."""
    if action not in COMMAND_ACTIONS:
        raise ValueError(f"unknown command {action!r}; allowed: {', '.join(COMMAND_ACTIONS)}")
    needed = {"set_workers": "n", "pause": "queue", "resume": "queue", "stop_task": "task_id"}
    needed["stack"] = "task_id"
    needed.update(reprioritize="task_id", reset_settings="names")
    key = needed.get(action)
    if key is not None and key not in args:
        raise ValueError(f"command {action} needs {key}=…; got {dict(args)!r}")
    if action == "reprioritize" and "priority" not in args:
        raise ValueError(f"command reprioritize needs priority=…; got {dict(args)!r}")
    if action == "update_settings" and not args:
        raise ValueError("command update_settings needs at least one setting")


class NodeKeeper(Service):
    """The heartbeat of one node, and the carrying out of its commands.

    An engine joins the cluster (gets a node row) once it has workers: a producer,
    a command-line client or an attached console (0 workers) writes nothing here.
    Once joined, it stays a node until it stops, even at 0 workers, so it can be
    sent ``set_workers`` again."""

    name = "node heartbeat"

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        describe: Callable[[], NodeInfo],
        apply: Callable[[NodeCommand], Awaitable[str]],
        clock: Callable[[], float],
    ) -> None:
        super().__init__(store, settings, bus)
        self.describe = describe
        self.apply = apply
        self.clock = clock
        self.applied = 0
        self.joined = False

    def interval(self) -> float:
        return HEARTBEAT

    async def run_once(self) -> None:
        node = self.describe()
        if not self.joined and node.workers == 0:
            return
        self.joined = True
        commands = await self.store.heartbeat(node, DEAD_AFTER)
        if not commands:
            return
        done = []
        for command in commands:
            try:
                outcome, ok = await self.apply(command), True
            except Exception as exc:  # a bad command must not stop the heartbeat
                outcome, ok = str(exc), False
            self.applied += 1
            done.append((command, CommandResult(command.id, node.id, self.clock(), ok, outcome)))
        # the row shows what the commands changed before anyone reads their outcomes
        await self.store.heartbeat(self.describe(), DEAD_AFTER)
        for command, result in done:
            await self.store.record_command(result)
            said = result.outcome if len(result.outcome) <= 200 else result.outcome[:200] + " …"
            self.bus.emit(
                EventKind.COMMAND_APPLIED if result.ok else EventKind.COMMAND_FAILED,
                message=f"{command.action} from {command.by}: {said}",
                data={"command_id": command.id, "action": command.action},
            )


def _finding_json(finding: Finding) -> dict[str, Any]:
    action = None if finding.action is None else [finding.action[0], dict(finding.action[1])]
    return {
        "severity": finding.severity,
        "title": finding.title,
        "evidence": finding.evidence,
        "suggestion": finding.suggestion,
        "rule": finding.rule,
        "action": action,
    }


def node_findings(node: NodeInfo) -> tuple[Finding, ...]:
    """The findings in ``node``'s last heartbeat (worst first), each naming the node.
    Entries that do not have the expected shape (another version wrote them) are
    left out."""
    found = []
    for item in node.snapshot.get("findings") or ():
        try:
            severity, action = item["severity"], item.get("action")
            if severity not in SEVERITY_ORDER:
                continue
            if action is not None:
                name, args = action
                action = (str(name), dict(args))
            found.append(
                Finding(
                    severity,
                    str(item["title"]),
                    str(item["evidence"]),
                    str(item["suggestion"]),
                    action,
                    str(item.get("rule", "")),
                    node.id,
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(found)


def unserved_findings(counts: Mapping[str, int], limit: int = UNSERVED_SCAN) -> tuple[Finding, ...]:
    """A warning per handler that queued tasks name and no alive node runs (``counts``
    from :meth:`Engine.unserved`), the most tasks first: "No node serves images.x —
    12 tasks queued"."""
    found = []
    for handler, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        many = f"{n:,}+" if n >= limit else f"{n:,}"
        found.append(
            Finding(
                severity="warning",
                title=f"No node serves {handler} — {many} tasks queued",
                evidence=(
                    f"{many} queued tasks name {handler}; no alive node has registered it, "
                    "so they stay queued"
                ),
                suggestion=(
                    f"Start a node whose engine registers {handler} (@engine.task), or "
                    "cancel those tasks."
                ),
                rule="unserved",
            )
        )
    return tuple(found)


def node_settings(node: NodeInfo) -> Settings | None:
    """The settings in ``node``'s last heartbeat (None if it carried some this version
    cannot read)."""
    changed = node.snapshot.get("settings") or {}
    try:
        return Settings().replace(**changed)
    except (TypeError, ValueError):  # SettingsError is a ValueError
        return None


def node_info(
    node: str,
    started_at: float,
    snapshot: Any,
    now: float,
    handlers: Sequence[str] = (),
    release: str | None = None,
    held: Sequence[int] = (),
) -> NodeInfo:
    """This node's row, from its :class:`~engine.snapshot.EngineSnapshot` and the names
    of the handlers it has; ``release`` is :func:`version` when the caller keeps it
    (reading package metadata costs about a millisecond: not twice a second)."""
    resources = snapshot.resources
    compact: dict[str, Any] = {
        "throughput": round(snapshot.throughput, 2),
        "failures_per_minute": snapshot.failures_per_minute,
        "paused": sorted(snapshot.paused_queues),
        "autoscale": snapshot.settings.autoscale,
    }
    if resources is not None:
        compact["cpu"] = round(resources.process_cpu, 1)
        compact["rss"] = resources.rss
    changed = snapshot.settings.changed()
    if changed:  # as JSON: a limit map is a plain object
        compact["settings"] = {
            name: dict(value) if isinstance(value, Mapping) else value
            for name, value in changed.items()
        }
    if held:  # ``engine.diagnose.why`` tells a held task from a started one by it
        compact["held"] = sorted(held)[:HELD_SHOWN]
    if snapshot.findings:
        compact["findings"] = [_finding_json(f) for f in snapshot.findings[:NODE_FINDINGS]]
    return NodeInfo(
        id=node,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=version() if release is None else release,
        started_at=started_at,
        last_seen=now,
        state="alive",
        workers=snapshot.worker_count,
        busy=snapshot.busy_workers,
        snapshot=compact,
        handlers=tuple(sorted(handlers)),
    )
