"""The ``taskdeck`` command, run the way a user runs it: as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import taskdeck

ROOT = Path(__file__).resolve().parent.parent


def start_headless(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``taskdeck run --headless --json --interval 0.2 …`` as a background process."""
    command = [
        sys.executable,
        "-m",
        "console.cli",
        "run",
        "--headless",
        "--json",
        "--interval",
        "0.2",
    ]
    return subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_headless_runs_the_demo_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    store = tmp_path / "demo.db"
    proc = start_headless("--store", str(store), "--workers", "4", "--demo-rate", "10")
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = json.loads(proc.stdout.readline())
        lines.append(line)
        if line["counts"]["succeeded"] > 0:
            break
    assert lines[-1]["counts"]["succeeded"] > 0, "the demo load did not get processed"
    assert lines[-1]["workers"] == 4 and "downloads" in lines[-1]["queues"]
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert time.monotonic() - t0 < 10 + 1  # shutdown_grace + 1 s
    assert "SIGTERM: stopping gracefully" in err and "Traceback" not in err

    status = taskdeck("status", "--json", "--store", str(store))
    assert status.returncode == 0, status.stderr
    queues = json.loads(status.stdout)["queues"]
    assert sum(q["running"] for q in queues.values()) == 0  # nothing left running
    assert sum(q["succeeded"] for q in queues.values()) >= 1

    table = taskdeck("status", "--store", str(store))
    assert table.returncode == 0 and "downloads" in table.stdout and "total" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["status", "--store", "/no/such/dir/t.db"],
            1,
            "the directory /no/such/dir does not exist",
        ),
        (["status", "--store", "mysql://db/x"], 1, "unsupported store URL scheme 'mysql'"),
        (
            ["run", "--headless", "--app", "no_such_module:engine"],
            2,
            "cannot import 'no_such_module'",
        ),
        (["run", "--headless", "--app", "nocolon"], 2, "must look like module:attribute"),
        (["run", "--headless", "--workers", "-1"], 2, "--workers: must be from 0 to 4096"),
        (["enqueue", "images.resize", "{bad", "--store", ":memory:"], 2, "not valid JSON"),
        (["screenshot", "--seconds", "-1"], 2, "--seconds: must be from 0 to 600 s; got -1"),
        (["console", "--attach", "--app", "x:y"], 2, "--attach cannot be combined with --app"),
        (["console", "--attach", "--workers", "3"], 2, "--attach runs no workers"),
    ],
)
def test_user_mistakes_get_one_line_and_an_exit_code(
    args: list[str], code: int, message: str
) -> None:
    result = taskdeck(*args)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("x" * 44)
    key.chmod(0o644)
    result = taskdeck("status", "--store", str(tmp_path / "t.db"), "--key-file", str(key))
    assert result.returncode == 1  # a key problem (issue 13: one rule for exit codes)
    assert f"chmod 600 {key}" in result.stderr


def test_encrypted_store_needs_its_key(tmp_path: Path) -> None:
    from engine import generate_key

    env = {**os.environ, "TASKDECK_KEY": generate_key()}
    store = str(tmp_path / "secret.db")
    made = taskdeck("enqueue", "images.report", "--store", store, env=env)
    assert made.returncode == 0, made.stderr
    assert taskdeck("status", "--store", store, env=env).returncode == 0
    without = taskdeck("status", "--store", store)
    assert without.returncode == 1 and "is encrypted" in without.stderr


def test_bad_setting_in_the_environment_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "TASKDECK_LEASE_TTL": "soon"}
    result = taskdeck("status", "--store", str(tmp_path / "t.db"), env=env)
    assert result.returncode == 2
    assert "error: TASKDECK_LEASE_TTL: must be a number from 0.5 to 86400 s; got 'soon'" in (
        result.stderr
    )


