"""Engine settings: documented, validated all-or-nothing, changeable at runtime.

Every setting has a doc line, a default and a unit. Durations are seconds (float)
everywhere. ``Settings(**values)`` and ``settings.replace(**changes)`` validate
every field at once and raise :class:`~engine.errors.SettingsError` naming *each*
bad field (with a "did you mean" for unknown names); nothing is half-applied.
Sources: keyword arguments, environment variables (``TASKDECK_LEASE_TTL=30``) and a
TOML file (top level or a ``[taskdeck]`` table); :mod:`engine.config` layers
``taskdeck.toml``, the environment and ``--set`` flags, and
:mod:`engine.saved_settings` the runtime changes saved in the store, on top.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_origin, get_type_hints

from engine.errors import SettingsError
from engine.limits import (
    HANDLER_RATES,
    QUEUE_COUNTS,
    QUEUE_RATES,
    QUEUE_WEIGHTS,
    LimitKind,
    LimitMap,
)
from engine.routes import ROUTES, Routes

log = logging.getLogger(__name__)

ENV_PREFIX = "TASKDECK_"
#: Environment variables with our prefix that belong to the CLI, not to Settings.
CLI_ENV = frozenset({"KEY", "KEY_FILE", "STORE", "APP", "WORKERS", "CONFIG"})
CLI_ENV |= {"HTTP_READ_TOKENS", "HTTP_WRITE_TOKENS"}  # the HTTP endpoint's tokens


@dataclass(frozen=True)
class SettingSpec:
    """What one setting is: its type, default, unit, bounds and documentation."""

    name: str
    kind: type
    default: Any
    unit: str
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    limit: LimitKind | None = None  # a name → limit map (flow control)

    def describe_range(self) -> str:
        if self.limit is not None:
            return (
                f"{self.limit.keys}=value pairs separated by commas, e.g. "
                f"'{self.limit.example}'; empty for none"
            )
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        unit = f" {self.unit}" if self.unit else ""
        assert self.low is not None and self.high is not None
        return f"from {_plain(self.low)} to {_plain(self.high)}{unit}"


def _plain(number: float) -> str:
    """``86400``, ``0.5``: never ``3.1536e+07``."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


T = TypeVar("T")


def setting(
    default: T,
    unit: str,
    doc: str,
    low: float | None = None,
    high: float | None = None,
    *,
    choices: tuple[str, ...] = (),
    limit: LimitKind | None = None,
) -> T:
    """Declare one :class:`Settings` field: its default, unit, doc line and bounds
    (``low``..``high`` for numbers, ``choices`` for text, ``limit`` for a limit map)."""
    meta = {"unit": unit, "doc": doc, "low": low, "high": high, "choices": choices, "limit": limit}
    found: T = dataclasses.field(default=default, metadata=meta)
    return found


