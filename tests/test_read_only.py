"""``TASKDECK_READ_ONLY=1``: every command that would change the store is refused with
one line, before anything is opened, and the store is byte for byte what it was; the
reading commands work as always. ``--hide-payloads`` (and ``TASKDECK_HIDE_PAYLOADS``)
shows a task without its payload and result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from console.cli import main
from engine import Engine

from .cli_helpers import Terminal, run

SECRET = "card-4111-1111"


async def make_store(db: Path | str) -> dict[str, str]:
    """A store with a done task (with a result), a failed one, a queued one, a paused
    queue, a schedule and a saved setting; returns their ids."""
    engine = Engine(db, workers=1, name="node-1", poll_interval=0.05)

    @engine.task(name="mail.send", queue="emails", retries=0)
    async def send(to: str) -> dict[str, str]:
        if to == "bad":
            raise ConnectionError("smtp refused bad")
        return {"receipt": SECRET}

    @engine.periodic(every=3600, name="reports.daily", queue="reports")
    async def daily() -> None:
        return None

    async with engine:
        done = await engine.enqueue("mail.send", {"to": SECRET})
        failed = await engine.enqueue("mail.send", {"to": "bad"})
        await engine.wait(done, timeout=10)
        await engine.wait(failed, timeout=10)
        await engine.pause("emails")
        queued = await engine.enqueue("mail.send", {"to": "later"})
        await engine.update_settings(lease_ttl=45)
    return {"done": str(done), "failed": str(failed), "queued": str(queued)}


@pytest.fixture
async def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    db = tmp_path / "t.db"
    ids = await make_store(db)
    monkeypatch.chdir(tmp_path)
    for name in ("TASKDECK_READ_ONLY", "TASKDECK_HIDE_PAYLOADS", "TASKDECK_STORE"):
        monkeypatch.delenv(name, raising=False)
    return ids | {"db": str(db)}


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file in the directory and a hash of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


#: Every command that changes the store (``run --headless`` would run workers).
WRITES: list[tuple[str, list[str]]] = [
    ("enqueue", ["enqueue", "images.resize", '{"image_id": "a"}']),
    ("cancel", ["cancel", "3"]),
    ("retry", ["retry", "2"]),
    ("schedule pause", ["schedule", "pause", "reports.daily"]),
    ("schedule resume", ["schedule", "resume", "reports.daily"]),
    ("schedule run", ["schedule", "run", "reports.daily"]),
    ("pause", ["pause", "images"]),
    ("pause --all", ["pause", "--all"]),
    ("resume", ["resume", "emails"]),
    ("resume --all", ["resume", "--all"]),
    ("node all set-workers", ["node", "all", "set-workers", "2"]),
    ("node node-1 pause", ["node", "node-1", "pause", "emails"]),
    ("node all settings", ["node", "all", "settings", "lease_ttl=30"]),
    ("alerts ack", ["alerts", "ack", "1"]),
    ("alerts silence", ["alerts", "silence", "failures", "--for", "1h", "--note", "x"]),
    ("alerts test", ["alerts", "test", "ops"]),
    ("settings set", ["settings", "set", "lease_ttl=30"]),
    ("settings reset", ["settings", "reset", "lease_ttl"]),
    ("bulk cancel", ["bulk", "cancel", "--state", "queued", "--yes"]),
    ("bulk reprioritize", ["bulk", "reprioritize", "--ids", "1", "--priority", "9"]),
    ("edit", ["edit", "1", "--priority", "3"]),
    ("ops abort", ["ops", "abort", "1"]),
    ("run", ["run", "--headless", "--no-demo"]),
]


@pytest.mark.parametrize(("words", "argv"), WRITES, ids=[w for w, _ in WRITES])
@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_every_command_that_writes_is_refused_and_changes_nothing(
    store: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    words: str,
    argv: list[str],
    value: str,
) -> None:
    # Given a store, and the read-only switch in the environment
    before = fingerprint(tmp_path)
    monkeypatch.setenv("TASKDECK_READ_ONLY", value)
    # When a command that would change it runs
    code = main(["--store", store["db"], *argv])
    # Then it is refused with one line naming the command, and nothing changed
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [
        f"taskdeck: error: read-only (TASKDECK_READ_ONLY={value}): taskdeck {words} "
        + ("runs workers, which change the store" if words == "run" else "changes the store")
        + "; nothing was done (unset TASKDECK_READ_ONLY to allow changes)"
    ]
    assert fingerprint(tmp_path) == before


READS = [
    ["status"],
    ["tasks"],
    ["show", "1"],
    ["schedules"],
    ["nodes"],
    ["alerts"],
    ["alerts", "history"],
    ["settings"],
    ["settings", "--json"],
    ["ops"],
    ["bulk", "cancel", "--state", "queued", "--dry-run"],
]


@pytest.mark.parametrize("argv", READS, ids=" ".join)
def test_reading_commands_work_read_only(
    store: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    before = fingerprint(tmp_path)
    monkeypatch.setenv("TASKDECK_READ_ONLY", "1")
    assert main(["--store", store["db"], *argv]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()
    assert fingerprint(tmp_path) == before


def test_workflow_reads_read_only(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A task that is no workflow step: the store's own answer, not a refusal of the mode
    monkeypatch.setenv("TASKDECK_READ_ONLY", "1")
    main(["--store", store["db"], "workflow", store["done"]])
    assert "read-only" not in capsys.readouterr().err


BAD_VALUES = [
    ("TASKDECK_READ_ONLY", ["status"]),
    ("TASKDECK_READ_ONLY", ["cancel", "1"]),
    ("TASKDECK_READ_ONLY", ["console"]),
    ("TASKDECK_HIDE_PAYLOADS", ["show", "1"]),
    ("TASKDECK_HIDE_PAYLOADS", ["tasks"]),
    ("TASKDECK_HIDE_PAYLOADS", ["console"]),
]


@pytest.mark.parametrize(("name", "argv"), BAD_VALUES, ids=[f"{n} {a[0]}" for n, a in BAD_VALUES])
def test_a_bad_switch_value_is_a_clear_error(
    store: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    argv: list[str],
) -> None:
    monkeypatch.setenv(name, "maybe")
    code = main(["--store", store["db"], *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        f"taskdeck: error: {name} must be one of 1, true, yes, on (on) or 0, false, no, off "
        "(off); got 'maybe'"
    ]


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_an_off_value_changes_as_usual(
    store: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    monkeypatch.setenv("TASKDECK_READ_ONLY", value)
    assert main(["--store", store["db"], "resume", "emails"]) == 0
    assert capsys.readouterr().out == "emails: resumed\n"


def test_read_only_is_refused_by_a_real_process(store: dict[str, str], tmp_path: Path) -> None:
    before = fingerprint(tmp_path)
    done = run("--store", "t.db", "cancel", store["queued"], cwd=tmp_path,
               env={"TASKDECK_READ_ONLY": "1"})  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("taskdeck: error: read-only (TASKDECK_READ_ONLY=1): ")
    assert "Traceback" not in done.stderr
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_console_on_a_terminal_changes_nothing(
    store: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # Given a store, and a read-only console on a terminal (TASKDECK_READ_ONLY or the flag)
    before = fingerprint(tmp_path)
    args = ["--store", "t.db", "console"]
    if how == "env":
        monkeypatch.setenv("TASKDECK_READ_ONLY", "1")  # the child inherits it
    else:
        args.append("--read-only")
    term = Terminal(args, tmp_path)
    try:
        term.until_drawn(b"READ-ONLY")
        # When the operator cancels a task and pauses everything, then quits
        term.send(b"c")
        term.until_drawn(b"cancel is not allowed")
        term.send(b"P")
        term.until_drawn(b"pausing everything is not allowed")
        term.send(b"q")
        term.until_drawn(b"the nodes keep running")
        term.send(b"\r")
        assert term.wait(20) == 0
    finally:
        term.close()
    # Then both were refused and the store's files are as they were
    assert b"Traceback" not in term.output
    assert fingerprint(tmp_path) == before


def test_the_read_only_console_reads_the_store_of_your_app(
    store: dict[str, str], tmp_path: Path
) -> None:
    # Given your Engine, with workers and a handler, on the store (as --app names it)
    (tmp_path / "myapp.py").write_text(
        "from engine import Engine\n"
        "engine = Engine('t.db', workers=4)\n"
        "@engine.task(name='mail.send', queue='emails')\n"
        "async def send(to: str) -> None: ...\n"
    )
    before = fingerprint(tmp_path)
    # When the read-only console runs on it, then none of it runs: nothing is written
    term = Terminal(["console", "--read-only", "--app", "myapp:engine"], tmp_path)
    try:
        term.until_drawn(b"READ-ONLY")
        term.send(b"q")
        term.until_drawn(b"the nodes keep running")
        term.send(b"\r")
        assert term.wait(20) == 0
    finally:
        term.close()
    assert b"Traceback" not in term.output
    assert fingerprint(tmp_path) == before


def test_console_flags_are_refused_with_run_headless(
    store: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for flag in ("--read-only", "--hide-payloads"):
        assert main(["--store", store["db"], "run", "--headless", flag]) == 2
        assert f"{flag} is for the console" in capsys.readouterr().err


def test_read_only_console_needs_a_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--store", "missing.db", "console", "--read-only"]) == 1
    assert "no Taskdeck store at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    assert main(["--store", "missing.db", "console", "--read-only", "--workers", "2"]) == 2
    assert "--read-only runs no workers" in capsys.readouterr().err


# -- --hide-payloads ----------------------------------------------------------------


@pytest.fixture(params=["flag", "env"])
def hide(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``--hide-payloads`` as a flag, or as TASKDECK_HIDE_PAYLOADS=1."""
    if request.param == "env":
        monkeypatch.setenv("TASKDECK_HIDE_PAYLOADS", "1")
        return []
    return ["--hide-payloads"]


