"""How the console steers and reads, declared once for both of its modes.

The console either runs an engine in this process
(:class:`console.steering.local.LocalSteering`) or is attached to the nodes working
on a store (``console --attach``: :class:`console.steering.attached.AttachedSteering`).
The app, its panels and its
screens talk to a :class:`Steering` and do not ask which one it is.

Commands that are stored mean the same in both modes, so they are the engine's own
public methods on :attr:`Steering.engine`: enqueue, cancel, retry, reprioritize,
pause and resume a queue, schedules, task pages. What differs is declared here: the
snapshot the panels show, the worker count and the autoscaler (this engine's, or a
command to the nodes), the settings form (applied here, or sent to every node), a
bottleneck's fix, what the enqueue form suggests, and the panel beside the queue.
Where a capability exists in one mode only, the other says so in a toast (for
example enqueueing with no handlers registered, here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from textual.binding import BindingType
from textual.widget import Widget

from console.cluster.state import Cluster
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.events import EventsPanel
from console.panels.header import HeaderBar
from console.panels.nodes import NodesPanel
from console.panels.queue import QueuePanel
from console.panels.resources import ResourcesPanel
from console.panels.text_panel import TextPanel
from console.panels.throughput import ThroughputPanel
from console.panels.workers import WorkersPanel
from console.screens.settings import SettingsScreen
from engine import Engine, EngineSnapshot, Finding

PanelKind = type[HeaderBar | QueuePanel | TextPanel | BottlenecksPanel | EventsPanel | NodesPanel]
#: Redraws the given dashboard panels from a fresh snapshot (when the dashboard shows).
Redraw = Callable[[tuple[PanelKind, ...]], None]
HelpGroups = list[tuple[str, list[BindingType]]]

#: The panels fed from each snapshot, in the order they are updated.
SNAPSHOT_PANELS: tuple[PanelKind, ...] = (
    HeaderBar,
    QueuePanel,
    WorkersPanel,
    ResourcesPanel,
    ThroughputPanel,
    BottlenecksPanel,
    EventsPanel,
)


@dataclass(frozen=True)
class EnqueueChoices:
    """What the enqueue form suggests besides the engine's own handlers."""

    known: list[str]  # handler names seen on stored tasks
    served: frozenset[str] | None  # the handlers the alive nodes run (None: unknown)


class Steering(Protocol):
    """What the console needs to steer and read, in either mode."""

    @property
    def engine(self) -> Engine:
        """The engine: stored commands and reads, the same in both modes."""

    @property
    def attached(self) -> bool:
        """True when the work runs on other nodes (quitting leaves them running)."""

    @property
    def cluster(self) -> Cluster | None:
        """The nodes as last read from the store (None: not attached)."""

    @property
    def panels(self) -> tuple[PanelKind, ...]:
        """The dashboard panels fed from each snapshot."""

    @property
    def dashboard_class(self) -> str:
        """The CSS class of the dashboard's top row."""

    @property
    def resources_title(self) -> str | None:
        """The Resources panel's title (None: its default)."""

    @property
    def help_groups(self) -> HelpGroups:
        """Key groups the help screen shows first (the keys that mean something else)."""

    def pool_panel(self) -> Widget:
        """The panel beside the queue: this engine's workers, or the nodes."""

    def snapshot(self) -> EngineSnapshot:
        """What the panels show (cheap: called on every refresh)."""

    def refresh(self) -> None:
        """Read what the snapshot does not carry (on every refresh; must not block)."""

    async def change_workers(self, delta: int) -> None:
        """One worker more or fewer (``]`` / ``[``), with a toast saying what happened."""

    def ask_workers(self) -> None:
        """Open the worker-count dialog (``w``) and carry out the answer."""

    async def toggle_autoscale(self) -> None:
        """Switch the autoscaler on or off (``a``)."""

    def settings_screen(self, refresh_hz: float) -> SettingsScreen:
        """The settings form (``s``)."""

    async def enqueue_choices(self) -> EnqueueChoices | None:
        """What the enqueue form suggests; None (after a toast saying why) when there is
        nothing to enqueue."""

    async def handles(self, finding: Finding) -> bool:
        """Carry out a finding's suggestion if it is this mode's to carry out; False for
        one the engine applies itself (``Engine.apply_action``)."""