def suggest(name: str, options: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or ``""``."""
    close = difflib.get_close_matches(name, list(options), n=2, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def _check(spec: SettingSpec, value: Any) -> tuple[Any, str | None]:
    """Return (normalised value, error or None)."""
    if spec.limit is not None:
        try:
            return spec.limit.parse(value), None
        except (TypeError, ValueError) as exc:
            return value, f"{exc}"
    if spec.kind is bool:
        if not isinstance(value, bool):
            return value, f"must be true or false; got {value!r}"
        return value, None
    if spec.kind is str:
        if not isinstance(value, str) or value not in spec.choices:
            return value, f"must be {spec.describe_range()}; got {value!r}"
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, f"must be a number {spec.describe_range()}; got {type(value).__name__}"
    if spec.kind is int and (isinstance(value, float) and not value.is_integer()):
        return value, f"must be a whole number {spec.describe_range()}; got {value!r}"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return value, f"must be a finite number {spec.describe_range()}; got {value!r}"
    number = spec.kind(value)
    assert spec.low is not None and spec.high is not None
    if not (spec.low <= number <= spec.high):
        return value, f"must be {spec.describe_range()}; got {value!r}"
    return number, None


def parse_text(spec: SettingSpec, text: str) -> Any:
    """Text (from a form, the CLI or the environment) as ``spec``'s type, not yet
    range-checked; :class:`SettingsError` when it cannot be read as that type."""
    raw = text.strip()
    if spec.kind is str or spec.limit is not None:
        return raw
    if spec.kind is bool:
        flag = raw.lower()
        if flag in ("true", "yes", "on", "1"):
            return True
        if flag in ("false", "no", "off", "0"):
            return False
        raise SettingsError({spec.name: f"must be true or false (or on/off); got {text!r}"})
    try:
        return spec.kind(float(raw)) if spec.kind is float else int(raw.replace("_", ""))
    except ValueError:
        kind = "whole number" if spec.kind is int else "number"
        raise SettingsError(
            {spec.name: f"must be a {kind} {spec.describe_range()}; got {text!r}"}
        ) from None


def validate_value(spec: SettingSpec, value: Any) -> Any:
    """``value`` checked against ``spec`` (normalised), or :class:`SettingsError` with
    the message a setting would get; also checks command-line flags that are not
    settings, so both speak alike."""
    checked, error = _check(spec, value)
    if error is not None:
        raise SettingsError({spec.name: error})
    return checked


def _cross_checks(values: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if values["min_workers"] > values["max_workers"]:
        errors["min_workers"] = (
            f"must not exceed max_workers ({values['max_workers']}); got {values['min_workers']}"
        )
    if values["idle_threshold"] >= values["saturation_threshold"]:
        errors["idle_threshold"] = (
            f"must be below saturation_threshold ({values['saturation_threshold']:g} %); "
            f"got {values['idle_threshold']:g} %"
        )
    if values["lease_renew_interval"] >= values["lease_ttl"]:
        errors["lease_renew_interval"] = (
            f"must be shorter than lease_ttl ({values['lease_ttl']:g} s); "
            f"got {values['lease_renew_interval']:g} s"
        )
    return errors


@dataclass(frozen=True, init=False, repr=False)
class Settings:
    """An immutable, validated set of engine settings: a frozen dataclass, so
    ``dataclasses.replace``/``asdict``/``fields`` and ``copy.deepcopy`` work.

    Each setting is declared once, here: its type (the annotation), default, unit,
    documentation and bounds (:func:`setting`); :data:`SPECS` is read from these fields.
    """

    # fmt: off
    max_workers: int = setting(256, "workers",
        "Upper bound for the worker count (set_workers, autoscaler).", 1, 4096)
    claim_batch: int = setting(100, "tasks",
        "Most tasks claimed in one store transaction.", 1, 1000)
    prefetch: int = setting(100, "tasks",
        "Tasks claimed ahead and held ready beyond the running ones while work is "
        "backed up, so a small pool claims in batches (0: claim only for idle "
        "workers). Held tasks are leased; a stop gives them back without using an "
        "attempt.", 0, 10_000)
    prefetch_ttl: float = setting(0.1, "s",
        "Longest a held task waits without the store confirming it is still ours "
        "and its queue not paused (a cancel or pause from another process takes "
        "effect within it).", 0.0, 60.0)
    poll_interval: float = setting(0.5, "s",
        "How often an idle engine looks for work it was not woken for (work made ready "
        "by this or another process on the store wakes it at once).", 0.01, 60.0)
    lease_ttl: float = setting(30.0, "s",
        "How long a running task's lease lasts without renewal; a crashed worker's "
        "tasks run again after this.", 0.5, 86400.0)
    lease_renew_interval: float = setting(10.0, "s",
        "How often a live engine renews the leases of its running tasks "
        "(must be below lease_ttl).", 0.05, 86400.0)
    rescue_interval: float = setting(5.0, "s",
        "How often expired leases are looked for and their tasks requeued.",
        0.05, 3600.0)
    shutdown_grace: float = setting(10.0, "s",
        "How long a graceful stop waits for running tasks before requeuing them "
        "(the stop then takes at most 2 s more).", 0.0, 3600.0)
    result_ttl: float = setting(86400.0, "s",
        "How long succeeded tasks (and their results) are kept.", 0.0, 31_536_000.0)
    failed_ttl: float = setting(604800.0, "s",
        "How long failed and cancelled tasks are kept (the dead-letter set).",
        0.0, 31_536_000.0)
    cleanup_interval: float = setting(60.0, "s",
        "How often expired results are purged.", 0.05, 86400.0)
    cleanup_batch: int = setting(1000, "rows",
        "Most rows purged in one transaction (keeps the writer free).", 1, 100_000)
    max_payload_bytes: int = setting(1_048_576, "bytes",
        "Largest encoded payload or result accepted.", 16, 67_108_864)
    event_buffer: int = setting(10_000, "events",
        "Events held per subscriber before new ones are dropped (and counted).",
        1, 1_000_000)
    progress_interval: float = setting(0.5, "s",
        "How often task progress (and captured task log lines) is saved and broadcast.",
        0.05, 60.0)
    task_log_limit: int = setting(65_536, "bytes",
        "Most log bytes an attempt keeps; past it lines are dropped and one marker line "
        "says how many (0: no task logs).", 0, 16_777_216)
    # -- process workers
    max_tasks_per_child: int = setting(0, "tasks",
        "Tasks a worker process runs before it is replaced by a fresh one (contains "
        "leaks; 0: no limit).", 0, 10_000_000)
    max_memory_per_child: int = setting(0, "bytes",
        "Memory (RSS) over which a worker process is replaced after its current task "
        "(the task is kept; 0: no limit).", 0, 2**48)
    leak_threshold: int = setting(1_048_576, "bytes",
        "Growth of a worker process's memory per task (fitted over its last tasks) "
        "above which a leak is reported, naming the handlers it ran.", 1024, 2**40)
    memory_limit: int = setting(0, "bytes",
        "Memory (RSS) of this engine and its worker processes together above which "
        "a finding lists the top consumers (0: none).", 0, 2**48)
    durability: str = setting("normal", "",
        "normal: survives a process crash; full: also survives power loss "
        "(slower commits).", choices=("normal", "full"))
    busy_timeout: float = setting(5.0, "s",
        "How long a read waits for another process's lock (WAL reads rarely "
        "wait at all); writes and opening the store use lock_timeout.", 0.0, 600.0)
    lock_timeout: float = setting(60.0, "s",
        "How long a write, or opening the store (WAL switch and migrations "
        "together), keeps retrying a locked store before it fails, once.",
        0.0, 3600.0)
    # -- autoscaler
    autoscale: bool = setting(False, "",
        "Let the autoscaler choose the worker count (between min_workers and "
        "max_workers).")
    min_workers: int = setting(1, "workers",
        "Fewest workers the autoscaler keeps.", 0, 4096)
    target_utilization: float = setting(80.0, "%",
        "How busy the autoscaler (and the add-workers advice) aims to keep the "
        "workers.", 5.0, 100.0)
    cpu_threshold: float = setting(85.0, "%",
        "System CPU above which the autoscaler adds no workers (and sheds some).",
        1.0, 100.0)
    memory_threshold: float = setting(90.0, "%",
        "System memory use above which the autoscaler adds no workers (and sheds "
        "some); also where memory pressure is reported.", 1.0, 100.0)
    scale_interval: float = setting(2.0, "s",
        "How often the autoscaler decides.", 0.1, 3600.0)
    cooldown: float = setting(10.0, "s",
        "Least time between two autoscaler changes (no thrashing).", 0.0, 3600.0)
    # -- bottleneck rules
    saturation_threshold: float = setting(90.0, "%",
        "Pool busy share (last 30 s) above which the workers count as saturated.",
        1.0, 100.0)
    idle_threshold: float = setting(20.0, "%",
        "Pool busy share (last 30 s) below which capacity counts as idle.",
        0.0, 100.0)
    loop_lag_threshold: float = setting(0.1, "s",
        "Event-loop lag above which a blocking async handler is looked for.",
        0.001, 60.0)
    cpu_bound_threshold: float = setting(80.0, "%",
        "CPU time as a share of run time above which a thread handler counts as "
        "CPU-bound.", 1.0, 100.0)
    dominance_threshold: float = setting(50.0, "%",
        "Share of all worker busy time above which one handler is reported.",
        1.0, 100.0)
    retry_storm_threshold: float = setting(20.0, "%",
        "Share of a handler's attempts failing in the last minute that makes a "
        "retry storm.", 1.0, 100.0)
    retry_storm_min_failures: int = setting(5, "failures",
        "Fewest failures in the last minute before a retry storm is reported.",
        1, 1_000_000)
    rss_limit: int = setting(0, "bytes",
        "Process memory (RSS) above which memory pressure is reported; 0: only "
        "system memory counts.", 0, 2**48)
    wait_ratio_threshold: float = setting(10.0, "×",
        "How many times longer than they run (p95) a handler's tasks may wait "
        "before it is reported (periodic handlers are not).", 1.0, 1_000_000.0)
    stuck_factor: float = setting(5.0, "×",
        "How many times its handler's p95 run time a task may run before its live "
        "stack is sampled for the stuck finding; 0: never.", 0.0, 1_000_000.0)
    stuck_samples: int = setting(3, "samples",
        "Samples in a row (one a second) on the same line of its handler that make a "
        "task that ran past stuck_factor × p95 stuck.", 2, 3600)
    store_latency_threshold: float = setting(0.2, "s",
        "Store transaction time (p99) above which the store is reported slow.",
        0.001, 60.0)
    webhook_timeout: float = setting(10.0, "s",
        "How long a completion webhook waits for its endpoint before the attempt "
        "counts as failed (it is then retried with backoff).", 0.1, 300.0)
    webhook_allow_private: bool = setting(False, "",
        "Let completion webhooks reach loopback, private, link-local (cloud "
        "metadata), shared and other non-public addresses; off, they are refused "
        "at enqueue and at send time.")
    alert_retention: float = setting(604800.0, "s",
        "How long resolved alerts and the history of alert transitions and "
        "deliveries are kept.", 60.0, 31_536_000.0)
    audit_retention: float = setting(7_776_000.0, "s",
        "How long the audit trail keeps who did what (90 days by default).",
        3600.0, 315_360_000.0)
    history_minutes: float = setting(172_800.0, "s",
        "How long the per-minute metrics history is kept (48 h by default).",
        3600.0, 31_536_000.0)
    history_hours: float = setting(2_592_000.0, "s",
        "How long the per-hour metrics history is kept (30 days by default).",
        86_400.0, 315_360_000.0)
    history_days: float = setting(31_536_000.0, "s",
        "How long the per-day metrics history is kept (365 days by default).",
        604_800.0, 3_153_600_000.0)
    alert_lease_ttl: float = setting(5.0, "s",
        "How long the node that evaluates alert rules holds its lease without "
        "renewing it; another node takes over after this.", 1.0, 300.0)
    # -- flow control (held across every process on the store)
    queue_rate_limits: LimitMap[str] = setting(LimitMap[str](), "",
        "Most tasks started per second/minute/hour in a queue (a token bucket).",
        limit=QUEUE_RATES)
    handler_rate_limits: LimitMap[str] = setting(LimitMap[str](), "",
        "Most tasks of a handler started per period; overrides @task(rate_limit=).",
        limit=HANDLER_RATES)
    queue_concurrency: LimitMap[int] = setting(LimitMap[int](), "",
        "Most tasks of a queue running at once.", limit=QUEUE_COUNTS)
    queue_weights: LimitMap[float] = setting(LimitMap[float](), "",
        "Share of the workers each busy queue gets (unlisted queues weigh 1); with "
        "none, the highest priority runs first whatever its queue.",
        limit=QUEUE_WEIGHTS)
    routes: Routes = setting(Routes(), "",
        "Queues for handlers by name pattern, first match wins, e.g. 'reports.*=reports' "
        "(a handler's own queue= and an enqueue's queue= beat a route).", limit=ROUTES)
    # fmt: on

    def __init__(self, **values: Any) -> None:
        merged = {spec.name: spec.default for spec in SPECS}
        errors: dict[str, str] = {}
        for name, value in values.items():
            spec = SPEC_BY_NAME.get(name)
            if spec is None:
                errors[name] = "unknown setting" + suggest(name, list(SPEC_BY_NAME))
                continue
            merged[name], problem = _check(spec, value)
            if problem:
                errors[name] = problem
        if not errors:
            errors.update(_cross_checks(merged))
        if errors:
            raise SettingsError(errors)
        for name, value in merged.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, validated all-or-nothing."""
        return Settings(**{**self.as_dict(), **changes})

    def as_dict(self) -> dict[str, Any]:
        return {spec.name: getattr(self, spec.name) for spec in SPECS}

    def changed(self) -> dict[str, Any]:
        """Settings that differ from their defaults."""
        return {s.name: getattr(self, s.name) for s in SPECS if getattr(self, s.name) != s.default}

    def __iter__(self) -> Iterator[tuple[SettingSpec, Any]]:
        for spec in SPECS:
            yield spec, getattr(self, spec.name)

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self.changed().items())
        return f"Settings({changed})"

    @staticmethod
    def specs() -> tuple[SettingSpec, ...]:
        return SPECS

    # -- text sources -------------------------------------------------------
    @staticmethod
    def parse(name: str, text: str) -> Any:
        """Turn text (from a form, the CLI or the environment) into a typed value."""
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            raise SettingsError({name: "unknown setting" + suggest(name, list(SPEC_BY_NAME))})
        return parse_text(spec, text)

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], base: Settings | None = None) -> Settings:
        """Parse and validate many text values at once; every bad one is reported."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, text in texts.items():
            try:
                values[name] = cls.parse(name, text)
            except SettingsError as exc:
                errors.update(exc.errors)
        if errors:
            raise SettingsError(errors)
        return (base or cls()).replace(**values)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, base: Settings | None = None
    ) -> Settings:
        """Read ``TASKDECK_<NAME>`` variables (e.g. ``TASKDECK_LEASE_TTL=30``)."""
        return cls.from_texts(env_texts(environ), base)

    @classmethod
    def from_toml(cls, path: str | Path, base: Settings | None = None) -> Settings:
        """Read settings from a TOML file (top level, or a ``[taskdeck]`` table)."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError({"file": f"cannot read {path}: {exc.strerror}"}) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError({"file": f"{path} is not valid TOML: {exc}"}) from None
        table = data.get("taskdeck", data)
        if not isinstance(table, dict):
            raise SettingsError({"taskdeck": "must be a table of settings"})
        return (base or cls()).replace(**table)


