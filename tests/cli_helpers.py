"""Running the ``taskdeck`` command the way a user does: a process in a directory of
its own, or on a terminal (a pty) for the console."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "console.cli"]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}
    env.pop("TASKDECK_KEY", None)
    env.pop("TASKDECK_KEY_FILE", None)
    for name in ("TASKDECK_CONFIG", "TASKDECK_STORE"):  # the test's own, if it gives one
        if name not in (extra or {}):
            env.pop(name, None)
    return env


def run(
    *args: str | bytes,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``taskdeck ARGS`` in ``cwd``; stdin is /dev/null unless given."""
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=cli_env(env),
        stdin=stdin,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )


def max_task_id(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM tasks").fetchone()[0])


class Terminal:
    """``taskdeck ARGS`` on a pseudo-terminal of ``columns`` × ``lines``."""

    def __init__(self, args: Sequence[str], cwd: Path, columns: int = 160, lines: int = 50):
        import fcntl
        import termios

        size = struct.pack("HHHH", lines, columns, 0, 0)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the command on a terminal of that size
            fcntl.ioctl(0, termios.TIOCSWINSZ, size)
            os.chdir(cwd)
            os.environ.update(
                cli_env({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(lines)})
            )
            os.execv(sys.executable, [sys.executable, *COMMAND[1:], *args])
        self.output = b""
        self.code: int | None = None

    def read(self, seconds: float) -> bytes:
        """What the program drew within ``seconds`` (less if it exits)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.code is None:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the program closed the terminal
                    chunk = b""
                if not chunk:
                    self.wait(5)
                    break
                self.output += chunk
        return self.output

    def until_drawn(self, text: bytes, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.output and time.monotonic() < deadline and self.code is None:
            self.read(0.2)
        assert text in self.output, (
            f"{text!r} never appeared on the terminal (exit {self.code}): {self.output[-2000:]!r}"
        )

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, seconds: float) -> int:
        """The exit code (negative: killed by that signal); kills it after ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.code is None and time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
                break
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                if ready:
                    self.output += os.read(self.fd, 65536)
            except OSError:
                time.sleep(0.05)
        if self.code is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            raise AssertionError(f"the console did not exit within {seconds:g} s")
        return self.code

    def close(self) -> None:
        if self.code is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
