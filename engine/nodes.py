"""Cluster nodes as a part: the engine processes on the store, this node's heartbeat
description, and the commands an operator sends to nodes."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.audit import Audit
from engine.checks import check_node_id, parse_task_id
from engine.cluster import DEAD_AFTER, UNSERVED_SCAN, check_command, node_info, version
from engine.events import EventBus, EventKind
from engine.model import CommandResult, NodeInfo
from engine.snapshot import EngineSnapshot
from engine.state import EngineState
from engine.store.base import Store


def node_name() -> str:
    """A name for this engine process: short host name, process id, random suffix."""
    host = socket.gethostname().split(".")[0][:24] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


class Nodes:
    """``nodes``, ``unserved``, ``send_command`` and ``command_results``; what this
    node says about itself in its heartbeat."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        bus: EventBus,
        node: str,
        clock: Callable[[], float],
        snapshot: Callable[[], EngineSnapshot],
        audit: Audit,
    ) -> None:
        self._state = state
        self._audit = audit
        self._store = store
        self._bus = bus
        self._node = node
        self._clock = clock
        self._snapshot = snapshot
        self._version: str | None = None  # read once, at the first heartbeat

    async def nodes(self) -> list[NodeInfo]:
        """Every engine process on this store (alive first), from their heartbeats."""
        self._state.require_running()
        return await self._store.nodes(DEAD_AFTER)

    async def unserved(
        self, nodes: Sequence[NodeInfo] | None = None, limit: int = UNSERVED_SCAN
    ) -> dict[str, int]:
        """Handlers that queued tasks name and no alive node runs, with how many such
        tasks (of the first ``limit`` found): work that waits until a node that has the
        handler joins. ``nodes``: the node rows if just read (else they are read).
        Empty when no node is alive (then nothing runs at all) or when an alive node
        does not say which handlers it has (an older version: it may run any)."""
        self._state.require_running()
        rows = await self._store.nodes(DEAD_AFTER) if nodes is None else nodes
        alive = [n for n in rows if n.state == "alive"]
        if not alive or any(n.handlers is None for n in alive):
            return {}
        served = sorted({name for n in alive for name in n.handlers or ()})
        return await self._store.unclaimable(served, limit)

    async def send_command(
        self, action: str, args: Mapping[str, Any] | None = None, *, node: str = "*"
    ) -> int:
        """Send an operator command to one node (its id) or every node (``"*"``):
        ``set_workers`` {n}, ``pause`` / ``resume`` {queue}, ``update_settings``
        {name: value}, ``stop_task`` {task_id}. Each node carries it out within a
        second and records the outcome (see :meth:`command_results`). Returns its id."""
        payload = dict(args or {})
        check_command(action, payload)
        if node != "*":
            check_node_id(node)
        self._state.require_writable("send a command")
        text = json.dumps(payload, separators=(",", ":"), default=_plain)
        where = "every node" if node == "*" else f"node {node}"
        async with self._audit.action(f"node_{action}", f"{where}: {text}") as outcome:
            command_id = await self._store.send_command(node, action, text, self._state.actor.who)
            outcome.text = f"sent (command {command_id})"
        self._bus.emit(
            EventKind.COMMAND_SENT,
            message=f"{action} {payload} → {'every node' if node == '*' else node}",
            data={"command_id": command_id},
        )
        return command_id

    async def command_results(self, command_id: int) -> list[CommandResult]:
        """What each node did with a command so far; ``LookupError`` for an id that
        cannot be one (not a positive integer below 2**63)."""
        cid = parse_task_id(command_id, "command")
        self._state.require_running()
        return await self._store.command_results(cid)

    def describe_node(self) -> NodeInfo:
        """This node as its heartbeat shows it to the others."""
        snap, names = self._snapshot(), self._state.registry.names()
        if self._version is None:
            self._version = version()
        started, now = self._state.started_at, self._clock()
        held = self._state.pool.held_ids() if self._state.pool is not None else ()
        return node_info(self._node, started, snap, now, names, self._version, held)


def _plain(value: object) -> object:
    """JSON for setting values that are mappings (rate limits, weights …)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a command argument must be JSON; got {type(value).__name__}")
