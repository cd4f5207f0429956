"""Settings as a part: what is in force here, the runtime changes saved in the store,
and where each value comes from.

A change made with ``update_settings`` (the console, ``taskdeck settings set``, your
program) is saved in the store with who made it (OS user and host, process id,
interface) and when, and every node on the store takes it: the running ones within a
heartbeat (the change and an ``update_settings`` command to every node are one
transaction, so the node command channel carries it), the ones started later when
they start. ``reset`` removes a saved change; each node goes back to its own value
below it (``reset_settings`` command). A command sent to one node (``taskdeck node
NODE settings``) changes that node only, until it restarts: it is not saved.

The layers, lowest first: the defaults < the file < the environment < command-line
flags (:class:`engine.config.Config`) < values given to ``Engine(...)`` in code < the
saved runtime changes. An engine that is not running has no store to save to: a
change then holds for that Engine object only, as if given to ``Engine(...)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.audit import Audit
from engine.errors import SettingsError
from engine.events import EventBus, EventKind
from engine.model import NodeCommand, SavedSetting
from engine.routes import Routes
from engine.settings import SPEC_BY_NAME, Settings, suggest, validate_value
from engine.state import EngineState
from engine.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SettingInfo:
    """One setting: its value in force here and where that comes from (``source``:
    default, file, env, flag, code or runtime); ``reset_to`` and ``reset_from``: the
    value below a runtime change and its source (what a reset goes back to); for a
    runtime change, who made it (``user@host``, process id, interface) and when (Unix
    seconds)."""

    name: str
    value: Any
    source: str
    default: Any
    reset_to: Any
    reset_from: str
    changed_by: str | None = None
    changed_at: float | None = None
    pid: int | None = None
    interface: str | None = None


def as_json(value: Any) -> str:
    """A setting's value as JSON (a limit map as an object; routes keep their order)."""
    ordered = isinstance(value, Routes)
    return json.dumps(dict(value) if isinstance(value, Mapping) else value, sort_keys=not ordered)