def test_show_hides_payload_and_result(
    store: dict[str, str], hide: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", store["db"], "show", store["done"], *hide]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "payload    (hidden: --hide-payloads)" in out
    assert "result     (hidden: --hide-payloads)" in out
    assert "mail.send" in out and "succeeded" in out  # the metadata stays


def test_show_keeps_the_error_of_a_failed_task(
    store: dict[str, str], hide: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", store["db"], "show", store["failed"], *hide]) == 0
    out = capsys.readouterr().out
    assert "smtp refused bad" in out  # what an operator needs to act on it
    assert '"bad"' not in out  # the payload is hidden


def test_show_json_nulls_payload_and_result_and_says_so(
    store: dict[str, str], hide: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", store["db"], "show", store["done"], "--json", *hide]) == 0
    out = capsys.readouterr().out
    row = json.loads(out)
    assert SECRET not in out
    assert row["payload"] is None and row["result"] is None
    assert row["payload_hidden"] is True and row["result_hidden"] is True
    assert row["handler"] == "mail.send" and row["state"] == "succeeded"


def test_show_without_hiding_shows_them(
    store: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", store["db"], "show", store["done"], "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["payload"] == {"to": SECRET} and "payload_hidden" not in row


def test_tasks_takes_the_flag_and_shows_no_payloads(
    store: dict[str, str], hide: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--json"]):
        assert main(["--store", store["db"], "tasks", *extra, *hide]) == 0
        out = capsys.readouterr().out
        assert "mail.send" in out and SECRET not in out
