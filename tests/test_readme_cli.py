"""Every ``taskdeck`` command the README shows runs as written against the demo and a
fresh store, in the README's order: exit code 0 and no traceback. The console ones run
on a terminal (a pty) and are stopped with SIGTERM."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from console.screenshot import SHOTS

from .cli_helpers import COMMAND, ROOT, Terminal, cli_env

README = (ROOT / "README.md").read_text("utf-8")
PROGRAMS = ("taskdeck", ".venv/bin/taskdeck")


def commands_in(text: str) -> list[list[str]]:
    """Each ``taskdeck …`` line of the shell blocks in ``text``, as arguments, in order
    (continuation lines joined, comments dropped; install lines and pytest skipped)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] in PROGRAMS:
                    commands.append(words[1:])
    return commands


SESSION_START = README.index("## Command line\n")
SESSION_END = README.index("\n## ", SESSION_START + 1)
#: The Command line section: one session, run in order in one directory.
SESSION = commands_in(README[SESSION_START:SESSION_END])
#: Every other section's commands: each on a fresh store of its own.
ELSEWHERE = commands_in(README[:SESSION_START] + README[SESSION_END:])


def is_console(args: list[str]) -> bool:
    command = next((a for a in args if not a.startswith("-")), "console")
    return command == "console" or (command == "run" and "--headless" not in args)


def test_the_readme_shows_every_command() -> None:
    shown = {next((a for a in c if not a.startswith("-")), "console") for c in SESSION + ELSEWHERE}
    assert shown >= {
        "console", "run", "enqueue", "status", "tasks", "show", "cancel", "retry",
        "schedules", "schedule", "workflow", "nodes", "node", "screenshot", "settings",
        "serve",
    }  # fmt: skip


def serve_shown(args: list[str], home: Path) -> None:
    """``taskdeck serve`` as written (on a free port): until it says where it serves,
    then SIGTERM; it must exit 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    args = list(args)
    if "--port" in args:
        args[args.index("--port") + 1] = port
    else:
        args += ["--port", port]
    server = subprocess.Popen(
        [*COMMAND, *args], cwd=home, env=cli_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stderr is not None
    first = server.stderr.readline()
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=60)
    assert "HTTP on" in first and server.returncode == 0, (args, first + err)


def run_shown(args: list[str], home: Path) -> None:
    """One command as written: exit code 0 and no traceback (the console on a terminal,
    until it has drawn the dashboard; then SIGTERM, and it must drain and exit 0;
    ``serve`` until it listens, then SIGTERM)."""
    if args[:1] == ["serve"]:
        serve_shown(args, home)
        return
    if is_console(args):
        term = Terminal(args, home)
        try:
            term.until_drawn(b"Queue")
            term.signal(signal.SIGTERM)
            assert term.wait(60) == 0, args
        finally:
            term.close()
        assert b"Traceback" not in term.output, args
        return
    done = subprocess.run(
        [*COMMAND, *args], cwd=home, env=cli_env(), capture_output=True, text=True,
        timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stderr)
    assert "Traceback" not in done.stderr, (args, done.stderr)


def test_the_command_line_section_runs_as_written_in_order(tmp_path: Path) -> None:
    service: subprocess.Popen[str] | None = None
    try:
        for args in SESSION:
            if args[:2] != ["run", "--headless"]:
                run_shown(args, tmp_path)
                continue
            service = subprocess.Popen(  # the service, left running for the rest
                [*COMMAND, *args], cwd=tmp_path, env=cli_env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert service.stdout is not None
            while " succeeded 0 " in service.stdout.readline():
                pass  # until the demo load is being worked
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)
            _, err = service.communicate(timeout=60)
            assert service.returncode == 0 and "Traceback" not in err, err
    assert service is not None, "the README shows no taskdeck run --headless"


@pytest.mark.parametrize("args", ELSEWHERE, ids=[" ".join(a) or "taskdeck" for a in ELSEWHERE])
def test_every_other_command_in_the_readme_runs_as_written(args: list[str], tmp_path: Path) -> None:
    run_shown(args, tmp_path)
    if args[:1] == ["screenshot"]:  # every screen, as the README's pictures show it
        shots = tmp_path / "screenshots"
        assert {p.stem for p in shots.glob("*.svg")} == set(SHOTS)
        assert {"dashboard-100x30", "enqueue-form", "task-detail", "failed-tasks"} <= set(SHOTS)
        dashboard = (shots / "dashboard-160x50.svg").read_text()
        assert "Queue" in dashboard and "Workers" in dashboard and "Bottlenecks" in dashboard
        assert "Expecting" in (shots / "enqueue-form.svg").read_text()  # the payload error