def shown(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


class SavedSettings:
    """``update_settings``, ``reset_settings`` and ``settings_info``; loads the saved
    changes when the engine starts (or a client opens the store), and applies the
    changes other nodes announce."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        bus: EventBus,
        clock: Callable[[], float],
        set_workers: Callable[[int], Awaitable[int]],
        audit: Audit,
    ) -> None:
        self._state = state
        self._audit = audit
        self._store = store
        self._bus = bus
        self._clock = clock
        self._set_workers = set_workers

    async def update(self, changes: Mapping[str, Any]) -> Settings:
        """Change settings, all or nothing (``SettingsError`` names every bad one); saved
        for every node while the engine runs."""
        state = self._state
        new = state.settings.replace(**changes)
        values = {name: getattr(new, name) for name in changes}
        if not state.running:  # no store: like values given to Engine(...)
            state.layers.code.update(values)
        elif values:
            state.require_writable("change settings")
            actor, now = state.actor, self._clock()
            rows = [
                SavedSetting(n, as_json(v), now, actor.who, actor.pid, actor.interface)
                for n, v in values.items()
            ]
            args = json.dumps({n: json.loads(r.value) for n, r in zip(values, rows, strict=True)})
            async with self._audit.action("update_settings", f"settings {shown(values)}"):
                await self._store.save_settings(rows, (), ("update_settings", args, str(actor)))
        await self.apply(new)
        return new

    async def reset(self, names: Sequence[str]) -> Settings:
        """Remove the saved changes of ``names``: each goes back to its value below the
        runtime changes (file, environment, flag, code or default), on every node."""
        if not names:
            raise ValueError("name at least one setting to reset")
        unknown = {n: "unknown setting" + suggest(n, list(SPEC_BY_NAME)) for n in names}
        unknown = {n: text for n, text in unknown.items() if n not in SPEC_BY_NAME}
        if unknown:
            raise SettingsError(unknown)
        state = self._state
        state.require_writable("reset settings")
        base = state.layers.settings()
        new = state.settings.replace(**{n: getattr(base, n) for n in names})
        args = json.dumps({"names": list(names)})
        async with self._audit.action("reset_settings", f"settings {', '.join(names)}") as outcome:
            await self._store.save_settings(
                (), list(names), ("reset_settings", args, str(state.actor))
            )
            outcome.text = "back to " + shown({n: getattr(new, n) for n in names})
        await self.apply(new)
        return new

    async def info(self) -> list[SettingInfo]:
        """Every setting: value in force here, source, default, what a reset goes back
        to, and who changed it at runtime and when (read from the store)."""
        state = self._state
        state.require_running()
        rows = await self._store.saved_settings()
        saved = {r.name: r for r in rows if r.name in _usable(rows, quiet=True)}
        base = state.layers.settings()
        out = []
        for spec, value in state.settings:
            row = saved.get(spec.name)
            below = state.layers.source(spec.name)
            info = SettingInfo(
                spec.name, value, below, spec.default, getattr(base, spec.name), below
            )
            if row is not None:
                info = replace(
                    info,
                    source="runtime",
                    changed_by=row.changed_by,
                    changed_at=row.changed_at,
                    pid=row.pid,
                    interface=row.interface,
                )
            out.append(info)
        return out

    async def load(self) -> None:
        """The saved runtime changes, on top of the layers below (at start, and when a
        client opens the store). One that this version cannot use is logged and left
        out."""
        state = self._state
        rows = await self._store.saved_settings()
        base = state.layers.settings()
        values = _usable(rows)
        try:
            new = base.replace(**values)
        except SettingsError as exc:  # values fine alone that do not fit together
            log.warning("saved settings left out (they do not fit together): %s", exc)
            values = {n: v for n, v in values.items() if n not in exc.errors}
            new = base.replace(**values) if values else base
        for row in rows:
            source = state.layers.source(row.name)
            if row.name in values and source != "default":
                log.info(
                    "setting %s = %s was changed at runtime by %s (%s); it overrides the %s "
                    "value %s (taskdeck settings reset %s goes back to it)",
                    row.name, row.value, row.changed_by, row.interface, source,
                    as_json(getattr(base, row.name)), row.name,
                )  # fmt: skip
        await self.apply(new)

    async def on_command(self, command: NodeCommand) -> str:
        """A change another process announced (or an operator sent to this node only):
        apply it here, without saving."""
        state, args = self._state, command.args
        if command.action == "update_settings":
            await self.apply(state.settings.replace(**args))
            return "settings: " + shown(args)
        names = args.get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"reset_settings needs names=[…]; got {dict(args)!r}")
        base = state.layers.settings()
        await self.apply(state.settings.replace(**{n: getattr(base, n) for n in names}))
        return "settings reset: " + shown({n: getattr(base, n) for n in names})

    async def apply(self, new: Settings) -> None:
        """Put ``new`` in force here: the event buffer, the store's timeouts, the worker
        count under ``max_workers``; a ``SETTINGS_CHANGED`` event names what changed."""
        state = self._state
        old, state.settings = state.settings, new
        self._bus.default_maxsize = new.event_buffer
        state.configure_store()
        if state.worker_count > new.max_workers:
            await self._set_workers(new.max_workers)
        state.kick()
        before = old.as_dict()
        changed = {k: v for k, v in new.as_dict().items() if before[k] != v}
        if changed:
            self._bus.emit(EventKind.SETTINGS_CHANGED, message=shown(changed), data=changed)


def _usable(rows: Sequence[SavedSetting], quiet: bool = False) -> dict[str, Any]:
    """The saved values this version can use, by name (the others are logged unless
    ``quiet``)."""
    values: dict[str, Any] = {}
    for row in rows:
        spec = SPEC_BY_NAME.get(row.name)
        try:
            if spec is None:
                raise SettingsError({row.name: "unknown setting (saved by another version?)"})
            values[row.name] = validate_value(spec, json.loads(row.value))
        except ValueError as exc:  # a SettingsError, or not JSON
            if not quiet:
                log.warning("saved setting %s = %s left out: %s", row.name, row.value, exc)
    return values
