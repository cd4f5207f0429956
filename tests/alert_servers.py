"""Real local servers for the alert channel tests: an HTTP server on 127.0.0.1 that
records JSON POSTs (webhook and Slack format) and answers with scripted statuses, and
an SMTP server (aiosmtpd) that records the mails it receives."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """What a server got, with the time each arrived."""

    items: list[tuple[float, Any]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # statuses to answer, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def add(self, item: Any) -> None:
        with self.lock:
            self.items.append((time.monotonic(), item))

    def bodies(self) -> list[Any]:
        with self.lock:
            return [item for _, item in self.items]

    def reply(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else 200


@contextmanager
def http_server(path: str = "/hook") -> Iterator[Received]:
    got = Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = got.reply()
            got.add(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Mailbox:
    def __init__(self, got: Received) -> None:
        self.got = got

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail: Message = message_from_bytes(envelope.content)
        self.got.add({"to": list(envelope.rcpt_tos), "subject": mail["Subject"], "mail": mail})
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[Received]:
    got = Received()
    port = free_port()
    controller = Controller(_Mailbox(got), hostname="127.0.0.1", port=port)
    controller.start()
    got.url = f"smtp://127.0.0.1:{port}"
    try:
        yield got
    finally:
        controller.stop()


def free_port() -> int:
    """A port nothing listens on (a refused connection)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
