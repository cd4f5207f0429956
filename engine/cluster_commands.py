"""The cluster half of the Engine's API: the nodes on the store and the commands an
operator sends them. A mixin of :class:`engine.core.Engine`, kept apart so each file
reads in one go."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.checks import check_node_id, parse_task_id
from engine.cluster import DEAD_AFTER, UNSERVED_SCAN, check_command, node_info
from engine.events import EventBus, EventKind
from engine.model import CommandResult, NodeCommand, NodeInfo
from engine.store.base import Store

if TYPE_CHECKING:
    from engine.pool import WorkerPool
    from engine.registry import Registry
    from engine.snapshot import EngineSnapshot


class ClusterCommands:
    """``nodes``, ``send_command`` and ``command_results``; applying commands here."""

    node: str
    _store: Store
    _bus: EventBus
    _clock: Callable[[], float]
    _pool: WorkerPool | None
    _started_at: float
    _registry: Registry

    def snapshot(self) -> EngineSnapshot:
        raise NotImplementedError

    def _require_running(self) -> None:
        raise NotImplementedError

    def _require_writable(self, verb: str) -> None:
        raise NotImplementedError

    async def apply_action(self, action: tuple[str, Mapping[str, Any]]) -> str:
        raise NotImplementedError

    async def nodes(self) -> list[NodeInfo]:
        """Every engine process on this store (alive first), from their heartbeats."""
        self._require_running()
        return await self._store.nodes(DEAD_AFTER)

    async def unserved(
        self, nodes: Sequence[NodeInfo] | None = None, limit: int = UNSERVED_SCAN
    ) -> dict[str, int]:
        """Handlers that queued tasks name and no alive node runs, with how many such
        tasks (of the first ``limit`` found): work that waits until a node that has the
        handler joins. ``nodes``: the node rows if just read (else they are read).
        Empty when no node is alive (then nothing runs at all) or when an alive node
        does not say which handlers it has (an older version: it may run any)."""
        self._require_running()
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
        self._require_writable("send a command")
        text = json.dumps(payload, separators=(",", ":"), default=_plain)
        command_id = await self._store.send_command(node, action, text, "operator")
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
        self._require_running()
        return await self._store.command_results(cid)

    def _describe_node(self) -> NodeInfo:
        snap, names = self.snapshot(), self._registry.names()
        return node_info(self.node, self._started_at, snap, self._clock(), names)

    async def _apply_command(self, command: NodeCommand) -> str:
        """Carry out one command here; returns what was done (raises if refused)."""
        args = command.args
        if command.action == "stop_task":
            task_id = int(args["task_id"])
            if self._pool is not None and self._pool.cancel_local(task_id):
                return f"stopped task {task_id}"
            return f"task {task_id} is not running here"
        return await self.apply_action((command.action, args))


def _plain(value: object) -> object:
    """JSON for setting values that are mappings (rate limits, weights …)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a command argument must be JSON; got {type(value).__name__}")
