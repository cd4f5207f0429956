"""Starting ``taskdeck serve`` (or ``run --headless --http``) as a user does, and
talking to it over HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli_helpers import COMMAND, cli_env

READ_TOKEN = "read-token-0123456789abcdef"
WRITE_TOKEN = "write-token-0123456789abcdef"
TOKENS_ENV = {
    "TASKDECK_HTTP_READ_TOKENS": READ_TOKEN,
    "TASKDECK_HTTP_WRITE_TOKENS": WRITE_TOKEN,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Answer:
    status: int
    body: Any  # JSON, or text for /metrics
    headers: dict[str, str]


@dataclass
class Served:
    """A running server: its base URL and process."""

    url: str
    process: subprocess.Popen[str]

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = WRITE_TOKEN,
        raw: bytes | None = None,
    ) -> Answer:  # fmt: skip
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return _answer(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return _answer(exc.code, exc.read(), dict(exc.headers))

    def get(self, path: str, token: str | None = READ_TOKEN) -> Answer:
        return self.call("GET", path, token=token)

    def post(self, path: str, body: Any = None, token: str | None = WRITE_TOKEN) -> Answer:
        return self.call("POST", path, body, token)


def _answer(status: int, raw: bytes, headers: dict[str, str]) -> Answer:
    text = raw.decode()
    try:
        return Answer(status, json.loads(text), headers)
    except json.JSONDecodeError:
        return Answer(status, text, headers)


@contextmanager
def serving(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``taskdeck ARGS`` (which must take ``--port``/``--http`` PORT from us) until the
    block ends; waits for the port to accept connections, not for a fixed time."""
    port = free_port()
    flag = "--http" if "run" in args else "--port"
    process = subprocess.Popen(
        [*COMMAND, *args, flag, str(port)],
        cwd=cwd,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        served = Served(f"http://127.0.0.1:{port}", process)
        # the port opens first: /ready says 503 until the engine runs
        until_true(lambda: served.get("/ready", token=None).status == 200, what="/ready")
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def wait_for_port(port: int, process: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"the server exited ({process.returncode}): {err}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listened on port {port} after {seconds:g} s")


def until_true(check: Any, seconds: float = 15, what: str = "") -> None:
    """Poll another process's answer (no event crosses the process boundary)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what or check}")
        time.sleep(0.02)
