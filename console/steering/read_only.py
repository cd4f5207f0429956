"""The read-only console's hold on a store (``taskdeck console --read-only``).

It watches like the attached console (:class:`~console.steering.attached.AttachedSteering`:
the Nodes panel, the nodes' rates and findings) on an engine opened with
``engine.client(read_only=True)``: no workers, services, node row or heartbeat. Such an
engine has no monitor reading the counts each second, so every refresh reads them
(and the pauses) from the store as well. The keys that would change something never
reach it: the app refuses them (:mod:`console.read_only`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from textual.app import App
from textual.binding import Binding

from console.steering.attached import AttachedSteering
from console.steering.base import Redraw
from engine import Engine, EngineNotRunning, StoreError

#: What the help screen shows first.
READ_ONLY_KEYS = [
    Binding(
        "e,c,+,-,r,],[,w,a,x,P",
        "noop",
        "Refused: this console changes nothing (so are the change keys of every screen)",
    ),
    Binding("p,s,f,t,A", "noop", "Open to look: pausing, applying, retrying there is refused"),
]


class ReadOnlySteering(AttachedSteering):
    """Watches the nodes and the counts of a store opened read-only."""

    def __init__(self, app: App[Any], engine: Engine, redraw: Redraw) -> None:
        super().__init__(app, engine, redraw)
        self.help_groups = [("Read-only console", list(READ_ONLY_KEYS))]

    async def read_nodes(self) -> None:
        # The snapshot's counts and pauses, fresh (the nodes' read below says whether
        # the store is gone).
        with contextlib.suppress(StoreError, EngineNotRunning):
            await self.engine.counts()
        await super().read_nodes()
