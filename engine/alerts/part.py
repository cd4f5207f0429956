"""``engine.alerts``: configure alert rules and channels, and read, acknowledge and
silence alerts; the leader's evaluation and the delivery tasks.

Every engine with rules configured tries to take the store's alert lease each
``evaluate_every``; the one holding it (the leader) gathers the measures, runs the
rules through the state machine and, in one transaction that renews the lease,
writes the transitions and enqueues one delivery task per channel (handler
``taskdeck.alert``, in the ``webhooks`` queue beside completion webhooks). A leader
that dies stops renewing; another node takes over once the lease (setting
``alert_lease_ttl``) runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from engine.alerts import channels as sending
from engine.alerts.config import AlertConfig, AlertConfigError, alert_config
from engine.alerts.machine import OPEN_STATES, Alert, step
from engine.alerts.observe import observe
from engine.alerts.rules import Verdict, evaluate, parse_duration
from engine.audit import Audit
from engine.codec import Codec, to_json
from engine.errors import TaskNotFound
from engine.events import EventBus
from engine.model import NodeInfo
from engine.retry import RetryPolicy
from engine.services import Service
from engine.settings import Settings
from engine.snapshot import EngineSnapshot
from engine.store import alerts as plans
from engine.store.base import WEBHOOK_QUEUE, NewTask, Store

log = logging.getLogger(__name__)

ALERT_HANDLER = "taskdeck.alert"
ALERT_QUEUE = WEBHOOK_QUEUE  # outbound notifications share one system queue
ALERT_RETRIES = 5
RETRY = RetryPolicy.exponential(
    base=1.0, cap=120.0, retry_on=(OSError, TimeoutError, ConnectionError)
)
FORGET_EVERY = 60.0  # seconds between the leader's retention sweeps


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One line of alert history: a transition, an ack, a silence or a delivery
    (``queued``, ``delivered``, ``failed``; ``task_id`` is the delivery task)."""

    id: int
    alert_id: int | None
    at: float
    kind: str
    channel: str | None
    task_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Silence:
    rule: str
    until: float
    note: str
    by: str
    at: float


def alert_of(r: Any) -> Alert:
    return Alert(
        int(r[0]), r[1], r[2], r[3], r[4], float(r[5]), float(r[6]), r[7], r[8], int(r[9]),
        r[10], r[11], r[12] or "", r[13], r[14] or "",
    )  # fmt: skip


def _row(a: Alert) -> tuple[Any, ...]:
    return (
        a.rule, a.key, a.state, a.severity, a.since, a.started_at, a.clear_since,
        a.last_notified, a.notified, a.acked_by, a.acked_at, a.note, a.value, a.summary,
    )  # fmt: skip