def test_run_your_own_engine_with_app(tmp_path: Path) -> None:
    module = tmp_path / "myapp.py"
    module.write_text(
        "from engine import Engine\n"
        f"engine = Engine({str(tmp_path / 'app.db')!r}, workers=3)\n"
        "@engine.task(name='hello')\n"
        "async def hello(name: str) -> str:\n"
        "    return f'hello {name}'\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = start_headless("--app", "myapp:engine", cwd=tmp_path, env=env)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert first["workers"] == 3 and first["store"].endswith("app.db")
    both = taskdeck("run", "--headless", "--app", "myapp:engine", "--store", "x.db", env=env)
    assert both.returncode == 2 and "--store cannot be combined with --app" in both.stderr


def test_enqueue_list_cancel_and_retry_from_the_shell(tmp_path: Path) -> None:
    store = str(tmp_path / "cli.db")
    made = taskdeck(
        "enqueue",
        "images.resize",
        '{"image_id": "a", "bytes": 10}',
        "--priority",
        "high",
        "--store",
        store,
    )
    assert made.returncode == 0, made.stderr
    task_id = made.stdout.strip()

    listed = taskdeck("tasks", "--json", "--state", "queued", "--store", store)
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    assert page["total"] == 1
    (row,) = page["tasks"]
    assert row["id"] == task_id and row["priority"] == 7 and row["state"] == "queued"
    assert "payload" not in row  # list views never show payloads

    cancelled = taskdeck("cancel", task_id, "--store", store)
    assert cancelled.returncode == 0 and "cancelled (was queued)" in cancelled.stdout
    retried = taskdeck("retry", task_id, "--store", store)
    assert retried.returncode == 0 and "queued again" in retried.stdout

    unknown = taskdeck("cancel", "no-such-id", "--store", store)
    assert unknown.returncode == 2 and "no-such-id" in unknown.stderr  # not an id at all
    missing = taskdeck("cancel", "424242", "--store", store)
    assert missing.returncode == 1 and "424242" in missing.stderr
    assert "Traceback" not in unknown.stderr


def test_enqueue_to_an_unknown_handler_names_the_close_ones(tmp_path: Path) -> None:
    result = taskdeck("enqueue", "images.resise", "--store", str(tmp_path / "t.db"))
    assert result.returncode == 2  # what was typed is wrong
    assert "images.resise" in result.stderr and "images.resize" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_in_a_terminal_starts_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """``taskdeck console`` in a real pseudo-terminal: it draws the dashboard, works the
    demo load, and SIGTERM drains and exits 0 with the store left consistent."""
    import fcntl
    import pty
    import struct
    import termios

    store = tmp_path / "console.db"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "console", "--store", str(store)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and b"Bottlenecks" not in screen:
            try:
                screen += os.read(master, 65536)
            except OSError:
                break
        assert b"Queue" in screen and b"Bottlenecks" in screen
        done = 0
        while time.monotonic() < deadline and done == 0:  # the demo load gets worked
            status = taskdeck("status", "--json", "--store", str(store))
            if status.returncode == 0:
                done = sum(q["succeeded"] for q in json.loads(status.stdout)["queues"].values())
            time.sleep(0.3)
        assert done > 0
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None and time.monotonic() < deadline + 15:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    status = taskdeck("status", "--json", "--store", str(store))
    queues = json.loads(status.stdout)["queues"]
    assert sum(q["running"] for q in queues.values()) == 0  # nothing left running


def test_attached_console_steers_a_headless_engine_in_another_process(tmp_path: Path) -> None:
    """``taskdeck console --attach --store X`` in a real pseudo-terminal, next to a
    headless engine on the same SQLite file: it shows the engine as a node, ``]`` gives
    that engine one more worker, and SIGTERM ends the console (not the engine)."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    store = tmp_path / "cluster.db"
    engine = start_headless("--store", str(store), "--workers", "2", "--no-demo")
    assert engine.stdout is not None
    assert json.loads(engine.stdout.readline())["workers"] == 2
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    console = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "console", "--attach", "--store", str(store)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(slave)
    screen = bytearray()
    seen = threading.Event()

    def drain() -> None:  # keep reading, or the console blocks on a full terminal
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)
            if b"attached" in screen and b"alive" in screen:
                seen.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert seen.wait(30), "the console did not show the node"
        assert b"Nodes" in screen
        os.write(master, b"]")  # the only node is the selected one
        deadline = time.monotonic() + 15
        workers = 2
        while time.monotonic() < deadline and workers != 3:
            workers = json.loads(engine.stdout.readline())["workers"]
        assert workers == 3
        console.send_signal(signal.SIGTERM)
        assert console.wait(timeout=15) == 0
        assert engine.poll() is None  # the engine runs on
    finally:
        for proc in (console, engine):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        engine.communicate(timeout=20)
        if console.poll() is None:
            console.kill()
        os.close(master)
        reader.join(timeout=5)
    assert engine.returncode == 0


def test_headless_goes_on_working_when_its_output_is_not_read(tmp_path: Path) -> None:
    """Status lines to a pipe nobody reads (a full pipe): the engine must not block on
    them — the demo's tasks keep succeeding — and the lines dropped meanwhile are
    counted in the next one the reader gets."""
    import fcntl

    store = tmp_path / "demo.db"
    proc = start_headless(
        "--store", str(store), "--workers", "4", "--demo-rate", "20", "--interval", "0.1"
    )
    assert proc.stdout is not None
    fcntl.fcntl(proc.stdout.fileno(), 1031, 4096)  # F_SETPIPE_SZ: full after a few lines

    def succeeded() -> int:
        out = taskdeck("status", "--json", "--store", str(store))
        if out.returncode != 0:
            return 0
        return sum(q["succeeded"] for q in json.loads(out.stdout)["queues"].values())

    try:
        deadline = time.monotonic() + 30
        while succeeded() == 0:
            assert time.monotonic() < deadline, "the demo load did not get processed"
        full_by = time.monotonic() + 2.0  # 20 lines of about 1 kB: the pipe is full by then
        while time.monotonic() < full_by:
            time.sleep(0.1)
        before = succeeded()
        while succeeded() < before + 10:  # still working with the pipe full
            assert time.monotonic() < deadline + 30, "the engine stopped with its output full"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert any(line.get("dropped_lines", 0) > 0 for line in lines), lines[-3:]
    assert "Traceback" not in err
