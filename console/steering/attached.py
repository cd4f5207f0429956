"""The attached console's hold on a cluster (``taskdeck console --attach``): the
:class:`~console.steering.base.Steering` of a console whose engine runs no workers.

It reads the node rows for the Nodes panel, and turns the operator's pool keys into
commands to the nodes: ``]`` / ``[`` / ``w`` go to the node selected in Nodes; ``a``
and settings are saved in the store, so every node takes them (see
:mod:`engine.saved_settings`). Each command is announced when sent and its outcome
when the nodes report it (within :data:`~console.cluster.node_actions.RESULT_WAIT`); a
refused one says why (no node selected, the node is dead, nothing alive). Pausing a
queue and cancelling a task need none of this: they are stored, so every node sees
them.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.widget import Widget

from console.cluster.node_actions import command_text, refusal, report, send
from console.cluster.state import Cluster
from console.cluster.unserved import UnservedWatch
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.header import HeaderBar
from console.panels.nodes import NodesPanel
from console.panels.throughput import ThroughputPanel
from console.panels.workers import WorkersPanel
from console.screens.settings import SettingsScreen
from console.screens.workers import WorkerCountScreen
from console.steering.base import SNAPSHOT_PANELS, EnqueueChoices, HelpGroups, PanelKind, Redraw
from engine import (
    Engine,
    EngineNotRunning,
    EngineSnapshot,
    Finding,
    NodeInfo,
    Settings,
    StoreError,
    node_settings,
)

#: The keys that mean something else when attached (for the help screen).
ATTACHED_KEYS = [
    Binding(
        "right_square_bracket,left_square_bracket",
        "workers",
        "Workers",
        tooltip="One worker more / less on the node selected in Nodes (tab to it, then ↑ ↓)",
    ),
    Binding("w", "set_workers", "Workers…", tooltip="Set the selected node's worker count"),
    Binding("a", "autoscale", "Autoscale", tooltip="Autoscaler on / off on every node (saved)"),
    Binding("s", "settings", "Settings", tooltip="Settings: saved for every node"),
    Binding("p", "queues", "Pause", tooltip="Pause or resume a queue: every node sees it"),
    Binding("c", "cancel", "Cancel", tooltip="Cancel a task: a running one stops on its node"),
    Binding(
        "x",
        "apply_finding",
        "Apply fix",
        tooltip="Apply a suggestion (a node's worker count goes to that node)",
    ),
]
#: How long a worker count just asked for stands in for the node's reported one (so
#: ``]`` pressed twice in a row asks for +2, not +1 twice).
PENDING_FOR = 3.0
#: The nodes in place of this engine's (absent) workers.
ATTACHED_PANELS = tuple(NodesPanel if p is WorkersPanel else p for p in SNAPSHOT_PANELS)
#: What a read of the node rows refreshes.
CLUSTER_PANELS: tuple[PanelKind, ...] = (HeaderBar, NodesPanel, ThroughputPanel, BottlenecksPanel)


class AttachedSteering:
    """Steers the nodes on the engine's store; the engine itself runs no workers."""

    def __init__(self, app: App[Any], engine: Engine, redraw: Redraw) -> None:
        """``redraw`` shows a fresh read of the nodes (and is asked to after a node
        carried a command out)."""
        self.app = app
        self.engine = engine
        self.redraw = redraw
        self.attached = True
        self.cluster = Cluster()
        self.panels = ATTACHED_PANELS
        self.dashboard_class = "-attached"
        self.resources_title: str | None = "Resources (console)"
        self.help_groups: HelpGroups = [("Attached to a cluster", list(ATTACHED_KEYS))]
        self.sent_settings: dict[str, tuple[Any, float]] = {}  # name: (value, when sent)
        self._pending: dict[str, tuple[int, float]] = {}
        self._nodes: NodesPanel | None = None
        self._reading = False
        self.unserved = UnservedWatch(engine, self.cluster)

    def pool_panel(self) -> Widget:
        self._nodes = NodesPanel(self.cluster, id="nodes", classes="panel")
        return self._nodes

    def snapshot(self) -> EngineSnapshot:
        """The engine's snapshot, with the nodes' own findings joining what the store
        shows."""
        snap = self.engine.snapshot()
        return replace(snap, findings=self.cluster.findings(snap.findings))

    def refresh(self) -> None:
        """Read the node rows in the background, then redraw what shows them; a read
        still under way is not doubled (a slow store gets one read at a time)."""
        if self._reading or not self.engine.running:
            return
        self._reading = True
        self.app.run_worker(self._read(), group="nodes")

    async def _read(self) -> None:
        try:
            await self.read_nodes()
        except (StoreError, EngineNotRunning):
            return  # the next tick tries again; the store error shows as a finding
        finally:
            self._reading = False
        self.redraw(CLUSTER_PANELS)

    async def read_nodes(self) -> None:
        self.cluster.update(await self.engine.nodes(), time.time())
        await self.unserved.read()

    async def enqueue_choices(self) -> EnqueueChoices:
        """The handlers stored tasks name (this engine registers none) and those the
        alive nodes run."""
        known: list[str] = []
        if not self.engine.handlers:
            with contextlib.suppress(StoreError, EngineNotRunning):  # suggestions only
                known = sorted({t.handler for t in await self.engine.tasks(limit=500)})
        return EnqueueChoices(known, self.cluster.served())

    def settings_screen(self, refresh_hz: float) -> SettingsScreen:
        return SettingsScreen(
            self.engine, refresh_hz, base=self.settings_base(), send=self.send_settings
        )

    # -- one node's workers -------------------------------------------------------
    def selected(self) -> NodeInfo | None:
        """The node under the Nodes panel's cursor, or None (with a toast saying why)
        when it cannot take a command."""
        node = self._nodes.selected if self._nodes is not None else None
        reason = refusal(node, time.time())
        if reason is not None:
            self.app.notify(reason, severity="warning")
            return None
        return node

    def workers_of(self, node: NodeInfo) -> int:
        """The node's worker count, or the one just asked for if it has not shown yet."""
        target, at = self._pending.get(node.id, (node.workers, 0.0))
        return target if time.monotonic() - at < PENDING_FOR else node.workers

    def max_workers(self) -> int:
        return self.engine.settings.max_workers

    async def change_workers(self, delta: int) -> None:
        node = self.selected()
        if node is None:
            return
        current = self.workers_of(node)
        target = current + delta
        if target < 0:
            self.app.notify(f"{node.id}: workers already at 0", severity="warning")
            return
        if target > self.max_workers():
            self.app.notify(
                f"{node.id}: workers already at the maximum ({self.max_workers()}, max_workers)",
                severity="warning",
            )
            return
        await self.set_workers(node, target)

    def ask_workers(self) -> None:
        node = self.selected()
        if node is None:
            return

        def chosen(n: int | None) -> None:
            if n is not None:
                self.app.run_worker(self.set_workers(node, n), group="workers")

        screen = WorkerCountScreen(self.workers_of(node), self.max_workers(), node=node.id)
        self.app.push_screen(screen, chosen)

    async def set_workers(self, node: NodeInfo, n: int) -> None:
        """Send ``set_workers n`` to ``node``; toast it, then what the node did."""
        self._pending[node.id] = (n, time.monotonic())
        command_id = await self._send("set_workers", {"n": n}, [node])
        if command_id is None:
            self._pending.pop(node.id, None)
            return
        done = await report(self.app, self.engine, command_id, "set_workers", [node.id])
        if not any(r.ok for r in done):
            self._pending.pop(node.id, None)
        elif node.snapshot.get("autoscale"):
            self.app.notify(f"{node.id}: its autoscaler is on and may change this", timeout=4)
        self.refresh()

    # -- every node -----------------------------------------------------------------
    async def toggle_autoscale(self) -> None:
        alive = list(self.cluster.alive)
        if not alive:
            self.app.notify("no node is alive: no autoscaler to switch", severity="warning")
            return
        on = not all(n.snapshot.get("autoscale") for n in alive)
        try:
            done = await self.send_settings({"autoscale": on})
        except ValueError as exc:
            self.app.notify(f"not saved: {exc}", severity="error")
            return
        self.app.notify(f"{done}: autoscale={on}", timeout=3)
        self.refresh()

    def _sent(self, changes: dict[str, Any]) -> None:
        now = time.monotonic()
        self.sent_settings.update({name: (value, now) for name, value in changes.items()})

    def settings_base(self) -> Settings:
        """What the settings form starts from: the settings every alive node reports
        alike (where they differ, or a node's cannot be read, this console's own), with
        what this console sent in the last few seconds on top (the nodes may not have
        reported it yet)."""
        reported = [node_settings(n) for n in self.cluster.alive]
        base = self.engine.settings
        if reported and all(s is not None for s in reported):
            first, *others = [s for s in reported if s is not None]
            base = base.replace(
                **{
                    name: value
                    for name, value in first.as_dict().items()
                    if all(getattr(s, name) == value for s in others)
                }
            )
        now = time.monotonic()
        recent = {n: v for n, (v, at) in self.sent_settings.items() if now - at < PENDING_FOR}
        return base.replace(**recent)

    async def send_settings(self, changes: dict[str, Any]) -> str:
        """Save changed settings for every node (the running ones take them within a
        second, the others when they start); raises ValueError when the store refuses
        them."""
        try:
            await self.engine.update_settings(**changes)
        except (ValueError, TypeError, LookupError, RuntimeError) as exc:
            raise ValueError(str(exc)) from None
        self._sent(changes)
        return f"saved for every node ({len(self.cluster.alive)} alive)"

    async def handles(self, finding: Finding) -> bool:
        """Carry out a finding's suggestion where it belongs; False for one the console
        applies itself (a queue pause is stored: every node sees it).

        A node's worker-count suggestion goes to that node. One of the console's own
        has no node to go to (this console runs no workers), so it says where that is
        done instead; so does a suggestion for a node that is no longer alive."""
        if finding.action is None or finding.action[0] != "set_workers":
            return False
        node = self.cluster.find(finding.node) if finding.node is not None else None
        if node is None:
            self.app.notify(
                "attached: choose a node in Nodes and use ] [ w to change its workers",
                severity="warning",
            )
            return True
        reason = refusal(node, time.time())
        if reason is not None:
            self.app.notify(reason, severity="warning")
            return True
        await self.set_workers(node, int(finding.action[1]["n"]))
        return True

    async def _send(
        self, action: str, args: dict[str, Any], nodes: list[NodeInfo], *, every: bool = False
    ) -> int | None:
        target = "*" if every else nodes[0].id
        try:
            command_id = await send(self.engine, action, args, target)
        except (ValueError, TypeError, LookupError, RuntimeError) as exc:
            self.app.notify(f"not sent: {exc}", severity="error")
            return None
        where = f"every node ({len(nodes)} alive)" if every else nodes[0].id
        self.app.notify(f"{where}: {command_text(action, args)} sent", timeout=3)
        return command_id