def env_texts(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings given as ``TASKDECK_<NAME>`` variables (``os.environ`` by default),
    as text by name; an unknown ``TASKDECK_`` variable is logged and ignored."""
    env = os.environ if environ is None else environ
    texts: dict[str, str] = {}
    for key, text in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        suffix = key[len(ENV_PREFIX) :]
        name = suffix.lower()
        if name in SPEC_BY_NAME:
            texts[name] = text
        elif suffix not in CLI_ENV:
            log.warning(
                "ignoring unknown environment variable %s%s", key, suggest(name, list(SPEC_BY_NAME))
            )
    return texts


def _specs() -> tuple[SettingSpec, ...]:
    """Each field of :class:`Settings` as a :class:`SettingSpec`, in declaration order."""
    hints = get_type_hints(Settings)
    specs = []
    for field in dataclasses.fields(Settings):
        kind = get_origin(hints[field.name]) or hints[field.name]
        kind = LimitMap if issubclass(kind, LimitMap) else kind  # routes too: a map
        specs.append(SettingSpec(field.name, kind, field.default, **field.metadata))
    return tuple(specs)


SPECS: tuple[SettingSpec, ...] = _specs()
SPEC_BY_NAME: Mapping[str, SettingSpec] = {spec.name: spec for spec in SPECS}


def _refuse_change(self: Settings, name: str, value: Any = None) -> None:
    raise dataclasses.FrozenInstanceError(
        f"cannot change {name!r}: Settings are immutable; use engine.update_settings(...) "
        "or dataclasses.replace(settings, ...)"
    )


# A frozen dataclass already refuses assignment; this says what to do instead.
type.__setattr__(Settings, "__setattr__", _refuse_change)
type.__setattr__(Settings, "__delattr__", _refuse_change)
