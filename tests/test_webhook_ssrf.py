"""Issue 13 item 23: a webhook is no way into the local network. Loopback, private,
link-local (metadata), unspecified and other non-public addresses are refused at
enqueue in every form they can be written, and after DNS at send time; URLs with a
user and password are refused; redirects are not followed (not to another port as a
GET, not to ftp://). The setting webhook_allow_private lets them through."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine import Engine, TaskRecord, TaskState
from engine.webhook import WEBHOOK_HANDLER

from .conftest import EngineFactory

RULE = "completion webhooks may reach only public addresses"

REFUSED = {
    "http://169.254.169.254/latest/meta-data/": "a link-local address (like the cloud metadata",
    "http://127.0.0.1:22/": "'127.0.0.1' is a loopback address",
    "http://localhost:5432/": "'localhost' is a loopback name",
    "http://api.localhost/hook": "a loopback name",
    "http://[::1]/hook": "'::1' is a loopback address",
    "http://0.0.0.0/hook": "an unspecified address",
    "http://[::]:80/hook": "an unspecified address",
    "http://10.0.0.1/hook": "'10.0.0.1' is a private address",
    "https://192.168.1.20/hook": "a private address",
    "http://100.64.0.1/hook": "a shared (carrier-grade NAT) address",
    "http://224.0.0.1/hook": "a multicast address",
    "http://240.0.0.1/hook": "a reserved address",
    "http://2130706433/hook": "'2130706433' is a loopback address (the address 127.0.0.1)",
    "http://0x7f.1/hook": "loopback address (the address 127.0.0.1)",
    "http://017700000001/hook": "loopback address (the address 127.0.0.1)",
    "http://127.1/hook": "loopback address (the address 127.0.0.1)",
    "http://[::ffff:127.0.0.1]/hook": "a loopback address (inside the IPv6 address)",
    "http://[64:ff9b::a9fe:a9fe]/hook": "link-local address (like the cloud metadata",
}


@dataclass
class Server:
    """A local HTTP server: records each request; answers ``reply(path)``."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    redirect_to: str | None = None


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Two local servers: the first redirects (302) to ``redirect_to`` when set."""
    made: list[tuple[Server, http.server.ThreadingHTTPServer, threading.Thread]] = []
    for _ in range(2):
        state = Server()

        class Handler(http.server.BaseHTTPRequestHandler):
            server_state = state

            def _answer(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(size)
                me = self.server_state
                me.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(302 if me.redirect_to else 200)
                if me.redirect_to:
                    self.send_header("Location", me.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        made.append((state, server, thread))
    yield [state for state, _, _ in made]
    for _, server, thread in made:
        server.shutdown()
        server.server_close()
        thread.join(5)


def register(engine: Engine) -> None:
    @engine.task(name="job")
    async def job() -> str:
        return "done"


async def webhook_of(engine: Engine, task_id: str) -> TaskRecord:
    """The finished webhook task set off by ``task_id``."""
    await engine.wait(task_id, timeout=10)
    for record in await engine.tasks(handler=WEBHOOK_HANDLER):
        full = await engine.get(record.id)
        if full.payload["task_id"] == task_id:
            return await engine.wait(full.id, timeout=10)
    raise AssertionError(f"no webhook task for {task_id}")


async def test_non_public_addresses_and_credentials_are_refused_at_enqueue(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0)
    register(engine)
    async with engine:
        for url, why in REFUSED.items():
            with pytest.raises(ValueError) as info:
                await engine.enqueue("job", webhook=url)
            assert why in str(info.value), url
            assert RULE in str(info.value) and "webhook_allow_private" in str(info.value)
        for url in ("https://user:pass@example.com/hook", "https://token@example.com/hook"):
            with pytest.raises(ValueError, match="must not hold a user name or password"):
                await engine.enqueue("job", webhook=url)
        with pytest.raises(ValueError, match="webhook must be an http:// or https:// URL"):
            await engine.enqueue("job", webhook="ftp://example.com/hook")
        with pytest.raises(ValueError, match="must be printable ASCII"):
            await engine.enqueue("job", webhook="https://bücher.example/hook")
        assert (await engine.tasks()).total == 0
        # public hosts and names are for the send-time check
        await engine.enqueue("job", webhook="https://hooks.example.com/done?token=a")
        await engine.enqueue("job", webhook="http://93.184.216.34:8080/hook")
        # with the setting on, they are let through
        await engine.update_settings(webhook_allow_private=True)
        for url in REFUSED:
            await engine.enqueue("job", webhook=url)


async def test_a_name_that_resolves_to_loopback_is_refused_at_send_time(
    make_engine: EngineFactory, servers: list[Server]
) -> None:
    engine = make_engine(workers=2, webhook_allow_private=True)
    register(engine)
    port = servers[0].url.rsplit(":", 1)[1]
    async with engine:
        # allowed: delivered to the checked address, with the URL's host in Host
        first = await engine.enqueue("job", webhook=f"http://localhost:{port}/hook")
        assert (await webhook_of(engine, first)).state is TaskState.SUCCEEDED
        assert servers[0].requests[0][2]["Host"] == f"localhost:{port}"
        # no longer allowed when it is sent: the name resolves to 127.0.0.1 (or ::1)
        await engine.update_settings(webhook_allow_private=False)
        second = await engine.enqueue("job")
        engine_hook = await engine.enqueue(
            WEBHOOK_HANDLER,
            {"url": f"http://localhost:{port}/hook", "task_id": second, "state": "succeeded"},
        )
        hook = await engine.wait(engine_hook, timeout=10)
        assert hook.state is TaskState.FAILED and hook.attempts == 1  # not retried
        assert "webhook host 'localhost' resolves to" in (hook.error or "")
        assert "a loopback address; not sent" in (hook.error or "")
        assert len(servers[0].requests) == 1


@pytest.mark.parametrize("target", ["other port", "ftp"])
async def test_redirects_are_not_followed(
    make_engine: EngineFactory, servers: list[Server], target: str
) -> None:
    redirector, other = servers
    redirector.redirect_to = (
        f"{other.url}/stolen" if target == "other port" else "ftp://127.0.0.1/stolen"
    )
    engine = make_engine(workers=2, webhook_allow_private=True)
    register(engine)
    async with engine:
        task_id = await engine.enqueue("job", webhook=f"{redirector.url}/hook")
        hook = await webhook_of(engine, task_id)
    assert hook.state is TaskState.FAILED and hook.attempts == 1
    assert "answered 302 Found (a redirect to" in (hook.error or "")
    assert "webhooks follow no redirects" in (hook.error or "")
    assert [(method, path) for method, path, _ in redirector.requests] == [("POST", "/hook")]
    assert other.requests == []  # never reached, as a GET or otherwise


async def test_a_webhook_task_enqueued_by_hand_is_checked_when_it_is_sent(
    make_engine: EngineFactory, servers: list[Server]
) -> None:
    engine = make_engine(workers=2)
    port = servers[0].url.rsplit(":", 1)[1]
    async with engine:
        for url, why in [
            (f"http://2130706433:{port}/hook", "'2130706433' resolves to 127.0.0.1, a loopback"),
            (f"ftp://127.0.0.1:{port}/hook", "webhook must be an http:// or https:// URL"),
            (f"http://user:pw@127.0.0.1:{port}/hook", "must not hold a user name or password"),
        ]:
            hook_id = await engine.enqueue(
                WEBHOOK_HANDLER, {"url": url, "task_id": "1", "state": "succeeded"}
            )
            hook = await engine.wait(hook_id, timeout=10)
            assert hook.state is TaskState.FAILED and hook.attempts == 1, url
            assert why in (hook.error or ""), url
    assert servers[0].requests == []