class Alerts:
    """The alerts part (one per engine), reached as ``engine.alerts``."""

    def __init__(
        self,
        store: Store,
        codec: Codec,
        settings: Callable[[], Settings],
        node: str,
        snapshot: Callable[[], EngineSnapshot],
        handler_queues: Callable[[], Mapping[str, str]],
        nodes: Callable[[], Any],
        audit: Audit,
    ) -> None:
        self._audit = audit
        self._store, self._codec, self._settings, self._node = store, codec, settings, node
        self._snapshot, self._handler_queues, self._nodes = snapshot, handler_queues, nodes
        self._config = AlertConfig()
        self.leading = False
        self._forgot = 0.0

    # -- configuration ----------------------------------------------------------
    @property
    def config(self) -> AlertConfig:
        return self._config

    def configure(self, raw: Mapping[str, Any] | AlertConfig | None) -> AlertConfig:
        """Set channels and rules from the mapping an ``[alerts]`` TOML table gives (see
        :mod:`engine.alerts.config`); raises AlertConfigError listing every problem
        (nothing changes then)."""
        self._config = raw if isinstance(raw, AlertConfig) else alert_config(raw)
        return self._config

    # -- evaluation (the leader) -----------------------------------------------------
    async def evaluate_once(self) -> list[plans.AlertWrite] | None:
        """One evaluation, if this node leads (else None): the changes it wrote."""
        config = self._config
        if not config.enabled:
            return None
        ttl = self._settings().alert_lease_ttl
        self.leading = await self._store.run_plan(partial(plans.claim, node=self._node, ttl=ttl))
        if not self.leading:
            return None
        nodes: Sequence[NodeInfo] = await self._nodes()
        paused = {r[0]: r[1] for r in await self._store.run_plan(plans.paused_since)}
        snap = self._snapshot()
        seen = observe(snap, nodes, paused, self._handler_queues(), snap.at)
        verdicts = {rule.name: evaluate(rule, seen) for rule in config.rules}

        def decide(rows: list[Any], silenced: set[str], now: float) -> list[plans.AlertWrite]:
            return self._decide(verdicts, [alert_of(r) for r in rows], silenced, now)

        written = await self._store.run_plan(
            partial(
                plans.evaluate,
                node=self._node,
                ttl=ttl,
                decide=decide,
                make_task=self._delivery_task,
            )
        )
        self.leading = written is not None
        await self._forget(snap.at)
        return written

    def _decide(
        self, verdicts: Mapping[str, list[Verdict]], open_alerts: list[Alert],
        silenced: set[str], now: float,
    ) -> list[plans.AlertWrite]:  # fmt: skip
        by_key = {(a.rule, a.key): a for a in open_alerts}
        writes = []
        for rule in self._config.rules:
            seen = {v.key: v for v in verdicts.get(rule.name, [])}
            keys = set(seen) | {k for (r, k) in by_key if r == rule.name}
            for key in sorted(keys):
                verdict = seen.get(key) or Verdict(rule.name, key, False, None, "clear")
                before = by_key.get((rule.name, key))
                quiet = rule.name in silenced or not rule.channels  # nobody to tell
                moved = step(before, rule, verdict, now, quiet)
                if moved.alert is None or moved.alert == before:
                    continue
                writes.append(
                    plans.AlertWrite(
                        moved.alert.id,
                        _row(moved.alert),
                        moved.transition,
                        f"{rule.text}: {verdict.summary}",
                        moved.notice,
                        rule.channels if moved.notice else (),
                    )
                )
        return writes

    def _delivery_task(self, alert_id: int, channel: str, notice: str) -> NewTask:
        body = {"alert_id": alert_id, "channel": channel, "notice": notice}
        payload = self._codec.seal(to_json(body))
        return NewTask(ALERT_HANDLER, ALERT_QUEUE, 8, payload, ALERT_RETRIES)

    async def _forget(self, now: float) -> None:
        if now - self._forgot >= FORGET_EVERY:
            self._forgot = now
            keep = self._settings().alert_retention
            await self._store.run_plan(partial(plans.forget, keep=keep))

    # -- delivery (any node) ---------------------------------------------------------
    async def deliver(self, alert_id: int, channel: str, notice: str) -> dict[str, Any]:
        """The ``taskdeck.alert`` handler: send one notification; each attempt's
        outcome is recorded in the alert's history."""
        found = self._config.channels.get(channel)
        row = await self._store.run_plan(partial(plans.one, alert_id=alert_id))
        try:
            if found is None:
                raise ValueError(
                    f"this node has no alert channel {channel!r} (configure the same "
                    "[alerts] on every node)"
                )
            if row is None:
                raise ValueError(f"alert {alert_id} is gone (retention); nothing to send")
            message = self.message(alert_of(row), notice)
            allow = self._settings().webhook_allow_private
            outcome = await asyncio.to_thread(sending.send, found, message, allow)
        except Exception as exc:
            await self._record(alert_id, "failed", channel, f"{notice}: {exc}")
            raise
        await self._record(alert_id, "delivered", channel, f"{notice}: {outcome}")
        return {"alert_id": alert_id, "channel": channel, "notice": notice, "outcome": outcome}

    def message(self, alert: Alert, notice: str) -> dict[str, Any]:
        """What a channel is sent (a webhook gets it as JSON)."""
        rule = self._config.rule(alert.rule)
        return {
            "alert_id": alert.id, "rule": alert.rule, "key": alert.key, "notice": notice,
            "state": alert.state, "severity": alert.severity, "summary": alert.summary,
            "value": alert.value, "since": alert.since, "started_at": alert.started_at,
            "condition": rule.text if rule else "", "node": self._node,
        }  # fmt: skip

    async def _record(self, alert_id: int | None, kind: str, channel: str, detail: str) -> None:
        record = partial(
            plans.record, alert_id=alert_id, kind=kind, channel=channel, task_id=None,
            detail=detail[:1000],
        )  # fmt: skip
        await self._store.run_plan(record)

    # -- reads and operator commands ---------------------------------------------------
    async def recent(self, recent: float = 86400.0, limit: int = 200) -> list[Alert]:
        """Firing first, then pending, then those resolved in the last ``recent`` seconds
        (a pending alert that cleared without firing is only in the history)."""
        now = self._snapshot().at
        rows = await self._store.run_plan(partial(plans.recent, since=now - recent, limit=limit))
        return [alert_of(r) for r in rows]

    async def firing(self) -> int:
        return sum(1 for a in await self.recent(0.0) if a.state == "firing")

    async def history(self, alert_id: int = 0, limit: int = 100) -> list[AlertEvent]:
        rows = await self._store.run_plan(partial(plans.events, alert_id=alert_id, limit=limit))
        return [AlertEvent(*r) for r in rows]

    async def ack(self, alert_id: int | str, by: str, note: str = "") -> Alert:
        """Acknowledge: no more repeats; it stays listed until it resolves."""
        try:
            number = int(alert_id)
        except (TypeError, ValueError):
            raise ValueError(f"an alert id is a whole number; got {alert_id!r}") from None
        async with self._audit.action("alert_ack", f"alert {number}", note=note or None):
            ack = partial(plans.ack, alert_id=number, by=by, note=note)
            row = await self._store.run_plan(ack)
            if row is None:
                raise TaskNotFound(f"no alert with id {number}")
        alert = alert_of(row)
        if alert.state not in OPEN_STATES:
            log.info("alert %s acknowledged after it %s", number, alert.state)
        return alert

    async def silence(self, rule: str, duration: float | str, note: str, by: str) -> Silence:
        """Notify nobody about ``rule`` for ``duration`` (seconds or "2h")."""
        if self._config.rule(rule) is None:
            known = ", ".join(r.name for r in self._config.rules) or "none configured"
            raise ValueError(f"no alert rule named {rule!r}; rules: {known}")
        seconds = duration if isinstance(duration, float | int) else parse_duration(duration)
        if seconds <= 0:
            raise ValueError(f"a silence lasts more than 0 seconds; got {duration!r}")
        if not note.strip():
            raise ValueError("a silence needs a note saying why (--note TEXT)")
        until = self._snapshot().at + float(seconds)
        target = f"rule {rule} for {float(seconds):g} s"
        async with self._audit.action("alert_silence", target, note=note):
            silence = partial(plans.silence, rule=rule, until=until, note=note, by=by)
            await self._store.run_plan(silence)
        return Silence(rule, until, note, by, self._snapshot().at)

    async def silences(self) -> list[Silence]:
        return [Silence(*r) for r in await self._store.run_plan(plans.silences)]

    async def leader(self) -> tuple[str, float] | None:
        """The node holding the alert lease and until when (None: nobody)."""
        return await self._store.run_plan(plans.leader)

    async def test(self, channel: str) -> str:
        """Send a test message to ``channel`` now; returns what happened (raises the
        channel's error). Recorded in the history."""
        found = self._config.channels.get(channel)
        if found is None:
            known = ", ".join(self._config.channels) or "none configured"
            raise AlertConfigError([f"no alert channel named {channel!r}; channels: {known}"])
        message = {
            "alert_id": 0, "rule": "test", "key": "store", "notice": "test", "state": "test",
            "severity": "info", "summary": f"a test message from Taskdeck node {self._node}",
            "value": None, "node": self._node,
        }  # fmt: skip
        allow = self._settings().webhook_allow_private
        async with self._audit.action("alert_test", f"channel {channel}") as done:
            try:
                outcome = await asyncio.to_thread(sending.send, found, message, allow)
            except Exception as exc:
                await self._record(None, "failed", channel, f"test: {exc}")
                raise
            await self._record(None, "delivered", channel, f"test: {outcome}")
            done.text = outcome
        return outcome


class AlertService(Service):
    """Evaluates the rules every ``evaluate_every`` (only the leader writes)."""

    name = "alerts"

    def __init__(
        self, store: Store, settings: Callable[[], Settings], bus: EventBus, alerts: Alerts
    ) -> None:
        super().__init__(store, settings, bus)
        self.alerts = alerts

    def interval(self) -> float:
        return self.alerts.config.evaluate_every

    async def run_once(self) -> None:
        await self.alerts.evaluate_once()
