"""One alert's state machine, a pure function: :func:`step`.

An alert is one rule for one scope key. States::

    (none) ─active─▶ pending ─held for `for`─▶ firing ─clear for `for`─▶ resolved
               pending ─clear─▶ cleared (never fired: nobody is told)

``for`` is hysteresis both ways: the condition must hold that long to fire and be
clear that long to resolve. While firing, a notification is repeated at most once per
``repeat`` (the frequency cap), unless the alert is acknowledged. A silenced rule's
transitions are recorded but nobody is notified; a firing alert whose notification
was silenced is notified once the silence ends. Exactly one "resolved" message
follows a notified firing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from engine.alerts.rules import Rule, Verdict

AlertState = Literal["pending", "firing", "resolved", "cleared"]
OPEN_STATES = ("pending", "firing")
Notice = Literal["firing", "repeat", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as stored. ``id`` 0: not stored yet."""

    id: int
    rule: str
    key: str
    state: AlertState
    severity: str
    since: float  # when it entered this state
    started_at: float  # when the condition was first seen
    clear_since: float | None = None  # firing, but the condition clear since then
    last_notified: float | None = None
    notified: int = 0  # notifications sent (firing + repeats)
    acked_by: str | None = None
    acked_at: float | None = None
    note: str = ""
    value: float | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """What one evaluation did to one alert: its new row (None: nothing to store), the
    transition (or None) and the notice to send (or None)."""

    alert: Alert | None
    transition: AlertState | None = None
    notice: Notice | None = None


def step(alert: Alert | None, rule: Rule, verdict: Verdict, now: float, silenced: bool) -> Step:
    """Move ``alert`` (None or closed: none open for this rule and key) on by one
    evaluation that saw ``verdict``."""
    if alert is None or alert.state not in OPEN_STATES:
        if not verdict.active:
            return Step(None)
        new = Alert(
            0, rule.name, verdict.key, "pending", rule.severity, now, now,
            value=verdict.value, summary=verdict.summary,
        )  # fmt: skip
        if rule.hold <= 0:
            return _fire(new, now, silenced)
        return Step(new, "pending")
    seen = replace(alert, value=verdict.value, summary=verdict.summary)
    if alert.state == "pending":
        if not verdict.active:
            return Step(replace(seen, state="cleared", since=now), "cleared")
        if now - alert.started_at >= rule.hold:
            return _fire(seen, now, silenced)
        return Step(seen)
    return _firing(seen, rule, verdict.active, now, silenced)


def _fire(alert: Alert, now: float, silenced: bool) -> Step:
    fired = replace(alert, state="firing", since=now)
    if silenced:
        return Step(fired, "firing")
    return Step(_notified(fired, now), "firing", "firing")


def _firing(alert: Alert, rule: Rule, active: bool, now: float, silenced: bool) -> Step:
    if not active:
        clear_since = alert.clear_since if alert.clear_since is not None else now
        if now - clear_since >= rule.hold:
            resolved = replace(alert, state="resolved", since=now, clear_since=clear_since)
            told = alert.last_notified is not None and not silenced
            return Step(resolved, "resolved", "resolved" if told else None)
        return Step(replace(alert, clear_since=clear_since))
    alert = replace(alert, clear_since=None)
    if silenced or alert.acked_at is not None:
        return Step(alert)
    if alert.last_notified is None:
        return Step(_notified(alert, now), None, "firing")
    if rule.repeat is not None and now - alert.last_notified >= rule.repeat:
        return Step(_notified(alert, now), None, "repeat")
    return Step(alert)


def _notified(alert: Alert, now: float) -> Alert:
    return replace(alert, last_notified=now, notified=alert.notified + 1)
