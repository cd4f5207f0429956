"""Issue 13's command-line defects, each run the way it was found: ``taskdeck`` as a
process in a fresh directory (on a terminal where the console is concerned)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .cli_helpers import COMMAND, Terminal, cli_env, max_task_id, run

DOWNLOAD = '{"image_id": "a", "url": "https://photos.example/a.raw"}'


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints (and no traceback)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("taskdeck: error: "), done.stderr
    return lines[0]


# -- 1. global options before the command ------------------------------------------------
def test_a_store_given_before_the_command_is_the_store_written(tmp_path: Path) -> None:
    done = run("--store", "sqlite:///other.db", "enqueue", "images.download", DOWNLOAD,
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "other.db").exists() and not (tmp_path / "taskdeck.db").exists()
    assert max_task_id(tmp_path / "other.db") == int(done.stdout)
    shown = run("--store", "other.db", "--json", "show", done.stdout.strip(), cwd=tmp_path)
    assert shown.returncode == 0 and json.loads(shown.stdout)["handler"] == "images.download"


@pytest.mark.parametrize(
    ("before", "code", "says"),
    [
        (["--store", "/etc/passwd"], 1, "/etc/passwd"),
        (["--store", "mysql://x"], 1, "unsupported store URL scheme 'mysql'"),
        (["--app", "nope:x"], 2, "cannot import 'nope' for --app"),
        (["--workers", "-1"], 2, "--workers: must be from 0 to 4096 workers; got -1"),
        (["--store", "a.db", "--json"], 2, "was given twice with different values"),
    ],
)
def test_bad_global_options_before_the_command_are_not_ignored(
    tmp_path: Path, before: list[str], code: int, says: str
) -> None:
    args = [*before, "status"] if "--json" not in before else [*before, "status", "--store", "b.db"]
    done = run(*args, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert says in one_error_line(done)
    assert not (tmp_path / "taskdeck.db").exists()  # never the default store instead


def test_an_option_the_command_does_not_take_is_refused_before_it_too(tmp_path: Path) -> None:
    done = run("--store", "x.db", "screenshot", cwd=tmp_path)
    assert done.returncode == 2
    assert "--store does not apply to taskdeck screenshot" in one_error_line(done)
    done = run("--json", "enqueue", "images.download", DOWNLOAD, cwd=tmp_path)
    assert done.returncode == 2 and "--json does not apply to taskdeck enqueue" in done.stderr


# -- 2. no terminal: refused, not a spinning process --------------------------------------
@pytest.mark.parametrize("args", [[], ["console"], ["run", "--no-demo"], ["console", "--attach"]])
def test_the_console_without_a_terminal_points_at_headless(tmp_path: Path, args: list[str]) -> None:
    attach = "--attach" in args
    if attach:  # there must be a store to attach to
        assert run("enqueue", "images.report", cwd=tmp_path).returncode == 0
    started = time.monotonic()
    with (tmp_path / "out").open("w") as out:
        done = subprocess.run(
            [*COMMAND, *args], cwd=tmp_path, env=cli_env(), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.PIPE, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2
    assert "taskdeck run --headless" in one_error_line(done)
    assert "needs a terminal" in done.stderr
    assert time.monotonic() - started < 10
    assert attach or not (tmp_path / "taskdeck.db").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_console_on_a_terminal_stops_on_a_signal(tmp_path: Path, signum: int) -> None:
    term = Terminal(["--store", "t.db", "console", "--no-demo"], tmp_path)
    try:
        term.until_drawn(b"Queue")
        term.signal(signum)
        assert term.wait(30) == 0  # drained and quit, not killed by the signal
    finally:
        term.close()
    assert b"Traceback" not in term.output


def test_headless_under_nohup_keeps_running_on_sighup_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    def ignore_hup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does

    proc = subprocess.Popen(
        [*COMMAND, "run", "--headless", "--no-demo", "--json", "--store", "h.db"],
        cwd=tmp_path, env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=ignore_hup,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())  # it runs
        proc.send_signal(signal.SIGHUP)
        json.loads(proc.stdout.readline())  # still running after the hang-up
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "SIGTERM: stopping gracefully" in err


# -- 3. reads write nothing --------------------------------------------------------------
def make_store_with_a_due_schedule(tmp_path: Path) -> Path:
    """A store the demo engine ran on, whose images.report run is due now."""
    db = tmp_path / "taskdeck.db"
    proc = subprocess.Popen(
        [*COMMAND, "run", "--headless", "--no-demo", "--json"],
        cwd=tmp_path, env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schedules SET next_run = 1")  # long overdue
    return db


def test_read_commands_start_no_scheduler(tmp_path: Path) -> None:
    db = make_store_with_a_due_schedule(tmp_path)
    before = max_task_id(db)
    for args in (["status"], ["tasks"], ["schedules"], ["nodes"], ["status", "--json"]):
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert max_task_id(db) == before  # the due run was not enqueued by a read
    with sqlite3.connect(db) as conn:
        (next_run,) = conn.execute(
            "SELECT next_run FROM schedules WHERE name = 'images.report'"
        ).fetchone()
    assert next_run == 1


@pytest.mark.parametrize(
    "args",
    [
        ["status"], ["tasks"], ["show", "1"], ["schedules"], ["workflow", "1"], ["nodes"],
        ["cancel", "1"], ["retry", "1"], ["schedule", "run", "images.report"],
        ["node", "all", "set-workers", "2"],
    ],
)  # fmt: skip
def test_no_command_but_enqueue_creates_a_store(tmp_path: Path, args: list[str]) -> None:
    done = run(*args, "--store", "typo.db", cwd=tmp_path)
    assert done.returncode == 1
    assert "no Taskdeck store" in one_error_line(done) and "typo.db" in done.stderr
    assert list(tmp_path.iterdir()) == []  # not even -wal or -shm


def test_the_attached_console_refuses_a_store_that_is_not_there(tmp_path: Path) -> None:
    done = run("console", "--attach", "--store", "typo.db", cwd=tmp_path)
    assert done.returncode == 1
    assert "no Taskdeck store at" in one_error_line(done) and "nothing to attach to" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_enqueue_says_when_it_creates_a_store(tmp_path: Path) -> None:
    done = run("enqueue", "images.download", DOWNLOAD, "--store", "new.db", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "1"
    assert "created a new store at" in done.stderr and "new.db" in done.stderr
    again = run("enqueue", "images.download", DOWNLOAD, "--store", "new.db", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == ""


# -- 4 and 28. numeric flags --------------------------------------------------------------
RUN = ["run", "--headless"]
DELAYED = ["enqueue", "images.download", DOWNLOAD, "--delay"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([*RUN, "--interval", "0"], "--interval: must be from 0.1 to 3600 s; got 0 "),
        ([*RUN, "--interval", "-1"], "--interval: must be from 0.1 to 3600 s; got -1 "),
        ([*RUN, "--interval", "nan"], "--interval: must be a finite number"),
        ([*RUN, "--interval", "soon"], "--interval: must be a number from 0.1"),
        ([*RUN, "--demo-rate", "-5"], "--demo-rate: must be from 0.1 to 1000 per second; got -5"),
        ([*RUN, "--demo-rate", "inf"], "--demo-rate: must be a finite number"),
        (["console", "--refresh", "0"], "--refresh: must be from 0.1 to 20 per second; got 0"),
        (["tasks", "--limit", "0"], "--limit: must be from 1 to 10000 tasks; got 0"),
        (["tasks", "--offset", "-3"], "--offset: must be from 0 to 1000000000 tasks; got -3"),
        ([*DELAYED, "-1"], "--delay: must be from 0 to 315360000 s; got -1"),
        ([*DELAYED, "nan"], "--delay: must be a finite number"),
        (["screenshot", "--seconds", "-2"], "--seconds: must be from 0 to 600 s; got -2"),
        (["node", "all", "set-workers", "-3"], "count must be from 0 to 4096 workers; got -3"),
    ],
)  # fmt: skip
def test_numeric_flags_are_checked_like_settings(
    tmp_path: Path, args: list[str], says: str
) -> None:
    started = time.monotonic()
    done = run(*args, cwd=tmp_path, timeout=20)
    assert done.returncode == 2
    assert says in one_error_line(done)
    assert time.monotonic() - started < 15
    assert not (tmp_path / "taskdeck.db").exists()


# -- 11. exit codes ------------------------------------------------------------------------
def test_exit_codes_follow_one_rule(tmp_path: Path) -> None:
    """2: what was typed is wrong; 1: it was fine but the store, a key or a task's state
    refused it."""
    assert run("enqueue", "images.download", DOWNLOAD, cwd=tmp_path).returncode == 0
    usage = [
        ["enqueue", "images.download", "{bad"],
        ["enqueue", "images.download", DOWNLOAD, "--priority", "urgent"],
        ["enqueue", "images.download", DOWNLOAD, "--priority", "10"],
        ["enqueue", "images.nope", DOWNLOAD],
        ["enqueue", "images.download", '{"url": "x"}'],
        ["enqueue", "images.download", DOWNLOAD, "--run-at", "tomorrow"],
        ["show", "abc"],
        ["tasks", "--state", "lost"],
        ["frobnicate"],
        ["status", "--no-such-option"],
        ["node", "all", "settings", "lease_ttl=-1"],
    ]
    refused = [
        ["status", "--key-file", str(tmp_path / "missing.key")],
        ["show", "99"],
        ["show", str(2**64)],
        ["cancel", "99"],
        ["retry", "1"],  # queued: nothing to retry
        ["schedule", "run", "no.such.schedule"],
        ["node", "ghost", "set-workers", "2"],
        ["status", "--store", "missing.db"],
    ]
    for args in usage:
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        one_error_line(done)
    for args in refused:
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 1, (args, done.stderr)
        one_error_line(done)


# -- 12 and 25. payloads: nesting and bytes -------------------------------------------------
def test_a_deeply_nested_payload_is_refused_with_the_limit(tmp_path: Path) -> None:
    deep = '{"url": ' + "[" * 5000 + "]" * 5000 + ', "image_id": "a"}'
    done = run("enqueue", "images.download", deep, cwd=tmp_path)
    assert done.returncode == 2
    line = one_error_line(done)
    assert "nested 5,001 levels deep; at most 200 are allowed" in line
    assert not (tmp_path / "taskdeck.db").exists()


def test_a_payload_that_is_not_utf8_is_refused_with_the_byte_offset(tmp_path: Path) -> None:
    done = subprocess.run(
        [*COMMAND, "enqueue", "images.download", b'{"image_id": "\xff", "url": "u"}'],
        cwd=tmp_path, env=cli_env(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "not valid UTF-8" in err and "byte 14 (0xff)" in err and "Traceback" not in err
    assert not (tmp_path / "taskdeck.db").exists()
