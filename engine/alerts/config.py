"""Alert configuration: the mapping an ``[alerts]`` TOML table gives, checked into an
:class:`AlertConfig` by :func:`alert_config` (every problem reported at once).

Shape (TOML; the same as a Python dict)::

    [alerts]
    notify = ["ops"]          # channels of rules that name none (default: every channel)
    repeat = "30m"            # default frequency cap while firing (default: notify once)
    bottlenecks = "warning"   # every bottleneck finding at warning (or critical) and above
    evaluate_every = "1s"     # how often the leader evaluates the rules

    [alerts.channels.ops]     # type: webhook (JSON POST) | slack | email
    type = "webhook"
    url = "https://ops.example.com/taskdeck"
    allow_private = false     # allow a private/loopback address (default: public only)

    [alerts.channels.mail]
    type = "email"
    host = "smtp.example.com"
    port = 587
    security = "starttls"     # starttls | tls | none
    from = "taskdeck@example.com"
    to = ["oncall@example.com"]
    user = "taskdeck"         # or user_env = "SMTP_USER"
    password_env = "SMTP_PASSWORD"   # or password_file = "/run/secrets/smtp"

    [alerts.rules]
    images = "queue:images backlog > 1000 for 2m severity critical notify ops repeat 30m"

    [alerts.slo]
    images = "p95 wait < 30s"

Secrets are never stored: the e-mail password is read from the environment or the
file when a message is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from engine.alerts.rules import (
    Rule,
    RuleError,
    bottleneck_rule,
    parse_duration,
    parse_rule,
    parse_slo,
)

CHANNEL_TYPES = ("webhook", "slack", "email")
SECURITY = ("starttls", "tls", "none")
_TOP = ("notify", "repeat", "bottlenecks", "evaluate_every", "channels", "rules", "slo")
_CHANNEL_KEYS = {
    "webhook": {"type", "url", "allow_private", "timeout"},
    "slack": {"type", "url", "allow_private", "timeout"},
    "email": {
        "type", "host", "port", "security", "from", "to", "user", "user_env",
        "password_env", "password_file", "timeout",
    },
}  # fmt: skip


class AlertConfigError(ValueError):
    """One or more problems in an alert configuration, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Channel:
    """Where notifications go. ``options`` holds the type's keys (no secrets: only
    where to read them)."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    channels: Mapping[str, Channel] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    evaluate_every: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def alert_config(raw: Mapping[str, Any] | None) -> AlertConfig:
    """Check an ``[alerts]`` mapping (see the module docstring); raises
    :class:`AlertConfigError` listing every problem, or returns the configuration."""
    if raw is None:
        return AlertConfig()
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise AlertConfigError([f"[alerts] must be a table; got {type(raw).__name__}"])
    for key in raw:
        if key not in _TOP:
            problems.append(f"alerts.{key}: unknown key; allowed: {', '.join(_TOP)}")
    channels = _channels(raw.get("channels", {}), problems)
    notify = _names(raw.get("notify", list(channels)), "alerts.notify", problems)
    repeat = _duration(raw.get("repeat"), "alerts.repeat", problems)
    every = _duration(raw.get("evaluate_every", 1.0), "alerts.evaluate_every", problems) or 1.0
    rules: list[Rule] = []
    for section, parse in (("rules", parse_rule), ("slo", parse_slo)):
        table = raw.get(section, {})
        if not isinstance(table, Mapping):
            problems.append(f'alerts.{section} must be a table of name = "rule"')
            continue
        for name, text in table.items():
            try:
                rule = parse(str(name), text if isinstance(text, str) else "")
            except RuleError as exc:
                problems.append(str(exc))
                continue
            rules.append(_defaults(rule, notify, repeat))
    try:
        switch = bottleneck_rule(raw.get("bottlenecks", False), notify)
    except RuleError as exc:
        problems.append(str(exc))
        switch = None
    if switch is not None:
        rules.append(replace(switch, repeat=repeat))
    for rule in rules:
        for name in rule.channels:
            if name not in channels:
                known = ", ".join(channels) or "none defined"
                problems.append(
                    f"alert rule {rule.name!r} notifies unknown channel {name!r}; channels: {known}"
                )
    if problems:
        raise AlertConfigError(problems)
    return AlertConfig(channels, tuple(rules), every)


def _defaults(rule: Rule, notify: tuple[str, ...], repeat: float | None) -> Rule:
    return replace(
        rule,
        channels=rule.channels or notify,
        repeat=rule.repeat if rule.repeat is not None else repeat,
    )


def _names(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} must be a list of channel names; got {value!r}")
        return ()
    return tuple(value)


def _duration(value: Any, where: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(str(value), where)
    except ValueError as exc:
        problems.append(str(exc))
        return None


def _channels(raw: Any, problems: list[str]) -> dict[str, Channel]:
    if not isinstance(raw, Mapping):
        problems.append("alerts.channels must be a table of channel tables")
        return {}
    out = {}
    for name, spec in raw.items():
        where = f"alerts.channels.{name}"
        if not isinstance(spec, Mapping):
            problems.append(f"{where} must be a table (type = webhook, slack or email)")
            continue
        kind = spec.get("type")
        if kind not in CHANNEL_TYPES:
            problems.append(f"{where}.type must be one of {', '.join(CHANNEL_TYPES)}; got {kind!r}")
            continue
        for key in spec:
            if key not in _CHANNEL_KEYS[kind] and key != "password":
                allowed = ", ".join(sorted(_CHANNEL_KEYS[kind]))
                problems.append(
                    f"{where}.{key}: unknown key for a {kind} channel; allowed: {allowed}"
                )
        before = len(problems)
        if kind == "email":
            _check_email(spec, where, problems)
        else:
            _check_url(spec.get("url"), where, problems)
        if len(problems) == before:
            out[str(name)] = Channel(str(name), kind, dict(spec))
    return out


def _check_url(url: Any, where: str, problems: list[str]) -> None:
    if not url:
        problems.append(f'{where} has no url; give url = "https://…"')
        return
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{where}.url must be an http:// or https:// URL with a host; got {url!r}")


def _check_email(spec: Mapping[str, Any], where: str, problems: list[str]) -> None:
    if not spec.get("host"):
        problems.append(f"{where} has no host (the SMTP server)")
    port = spec.get("port", 587)
    if not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"{where}.port must be a whole number from 1 to 65535; got {port!r}")
    if spec.get("security", "starttls") not in SECURITY:
        problems.append(f"{where}.security must be one of {', '.join(SECURITY)}")
    if not spec.get("from"):
        problems.append(f"{where} has no from address")
    to = spec.get("to")
    if isinstance(to, str):
        to = [to]
    if not to or not all(isinstance(a, str) and "@" in a for a in to):
        problems.append(f"{where}.to must be a list of e-mail addresses; got {spec.get('to')!r}")
    if "password" in spec:
        problems.append(f"{where}: give password_env or password_file, never the password")
