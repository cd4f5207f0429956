"""Completion hooks (``@engine.task(on_success=…, on_failure=…)``) and webhooks
(``enqueue(..., webhook=url)``: the final record POSTed as JSON by a task of its own)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine import Engine, EventKind, TaskRecord, TaskState
from engine.webhook import WEBHOOK_HANDLER, WEBHOOK_QUEUE

from .conftest import EngineFactory

# -- hooks -------------------------------------------------------------------------


async def test_hooks_get_the_final_record(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2)
    succeeded: list[TaskRecord] = []
    failed: list[TaskRecord] = []
    both = asyncio.Event()

    async def on_success(record: TaskRecord) -> None:
        succeeded.append(record)
        if failed:
            both.set()

    def on_failure(record: TaskRecord) -> None:  # a plain function works too
        failed.append(record)
        if succeeded:
            both.set()

    @engine.task(name="charge", retries=1, on_success=on_success, on_failure=on_failure)
    async def charge(amount: int) -> dict[str, int]:
        if amount < 0:
            raise ValueError("negative amount")
        return {"charged": amount}

    async with engine:
        ok = await engine.enqueue("charge", {"amount": 5})
        bad = await engine.enqueue("charge", {"amount": -1})
        await asyncio.wait_for(both.wait(), 10)
        await engine.drain(timeout=5)
    # Each hook ran once, after the final state was stored, with the whole record
    assert [r.id for r in succeeded] == [ok]
    assert succeeded[0].state == TaskState.SUCCEEDED
    assert succeeded[0].result == {"charged": 5} and succeeded[0].payload == {"amount": 5}
    assert [r.id for r in failed] == [bad]  # not called for the attempt that was retried
    assert failed[0].state == TaskState.FAILED and failed[0].attempts == 2
    assert "negative amount" in (failed[0].error or "")


async def test_a_failing_hook_is_reported_and_the_engine_carries_on(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=1)

    def on_success(record: TaskRecord) -> None:
        raise RuntimeError(f"cannot notify about {record.id}")

    @engine.task(name="job", on_success=on_success)
    async def job(n: int) -> int:
        return n

    errors = engine.events([EventKind.HOOK_ERROR])
    async with engine:
        first = await engine.enqueue("job", {"n": 1})
        event = await asyncio.wait_for(errors.get(), 5)
        assert event.task_id == first and event.handler == "job"
        assert f"on_success failed: cannot notify about {first}" in event.message
        # The task's own outcome stands and the engine keeps working
        assert (await engine.get(first)).state == TaskState.SUCCEEDED
        second = await engine.enqueue("job", {"n": 2})
        record = await engine.wait(second, timeout=5)
        assert record.state == TaskState.SUCCEEDED and record.result == 2
        await asyncio.wait_for(errors.get(), 5)  # its hook failed as well, and was reported


def test_hooks_must_be_callable(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0)

    async def job() -> None:
        pass

    with pytest.raises(TypeError, match="on_success must be a function"):
        engine.task(name="job", on_success="notify")(job)


# -- webhooks ------------------------------------------------------------------------


@dataclass
class Endpoint:
    """A local HTTP endpoint: answers each POST with the next scripted reply
    (a status code, or ("slow", seconds) to answer 200 late); 200 when the script ends."""

    url: str = ""
    script: list[Any] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else 200


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()
    state.release.set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.bodies.append(json.loads(body))
                state.headers.append(dict(self.headers))
            reply = state.next_reply()
            state.release.wait(10)
            if isinstance(reply, tuple):
                time.sleep(reply[1])
                reply = 200
            self.send_response(reply)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (timeout) closed the socket; nothing to report

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/taskdeck"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


async def _webhook_task(engine: Engine, for_task: str) -> TaskRecord:
    """The webhook task a finished task set off (stored with its final state)."""
    await engine.wait(for_task, timeout=5)
    for record in await engine.tasks(handler=WEBHOOK_HANDLER):
        full = await engine.get(record.id)
        if full.payload["task_id"] == for_task:
            return full
    raise AssertionError(f"no webhook task for task {for_task}")


async def test_a_webhook_receives_the_final_record(
    make_engine: EngineFactory, endpoint: Endpoint
) -> None:
    engine = make_engine(workers=2, webhook_allow_private=True)

    @engine.task(name="resize")
    async def resize(width: int) -> dict[str, int]:
        return {"width": width}

    async with engine:
        task_id = await engine.enqueue("resize", {"width": 8}, webhook=endpoint.url)
        hook = await _webhook_task(engine, task_id)
        assert hook.handler == WEBHOOK_HANDLER and hook.queue == WEBHOOK_QUEUE == "webhooks"
        done = await engine.wait(hook.id, timeout=10)
        assert (await engine.get(task_id)).webhook == endpoint.url
    assert done.state == TaskState.SUCCEEDED
    assert done.result["status"] == 200 and done.result["url"] == endpoint.url
    (body,) = endpoint.bodies
    assert body["id"] == task_id and body["handler"] == "resize"
    assert body["state"] == "succeeded" and body["result"] == {"width": 8}
    assert body["payload"] == {"width": 8} and body["attempts"] == 1
    assert [e["state"] for e in body["timeline"]][-1] == "succeeded"
    assert endpoint.headers[0]["Content-Type"] == "application/json"
    assert endpoint.headers[0]["User-Agent"].startswith("taskdeck-webhook/")


async def test_a_webhook_is_retried_after_a_503(
    make_engine: EngineFactory, endpoint: Endpoint
) -> None:
    endpoint.script = [503]
    engine = make_engine(workers=2, webhook_allow_private=True)

    @engine.task(name="charge", retries=0)
    async def charge() -> None:
        raise RuntimeError("card declined")

    async with engine:
        task_id = await engine.enqueue("charge", webhook=endpoint.url)
        hook = await _webhook_task(engine, task_id)
        done = await engine.wait(hook.id, timeout=10)
    assert done.state == TaskState.SUCCEEDED and done.attempts == 2
    retried = [e.note or "" for e in done.timeline if e.state == TaskState.SCHEDULED]
    assert len(retried) == 1 and retried[0].startswith("ConnectionError; retry 1/5")
    # Both attempts POSTed the record of the failed task
    assert len(endpoint.bodies) == 2
    assert all(b["id"] == task_id and b["state"] == "failed" for b in endpoint.bodies)
    assert "card declined" in endpoint.bodies[1]["error"]


async def test_a_webhook_refused_with_400_fails_without_retries(
    make_engine: EngineFactory, endpoint: Endpoint
) -> None:
    endpoint.script = [400]
    engine = make_engine(workers=2, webhook_allow_private=True)

    @engine.task(name="resize")
    async def resize() -> None:
        pass

    async with engine:
        task_id = await engine.enqueue("resize", webhook=endpoint.url)
        hook = await _webhook_task(engine, task_id)
        done = await engine.wait(hook.id, timeout=10)
        original = await engine.get(task_id)
    assert done.state == TaskState.FAILED and done.attempts == 1
    assert "answered 400 Bad Request; not retried" in (done.error or "")
    assert len(endpoint.bodies) == 1
    assert original.state == TaskState.SUCCEEDED  # the task itself is not affected


async def test_a_slow_endpoint_past_webhook_timeout_is_retried(
    make_engine: EngineFactory, endpoint: Endpoint
) -> None:
    endpoint.script = [("slow", 1.0)]
    engine = make_engine(workers=2, webhook_timeout=0.2, webhook_allow_private=True)

    @engine.task(name="resize")
    async def resize() -> None:
        pass

    async with engine:
        task_id = await engine.enqueue("resize", webhook=endpoint.url)
        hook = await _webhook_task(engine, task_id)
        done = await engine.wait(hook.id, timeout=10)
    assert done.state == TaskState.SUCCEEDED and done.attempts == 2
    retried = [e.note or "" for e in done.timeline if e.state == TaskState.SCHEDULED]
    assert len(retried) == 1 and retried[0].startswith("TimeoutError; retry 1/5")
    assert len(endpoint.bodies) == 2


async def test_the_webhook_does_not_hold_up_the_worker(
    make_engine: EngineFactory, endpoint: Endpoint
) -> None:
    endpoint.release.clear()  # the endpoint answers only when the test lets it
    engine = make_engine(workers=2, webhook_allow_private=True)

    @engine.task(name="step")
    async def step(n: int) -> int:
        return n

    async with engine:
        first = await engine.enqueue("step", {"n": 1}, webhook=endpoint.url)
        hook = await _webhook_task(engine, first)
        # The task is finished while its webhook is still being delivered …
        assert (await engine.get(first)).state == TaskState.SUCCEEDED
        # … and other tasks run meanwhile
        others = [await engine.enqueue("step", {"n": n}) for n in range(2, 6)]
        for task_id in others:
            assert (await engine.wait(task_id, timeout=5)).state == TaskState.SUCCEEDED
        assert (await engine.get(hook.id)).state == TaskState.RUNNING
        endpoint.release.set()
        assert (await engine.wait(hook.id, timeout=10)).state == TaskState.SUCCEEDED


async def test_invalid_webhook_urls_are_refused_at_enqueue(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0)

    @engine.task(name="job")
    async def job() -> None:
        pass

    async with engine:
        for bad in ("ftp://example.com/hook", "http://", "example.com/hook", "https:///x"):
            with pytest.raises(ValueError, match="webhook must be an http:// or https:// URL"):
                await engine.enqueue("job", webhook=bad)
        with pytest.raises(TypeError, match="webhook must be an http:// or https:// URL"):
            await engine.enqueue("job", webhook=123)  # type: ignore[arg-type]
        assert await engine.tasks() == []
