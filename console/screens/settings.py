"""Every runtime setting with its doc, default and unit, and where its value comes
from (default, file, env, flag, code or runtime: for a runtime change, who made it and
when); validated together and applied all or nothing, saved in the store for every
node. Also the console's own refresh rate.

Attached to a cluster, the form starts from the settings the nodes report and hands
the changed ones to ``send`` (which saves them for every node).

| Key | Does |
| --- | --- |
| ctrl+s | apply (nothing changes if any field is invalid; each bad field says why) |
| ctrl+r | reset the focused setting: its runtime change is removed, on every node |
| escape | close without applying |
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static, Switch

from console.format import ago
from console.screens.compact import CompactForm
from engine import (
    Engine,
    EngineNotRunning,
    SettingInfo,
    Settings,
    SettingsError,
    SettingSpec,
    StoreError,
)

REFRESH = "console_refresh_hz"
REFRESH_RANGE = (0.5, 10.0)


def default_text(spec: SettingSpec) -> str:
    if spec.limit is not None:
        return str(spec.default) or "none"
    if spec.kind is bool:
        return "on" if spec.default else "off"
    if spec.kind is str:
        return str(spec.default)
    unit = f" {spec.unit}" if spec.unit else ""
    return f"{spec.default:g}{unit}"


def value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def source_text(info: SettingInfo, spec: SettingSpec, now: float) -> str:
    """``runtime · root@vm (console), 2m ago · ctrl+r: back to 20 s (file)``, or ``file``."""
    if info.source != "runtime":
        return info.source
    back = f"{_with_unit(spec, info.reset_to)} ({info.reset_from})"
    when = f", {ago(now - info.changed_at)} ago" if info.changed_at is not None else ""
    return f"runtime · {info.changed_by} ({info.interface}){when} · ctrl+r: back to {back}"


def _with_unit(spec: SettingSpec, value: Any) -> str:
    if spec.limit is not None:
        return str(value) or "none"
    if spec.kind is bool:
        return "on" if value else "off"
    return f"{value_text(value)} {spec.unit}".strip()


class SettingsScreen(CompactForm[float | None]):
    """Dismisses with the new console refresh rate (or None if it did not change)."""

    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply", priority=True),
        Binding(
            "ctrl+r",
            "reset",
            "Reset one",
            priority=True,
            tooltip="Reset the focused setting: its runtime change removed, on every node",
        ),
        Binding("escape", "close", "Close"),
    ]

    def __init__(
        self,
        engine: Engine,
        refresh_hz: float,
        *,
        base: Settings | None = None,
        send: Callable[[dict[str, Any]], Awaitable[str]] | None = None,
    ) -> None:
        """``base``: the values the form starts from (default: the engine's settings);
        ``send``: carries the changes out instead of ``engine.update_settings`` and
        returns what it did ("saved for every node"); a ValueError keeps the form open."""
        super().__init__()
        self.engine = engine
        self.refresh_hz = refresh_hz
        self.base = base
        self.send = send
        self.infos: dict[str, SettingInfo] = {}  # read from the store when the form opens

    @property
    def current(self) -> Settings:
        return self.base if self.base is not None else self.engine.settings

    def compose(self) -> ComposeResult:
        current = self.current
        with Vertical(classes="dialog wide tall"):
            yield Static(
                "Settings · ctrl+s applies all or nothing, for every node · ctrl+r resets the "
                "focused one · esc closes",
                classes="dialog-title",
            )
            with VerticalScroll(id="settings-list"):
                with Vertical(classes="setting"):
                    yield Label(f"[b]{REFRESH}[/b]  (console only)")
                    yield Input(value_text(self.refresh_hz), id=f"in-{REFRESH}")
                    yield Static(
                        f"How often the dashboard refreshes. Default 2 Hz; from "
                        f"{REFRESH_RANGE[0]:g} to {REFRESH_RANGE[1]:g}.",
                        classes="doc",
                    )
                    yield Static("", id=f"err-{REFRESH}", classes="error")
                for spec, value in current:
                    with Vertical(classes="setting"):
                        yield Label(f"[b]{spec.name}[/b]", id=f"name-{spec.name}")
                        if spec.kind is bool:
                            yield Switch(bool(value), id=f"in-{spec.name}")
                        elif spec.choices:
                            yield Select(
                                [(c, c) for c in spec.choices],
                                value=value,
                                allow_blank=False,
                                id=f"in-{spec.name}",
                            )
                        else:
                            yield Input(value_text(value), id=f"in-{spec.name}")
                        yield Static(
                            f"{spec.doc} Default {default_text(spec)}; {spec.describe_range()}.",
                            classes="doc",
                        )
                        yield Static("", id=f"err-{spec.name}", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Apply (ctrl+s)", id="apply", variant="primary")
                yield Button("Close (esc)", id="close")

    def on_mount(self) -> None:
        self.load_sources()

    @work(exclusive=True, group="settings-sources")
    async def load_sources(self) -> None:
        """Where each value comes from, and who changed it at runtime (from the store)."""
        try:
            infos = await self.engine.settings_info()
        except (StoreError, EngineNotRunning):
            return  # the form works without them
        self.infos = {info.name: info for info in infos}
        now = time.time()
        for spec, _ in self.current:
            info = self.infos.get(spec.name)
            if info is not None:
                label = self.query_one(f"#name-{spec.name}", Label)
                label.update(f"[b]{spec.name}[/b]  [i]{source_text(info, spec, now)}[/i]")

    def action_reset(self) -> None:
        """Reset the setting whose field has the focus (its runtime change removed)."""
        focused = self.focused
        name = (focused.id or "").removeprefix("in-") if focused is not None else ""
        if name not in self.infos and name not in {spec.name for spec, _ in self.current}:
            self.app.notify("move to a setting's field first (tab), then ctrl+r", timeout=3)
            return
        self.reset(name)

    @work(exclusive=True, group="settings-reset")
    async def reset(self, name: str) -> None:
        try:
            new = await self.engine.reset_settings(name)
        except (ValueError, StoreError, EngineNotRunning) as exc:
            self.app.notify(f"{name} not reset: {exc}", severity="error")
            return
        info = self.infos.get(name)
        value = info.reset_to if info is not None and self.base is not None else getattr(new, name)
        if self.base is not None:
            self.base = self.base.replace(**{name: value})
        self._show(name, value)
        spec = next(spec for spec, _ in self.current if spec.name == name)
        self.app.notify(f"{name} reset to {_with_unit(spec, value)}, for every node")
        self.load_sources()

    def _show(self, name: str, value: Any) -> None:
        """Put ``value`` in the setting's field."""
        widget = self.query_one(f"#in-{name}")
        if isinstance(widget, Switch):
            widget.value = bool(value)
        elif isinstance(widget, Select):
            widget.value = value
        elif isinstance(widget, Input):
            widget.value = value_text(value)

    def _texts(self) -> dict[str, str]:
        """Every engine setting's field, as text (only the ones that differ matter)."""
        out = {}
        for spec, value in self.current:
            widget = self.query_one(f"#in-{spec.name}")
            if isinstance(widget, Switch):
                text = "true" if widget.value else "false"
            elif isinstance(widget, Select):
                text = str(widget.value)
            else:
                text = widget.value if isinstance(widget, Input) else ""
            current = ("true" if value else "false") if spec.kind is bool else value_text(value)
            if text.strip() != current:
                out[spec.name] = text
        return out

    @on(Button.Pressed, "#apply")
    async def _apply_pressed(self) -> None:
        await self.run_action("apply")  # as ctrl+s: a read-only console refuses it

    def action_apply(self) -> None:
        for error in self.query(".error").results(Static):
            error.update("")
        errors: dict[str, str] = {}
        refresh = self._refresh_value(errors)
        texts = self._texts()
        new: Settings | None = None
        try:
            new = Settings.from_texts(texts, base=self.current)
        except SettingsError as exc:
            errors.update(exc.errors)
        if errors:
            for name, message in errors.items():
                self.query_one(f"#err-{name}", Static).update(message)
            self._show_first_error(errors)
            self.app.notify(
                f"nothing changed: {len(errors)} invalid setting{'s' if len(errors) > 1 else ''}",
                severity="error",
            )
            return
        assert new is not None
        changes = {k: getattr(new, k) for k in texts}
        self.apply(changes, refresh)

    def _show_first_error(self, errors: dict[str, str]) -> None:
        """Focus the first refused field (in form order) and scroll its message into
        view: it may be far down the list, below the screen."""
        order = [REFRESH, *(spec.name for spec, _ in self.current)]
        first = next(name for name in order if name in errors)
        self.query_one(f"#in-{first}").focus(scroll_visible=False)
        setting = self.query_one(f"#err-{first}", Static).parent  # label, field, doc, error
        assert setting is not None
        self.call_after_refresh(
            self.query_one("#settings-list", VerticalScroll).scroll_to_center,
            setting,
            animate=False,
        )

    def _refresh_value(self, errors: dict[str, str]) -> float | None:
        text = self.query_one(f"#in-{REFRESH}", Input).value.strip()
        low, high = REFRESH_RANGE
        try:
            hz = float(text)
        except ValueError:
            errors[REFRESH] = f"must be a number from {low:g} to {high:g} Hz; got {text!r}"
            return None
        if not low <= hz <= high:
            errors[REFRESH] = f"must be from {low:g} to {high:g} Hz; got {text}"
            return None
        return None if hz == self.refresh_hz else hz

    @work(exclusive=True)
    async def apply(self, changes: dict[str, Any], refresh: float | None) -> None:
        done = "applied and saved for every node"
        if changes and self.send is not None:
            try:
                done = await self.send(changes)
            except ValueError as exc:
                self.app.notify(f"nothing changed: {exc}", severity="error")
                return
        elif changes:
            await self.engine.update_settings(**changes)
        parts = [f"{k}={value_text(v)}" for k, v in changes.items()]
        if refresh is not None:
            parts.append(f"refresh {refresh:g} Hz")
        self.app.notify(f"{done}: " + ", ".join(parts) if parts else "nothing to change")
        self.dismiss(refresh)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
