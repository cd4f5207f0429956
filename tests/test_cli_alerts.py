"""``taskdeck alerts`` run as a process, against an engine whose rule is firing."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from engine import Engine

from .alert_servers import free_port, http_server
from .cli_helpers import run
from .conftest import FAST, until

CONFIG = """
[alerts]
evaluate_every = "0.1s"
notify = ["hook"]

[alerts.channels.hook]
type = "webhook"
url = "{url}"
allow_private = true

[alerts.channels.gone]
type = "webhook"
url = "http://127.0.0.1:{port}/x"
allow_private = true

[alerts.rules]
busy = "queue:work backlog > 0"
"""


async def test_alerts_commands_list_ack_silence_and_test(tmp_path: Path) -> None:
    with http_server() as hook:
        config = CONFIG.format(url=hook.url, port=free_port())
        (tmp_path / "taskdeck.toml").write_text(config, encoding="utf-8")
        store = str(tmp_path / "tasks.db")

        async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
            done = await asyncio.to_thread(run, *args, "--store", store, cwd=tmp_path, env=env)
            return done.returncode, done.stdout, done.stderr

        engine = Engine(store, workers=1, **FAST)
        engine.task(name="work", queue="work")(lambda: None)
        engine.alerts.configure(
            {
                "evaluate_every": "0.1s",
                "channels": {"hook": {"type": "webhook", "url": hook.url, "allow_private": True}},
                "rules": {"busy": "queue:work backlog > 0"},
            }
        )
        async with engine:
            await engine.pause("work")
            await engine.enqueue("work")
            await until(lambda: len(hook.items) >= 1, 10, "the firing notification")

            code, out, _ = await cli("alerts", "--json")
            assert code == 0
            [alert] = json.loads(out)["alerts"]
            assert (alert["rule"], alert["state"], alert["key"]) == ("busy", "firing", "queue:work")
            code, out, _ = await cli("alerts")
            assert code == 0 and "firing" in out and "busy" in out and "queue:work" in out

            code, out, _ = await cli("alerts", "ack", str(alert["id"]), "--note", "looking")
            assert code == 0 and "acknowledged" in out
            [acked] = [a for a in await engine.alerts.recent() if a.id == alert["id"]]
            assert acked.acked_by and acked.note == "looking"
            code, _, err = await cli("alerts", "ack", "999")
            assert code == 1 and err.strip() == "taskdeck: error: no alert with id 999"

            code, out, _ = await cli("alerts", "silence", "busy", "--for", "1h", "--note", "maint")
            assert code == 0 and "busy: silenced until" in out
            assert [s.note for s in await engine.alerts.silences()] == ["maint"]
            code, _, err = await cli("alerts", "silence", "busy", "--for", "2x", "--note", "n")
            assert code == 2 and "bad --for '2x'" in err
            code, _, err = await cli("alerts", "silence", "nope", "--for", "1h", "--note", "n")
            assert code == 2 and "no alert rule named 'nope'; rules: busy" in err

            code, out, _ = await cli("alerts", "test", "hook")
            assert code == 0 and out.strip() == "hook: test message sent (HTTP 200)"
            code, _, err = await cli("alerts", "test", "gone")
            assert code == 1 and err.startswith("taskdeck: error: channel 'gone':")
            code, _, err = await cli("alerts", "test", "pager")
            assert code == 2 and "no alert channel named 'pager'; channels: hook, gone" in err

            code, out, _ = await cli("alerts", "history")
            assert code == 0 and "firing" in out and "delivered → hook" in out


def start_run(home: Path) -> subprocess.Popen[str]:
    """``taskdeck run --headless`` in ``home`` (which has the taskdeck.toml)."""
    command = ["-m", "console.cli", "run", "--headless", "--no-demo", "--workers", "1"]
    return subprocess.Popen(
        [sys.executable, *command, "--store", str(home / "tasks.db")],
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_taskdeck_run_takes_the_alerts_table_of_taskdeck_toml(tmp_path: Path) -> None:
    rule = 'always = "dead_nodes >= 0 severity critical"'
    with http_server() as hook:
        config = CONFIG.format(url=hook.url, port=free_port()).replace(
            'busy = "queue:work backlog > 0"', rule
        )
        (tmp_path / "taskdeck.toml").write_text(config, encoding="utf-8")
        node = start_run(tmp_path)
        try:
            await until(lambda: len(hook.items) >= 1, 20, "the firing notification")
            [body] = hook.bodies()[:1]
            assert (body["rule"], body["notice"], body["severity"]) == (
                "always",
                "firing",
                "critical",
            )
        finally:
            node.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(node.communicate, timeout=20)
        assert node.returncode == 0, err


def test_a_bad_alerts_table_is_refused_with_the_file_and_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[alerts.rules]\nbig = "backlogg > 5"\n[alerts.channels.x]\ntype = "webhook"\n'
        'url = "ftp://example.com"\n',
        encoding="utf-8",
    )
    done = run("alerts", cwd=tmp_path, env={"TASKDECK_CONFIG": str(bad)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(
        f"taskdeck: error: {bad}:5: [alerts]: alerts.channels.x.url must be an http"
    )
    assert any(
        line.startswith(f"taskdeck: error: {bad}:2: [alerts]: alert rule 'big', at position 1")
        and "unknown measure 'backlogg'" in line
        for line in lines
    )
    assert not (tmp_path / "taskdeck.db").exists()  # nothing started or created
