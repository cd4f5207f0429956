"""``--note`` on every command that changes something, and ``taskdeck audit``: run as a
user runs them, each leaves one entry by this OS user through the ``cli``."""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from console.demo import register_demo
from engine import Engine

from .alert_servers import http_server
from .cli_helpers import run
from .conftest import until

CONFIG = """
[alerts.channels.hook]
type = "webhook"
url = "{url}"
allow_private = true

[alerts.rules]
busy = "queue:work backlog > 0"
"""


def audit(cwd: Path, *args: str) -> list[dict[str, Any]]:
    done = run("audit", "--json", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, Any]] = json.loads(done.stdout)["entries"]
    return entries


def ok(cwd: Path, *args: str) -> str:
    done = run(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_every_mutating_command_leaves_one_entry_with_its_note(tmp_path: Path) -> None:
    with http_server() as hook:
        (tmp_path / "taskdeck.toml").write_text(CONFIG.format(url=hook.url), encoding="utf-8")
        payload = '{"image_id": "a", "bytes": 10}'
        task = ok(tmp_path, "enqueue", "images.resize", payload, "--note", "n-enqueue").strip()
        steps: list[tuple[tuple[str, ...], str, str]] = [
            (("cancel", task), "cancel", f"task {task}"),
            (("retry", task), "retry", f"task {task}"),
            (("pause", "images"), "pause", "queue images"),
            (("resume", "images"), "resume", "queue images"),
            (("pause", "--all"), "pause_all", "every queue on every node"),
            (("resume", "--all"), "resume_all", "every queue on every node"),
            (("settings", "set", "result_ttl=60"), "update_settings", "settings result_ttl=60.0"),
            (("settings", "reset", "result_ttl"), "reset_settings", "settings result_ttl"),
            (("alerts", "silence", "busy", "--for", "1h"), "alert_silence", "rule busy for 3600 s"),
            (("alerts", "test", "hook"), "alert_test", "channel hook"),
        ]
        for args, _, _ in steps:
            note = f"n-{args[0]}-{len(args)}"
            ok(tmp_path, *args, "--note", note)
        entries = list(reversed(audit(tmp_path)))

    assert [e["action"] for e in entries] == ["enqueue"] + [a for _, a, _ in steps]
    assert entries[0]["target"] == f"task {task} (images.resize)"
    assert entries[0]["note"] == "n-enqueue" and entries[0]["task_id"] == task
    for (args, action, target), entry in zip(steps, entries[1:], strict=True):
        assert (entry["action"], entry["target"]) == (action, target)
        assert entry["note"] == f"n-{args[0]}-{len(args)}"
        assert entry["ok"], entry
    for entry in entries:
        assert entry["interface"] == "cli"
        assert entry["who"] == f"{getpass.getuser()}@{socket.gethostname()}"
        assert entry["user"] == getpass.getuser() and entry["pid"] > 0


async def test_schedule_commands_and_a_refusal_are_recorded(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "taskdeck.db", workers=1)
    register_demo(engine)  # what `taskdeck run` stores: the demo's schedules
    async with engine:
        keeper = engine._state.node_keeper
        await until(lambda: keeper is not None and keeper.joined, 10, "the node row")
        name = (await engine.schedules())[0].name
        for action in ("pause", "resume", "run"):
            await asyncio.to_thread(ok, tmp_path, "schedule", action, name, "--note", f"s-{action}")
        # a node is alive (this engine): a command to every node is sent
        await asyncio.to_thread(ok, tmp_path, "node", "all", "set-workers", "3", "--note", "more")
    refused = run("cancel", "999999", "--note", "typo", cwd=tmp_path)
    assert refused.returncode != 0
    entries = audit(tmp_path, "--limit", "5")
    assert [(e["action"], e["ok"], e["note"]) for e in entries] == [
        ("cancel", False, "typo"),
        ("node_set_workers", True, "more"),
        ("run_schedule", True, "s-run"),
        ("resume_schedule", True, "s-resume"),
        ("pause_schedule", True, "s-pause"),
    ]
    assert entries[0]["target"] == "task 999999" and "no task" in entries[0]["outcome"]


def test_audit_filters_text_output_and_the_task_timeline(tmp_path: Path) -> None:
    payload = '{"image_id": "a", "bytes": 10}'
    first = ok(tmp_path, "enqueue", "images.resize", payload).strip()
    second = ok(tmp_path, "enqueue", "images.resize", payload, "--note", "second").strip()
    ok(tmp_path, "cancel", first, "--note", "wrong image")
    ok(tmp_path, "cancel", second)

    targets = [e["target"] for e in audit(tmp_path, "--task", first)]
    assert targets == [f"task {first}", f"task {first} (images.resize)"]
    assert len(audit(tmp_path, "--since", "10m")) == 4
    assert len(audit(tmp_path, "--actor", getpass.getuser())) == 4
    assert audit(tmp_path, "--actor", "somebody-else") == []
    assert [e["action"] for e in audit(tmp_path, "--action", "cancel")] == ["cancel", "cancel"]

    text = ok(tmp_path, "audit")
    assert "cancel" in text and "note: wrong image" in text and "cli" in text
    shown = ok(tmp_path, "show", first)
    timeline = shown.split("timeline", 1)[1]
    assert "» cancel" in timeline and "note: wrong image" in timeline and "(cli)" in timeline
    data = json.loads(ok(tmp_path, "show", first, "--json"))
    assert [a["action"] for a in data["audit"]] == ["enqueue", "cancel"]

    assert "no audit entries match" in ok(tmp_path, "audit", "--actor", "nobody")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("audit", "--since", "soon"), "--since"),
        (("audit", "--since", "0s"), "more than 0"),
        (("audit", "--limit", "0"), "--limit"),
        (("audit", "--task", "x"), "task"),
        (("audit", "--actor", "@host"), "--actor"),
        (("cancel", "1", "--note", "a\tb"), "printable"),
        (("pause", "images", "--note", "x" * 501), "at most 500"),
    ],
)
def test_bad_audit_and_note_input_gets_one_clear_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    ok(tmp_path, "enqueue", "images.resize", '{"image_id": "a", "bytes": 10}')
    before = audit(tmp_path)
    done = run(*args, cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1
    assert audit(tmp_path) == before  # nothing recorded, nothing changed
