"""Alerts end to end on a running engine, against real local servers: an HTTP server
(webhook and Slack format) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, ReadOnlyError
from engine.alerts.config import AlertConfigError

from .alert_servers import Received, free_port, http_server, smtp_server
from .conftest import BOTH_BACKENDS, FAST, until


@pytest.fixture
def servers() -> Iterator[tuple[Received, Received, Received]]:
    with http_server("/hook") as hook, http_server("/slack") as slack, smtp_server() as mail:
        yield hook, slack, mail


def channels(hook: Received, slack: Received, mail: Received) -> dict[str, Any]:
    return {
        "hook": {"type": "webhook", "url": hook.url, "allow_private": True},
        "chat": {"type": "slack", "url": slack.url, "allow_private": True},
        "mail": {
            "type": "email",
            "host": "127.0.0.1",
            "port": int(mail.url.rsplit(":", 1)[1]),
            "security": "none",
            "from": "taskdeck@example.com",
            "to": ["oncall@example.com"],
        },
    }


def engine_on(store: str | Path, workers: int = 2, **options: Any) -> Engine:
    engine = Engine(store, workers=workers, **{**FAST, **options})

    @engine.task(name="work", queue="work")
    async def work() -> None:
        return None

    return engine


def notices(got: Received, kind: str) -> list[float]:
    """Arrival times of the messages of one kind (webhook JSON, Slack text, mail subject)."""
    out = []
    for at, body in list(got.items):
        text = body.get("notice") or body.get("text") or body.get("subject") or ""
        if kind in str(text).lower():
            out.append(at)
    return out


@BOTH_BACKENDS
async def test_a_backlog_rule_fires_once_after_its_hold_notifies_every_channel_and_resolves(
    store: str | Path, servers: tuple[Received, Received, Received]
) -> None:
    hook, slack, mail = servers
    engine = engine_on(store)
    engine.alerts.configure(
        {
            "evaluate_every": "0.2s",
            "channels": channels(hook, slack, mail),
            "rules": {"work-backlog": "queue:work backlog > 3 for 2s severity critical repeat 3s"},
        }
    )
    async with engine:
        await engine.pause("work")
        enqueued = time.monotonic()
        for _ in range(5):
            await engine.enqueue("work")
        # Given a backlog over the threshold, the alert goes pending, then fires once
        await until(lambda: len(notices(hook, "firing")) >= 1, 15, "the firing webhook")
        assert notices(hook, "firing")[0] - enqueued >= 2.0
        await until(lambda: notices(slack, "firing") and notices(mail, "firing"), 10, "all three")
        [alert] = [a for a in await engine.alerts.recent() if a.rule == "work-backlog"]
        assert (alert.state, alert.severity, alert.key) == ("firing", "critical", "queue:work")
        # While it stays firing, repeats respect the frequency cap (3 s)
        await until(lambda: len(notices(hook, "repeat")) >= 1, 10, "a repeat")
        times = sorted(notices(hook, "firing") + notices(hook, "repeat"))
        assert len(notices(hook, "firing")) == 1
        assert all(b - a >= 2.9 for a, b in itertools.pairwise(times))
        # When the backlog drains it resolves (after the hold) with one resolved message
        await engine.resume("work")
        await until(lambda: len(notices(hook, "resolved")) >= 1, 15, "the resolved webhook")
        await until(lambda: notices(slack, "resolved") and notices(mail, "resolved"), 10, "all")
        await asyncio.sleep(1.0)  # nothing more may follow: one resolved message each
        for got in (hook, slack, mail):
            assert len(notices(got, "resolved")) == 1
        [alert] = [a for a in await engine.alerts.recent() if a.rule == "work-backlog"]
        assert alert.state == "resolved"
        kinds = [e.kind for e in reversed(await engine.alerts.history(alert.id))]
        assert kinds[:2] == ["pending", "firing"] and "resolved" in kinds
        assert kinds.count("delivered") >= 6


async def test_ack_stops_repeats_and_silence_stops_notifications(
    db_path: Path, servers: tuple[Received, Received, Received]
) -> None:
    hook, slack, mail = servers
    engine = engine_on(db_path)
    engine.alerts.configure(
        {
            "evaluate_every": "0.1s",
            "notify": ["hook"],
            "channels": channels(hook, slack, mail),
            "rules": {"busy": "queue:work backlog > 0 repeat 1s", "quiet": "backlog > 0"},
        }
    )
    async with engine:
        await engine.alerts.silence("quiet", "1h", "maintenance window", by="tester")
        await engine.pause("work")
        await engine.enqueue("work")
        await until(lambda: len(notices(hook, "repeat")) >= 1, 10, "a repeat")
        busy = next(a for a in await engine.alerts.recent() if a.rule == "busy")
        acked = await engine.alerts.ack(busy.id, by="tester", note="looking")
        assert acked.id == busy.id
        await asyncio.sleep(0.3)  # a delivery already queued may still land
        before = len(hook.items)
        await asyncio.sleep(2.0)
        assert len(hook.items) == before  # no repeats after the ack
        listed = {a.rule: a for a in await engine.alerts.recent()}
        assert listed["busy"].state == "firing" and listed["busy"].acked_by == "tester"
        # the silenced rule fired (it is listed) but nobody was told
        assert listed["quiet"].state == "firing" and listed["quiet"].notified == 0
        assert all(b.get("rule") != "quiet" for b in hook.bodies())
        [silence] = await engine.alerts.silences()
        assert (silence.rule, silence.note, silence.by) == ("quiet", "maintenance window", "tester")


async def test_a_failing_endpoint_is_retried_recorded_and_never_slows_the_engine(
    db_path: Path,
) -> None:
    with http_server() as hook:
        hook.script = [500, 500]
        engine = engine_on(db_path, workers=4)
        engine.alerts.configure(
            {
                "evaluate_every": "0.1s",
                "channels": {
                    "flaky": {"type": "webhook", "url": hook.url, "allow_private": True},
                    "gone": {
                        "type": "webhook",
                        "url": f"http://127.0.0.1:{free_port()}/x",
                        "allow_private": True,
                    },
                },
                "rules": {"any": "queue:work backlog > 0"},
            }
        )

        @engine.task(name="fast", queue="fast")
        async def fast() -> None:
            return None

        async with engine:
            await engine.pause("work")
            await engine.enqueue("work")
            await until(lambda: len(hook.items) >= 3, 20, "two failures and a success")
            # meanwhile the engine runs other work at full speed
            started = time.monotonic()
            ids = [await engine.enqueue("fast") for _ in range(200)]
            for task_id in ids:
                await engine.wait(task_id, timeout=10)
            assert time.monotonic() - started < 5.0
            history = await engine.alerts.history()
            failed = [e for e in history if e.kind == "failed"]
            assert any(e.channel == "flaky" and "500" in e.detail for e in failed)
            assert any(e.channel == "gone" for e in failed)
            assert any(e.kind == "delivered" and e.channel == "flaky" for e in history)
            deliveries = await engine.tasks(handler="taskdeck.alert")
            gone = [t for t in deliveries if (await engine.get(t.id)).payload["channel"] == "gone"]
            assert gone

            async def retried() -> int:  # its first retry is due within a second or two
                while (attempts := (await engine.get(gone[0].id)).attempts) < 2:  # noqa: ASYNC110 (a store read: no event to await)
                    await asyncio.sleep(0.1)
                return attempts

            assert await asyncio.wait_for(retried(), 15) >= 2


async def test_a_channel_test_message_and_bad_configuration(
    db_path: Path, servers: tuple[Received, Received, Received]
) -> None:
    hook, slack, mail = servers
    engine = engine_on(db_path)
    engine.alerts.configure({"channels": channels(hook, slack, mail)})
    async with engine:
        assert await engine.alerts.test("hook") == "HTTP 200"
        assert (await engine.alerts.test("mail")).startswith("mailed 1")
        await until(lambda: len(mail.items) == 1, 5, "the test mail")
        assert hook.bodies()[0]["notice"] == "test"
        with pytest.raises(AlertConfigError, match="no alert channel named 'pager'"):
            await engine.alerts.test("pager")
    before = engine.alerts.config
    with pytest.raises(AlertConfigError, match=r"alerts\.channels\.x has no url"):
        engine.alerts.configure({"channels": {"x": {"type": "webhook"}}})
    assert engine.alerts.config is before  # nothing changed


@BOTH_BACKENDS
async def test_one_engine_leads_and_another_takes_over_when_its_lease_runs_out(
    store: str | Path,
) -> None:
    config = {"evaluate_every": "0.1s", "rules": {"any": "backlog > 1000"}}
    first = engine_on(store, alert_lease_ttl=1.0, name="node-a")
    second = engine_on(store, alert_lease_ttl=1.0, name="node-b")
    for engine in (first, second):
        engine.alerts.configure(config)
    async with first:
        await until(lambda: first.alerts.leading, 10, "the first engine to lead")
        async with second:
            await asyncio.sleep(0.5)
            assert first.alerts.leading and not second.alerts.leading
            assert (await second.alerts.leader() or ("", 0))[0] == first.node
            first.alerts.configure(None)  # it stops evaluating (as if it died)
            await until(lambda: second.alerts.leading, 10, "the second engine to take over")
            assert (await second.alerts.leader() or ("", 0))[0] == second.node


@BOTH_BACKENDS
async def test_a_read_only_client_lists_alerts_and_cannot_change_them(store: str | Path) -> None:
    engine = engine_on(store, name="node-a")
    engine.alerts.configure({"evaluate_every": "0.1s", "rules": {"any": "queue:work backlog > 0"}})
    async with engine:
        await engine.pause("work")
        await engine.enqueue("work")
        await until(lambda: engine.alerts.leading, 10, "the engine to lead")
        for _ in range(100):
            if [a for a in await engine.alerts.recent() if a.state == "firing"]:
                break
            await asyncio.sleep(0.05)
        viewer = Engine(store, workers=0)
        async with viewer.client(read_only=True) as reader:
            [alert] = await reader.alerts.recent()
            assert alert.state == "firing" and await reader.alerts.firing() == 1
            assert [e.kind for e in await reader.alerts.history(alert.id)][-1] == "firing"
            with pytest.raises(ReadOnlyError):
                await reader.alerts.ack(alert.id, by="viewer")
        [again] = await engine.alerts.recent()
        assert again.acked_at is None


async def test_paused_for_counts_everything_paused_as_every_queue_paused(db_path: Path) -> None:
    engine = engine_on(db_path, name="node-a")
    rules = {"queue": "queue:work paused_for > 0.2", "store": "paused_for > 0.2"}
    engine.alerts.configure({"evaluate_every": "0.1s", "rules": rules})
    async with engine:
        await engine.pause_all(note="failover")

        async def firing() -> set[str]:
            return {a.rule for a in await engine.alerts.recent() if a.state == "firing"}

        for _ in range(200):
            if await firing() == {"queue", "store"}:
                break
            await asyncio.sleep(0.05)
        assert await firing() == {"queue", "store"}
        await engine.resume_all()
        for _ in range(200):
            if not await firing():
                break
            await asyncio.sleep(0.05)
        assert not await firing()
