"""The command palette (ctrl+p): every action of the console, found by name.

Generated from the app's bindings (so a new key is in the palette too), plus a few
commands that have no key, such as the refresh rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.screens.help import describe


class ActionsProvider(Provider):
    def _commands(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        app = self.app
        seen = set()
        for binding in getattr(app, "BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.description:
                continue
            name = describe(binding)
            if name in seen:
                continue
            seen.add(name)
            key = binding.key_display or binding.key
            yield name, f"key: {key}", partial(app.run_action, binding.action)
        for hz in (1, 2, 4):
            yield (
                f"Refresh {hz} Hz",
                "how often the dashboard redraws",
                partial(app.run_action, f"set_refresh_rate({hz})"),
            )

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
