"""Two node processes on PostgreSQL with the same alert rules: one notification per
transition, and after the leader is SIGKILLed the other node takes over."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from engine import Engine

from .alert_servers import Received, http_server
from .conftest import until

ROOT = Path(__file__).resolve().parent.parent
LEASE = 2.0
CONFIG = """
[alerts]
evaluate_every = "0.2s"

[alerts.channels.hook]
type = "webhook"
url = "{url}"
allow_private = true

[alerts.rules]
held = "queue:held backlog > 0 for 0.5s"
"""


def start_node(store: str, name: str, config: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TASKDECK_CONFIG": str(config),
        "TASKDECK_ALERT_LEASE_TTL": str(LEASE),
        "TASKDECK_POLL_INTERVAL": "0.05",
        "NODE_STORE": store,
        "NODE_NAME": name,
        "NODE_WORKERS": "2",
    }
    command = ["-m", "console.cli", "run", "--headless", "--interval", "60"]
    return subprocess.Popen(
        [sys.executable, *command, "--app", "tests.node_worker:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def sent(hook: Received, notice: str) -> int:
    return sum(1 for body in hook.bodies() if body.get("notice") == notice)


async def test_two_nodes_notify_once_per_transition_and_survive_the_leaders_death(
    pg_url: str, tmp_path: Path
) -> None:
    with http_server() as hook:
        config = tmp_path / "taskdeck.toml"
        config.write_text(CONFIG.format(url=hook.url), encoding="utf-8")
        nodes = {name: start_node(pg_url, name, config) for name in ("node-a", "node-b")}
        try:
            async with Engine(pg_url, workers=0, strict_handlers=False) as producer:
                await until_leader(producer)
                await producer.pause("held")
                await producer.enqueue("job", {"n": 1}, queue="held")
                await until(lambda: sent(hook, "firing") >= 1, 20, "the firing notification")
                await asyncio.sleep(1.5)  # both nodes evaluate all along; one may notify
                assert sent(hook, "firing") == 1

                leader = await until_leader(producer)
                nodes[leader].send_signal(signal.SIGKILL)
                nodes[leader].wait(10)
                await producer.resume("held")  # the survivor runs the task: backlog 0
                await until(lambda: sent(hook, "resolved") >= 1, 30, "the resolved notice")
                await asyncio.sleep(1.5)
                assert sent(hook, "resolved") == 1 and sent(hook, "firing") == 1
                survivor = await until_leader(producer)
                assert survivor != leader
                [alert] = await producer.alerts.recent()
                assert alert.state == "resolved"
        finally:
            for process in nodes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in nodes.values():
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()


async def until_leader(engine: Engine) -> str:
    """The node holding the alert lease (waits for one)."""
    for _ in range(200):
        found = await engine.alerts.leader()
        if found is not None and found[1] > engine.snapshot().at:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no node took the alert lease")
