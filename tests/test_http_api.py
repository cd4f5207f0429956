"""The JSON API of ``taskdeck serve``: enqueue, read, list, cancel and retry with the
right statuses and the engine's own error texts; tokens refuse without changing
anything; OpenAPI lists every route."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.http import HttpServer, ServeOptions, Tokens
from console.http.bridge import EngineBridge
from engine import Engine
from tests.cli_helpers import run
from tests.http_helpers import READ_TOKEN, TOKENS_ENV, Served, serving, until_true


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http-api")


@pytest.fixture(scope="module")
def served(store_dir: Path) -> Iterator[Served]:
    with serving(["serve", "--store", "api.db"], store_dir, TOKENS_ENV) as server:
        yield server


async def python_error(store: Path, call: str, *args: Any, **kwargs: Any) -> str:
    """The message the Python API raises for the same call."""
    engine = Engine(store, workers=0, strict_handlers=False)
    async with engine.client():
        try:
            await getattr(engine, call)(*args, **kwargs)
        except Exception as exc:
            return str(exc)
    raise AssertionError(f"engine.{call} accepted {args} {kwargs}")


def test_enqueue_read_cancel_retry(served: Served, store_dir: Path) -> None:
    # Given a served store, when a task is enqueued over HTTP
    made = served.post("/api/tasks", {"handler": "images.resize", "payload": {"w": 3},
                                      "priority": "high", "queue": "media"})  # fmt: skip
    assert made.status == 201, made.body
    task_id = made.body["id"]
    # Then it reads back with its state, payload and timeline
    task = served.get(f"/api/tasks/{task_id}").body
    assert (task["state"], task["payload"], task["priority"], task["queue"]) == (
        "queued", {"w": 3}, 7, "media")  # fmt: skip
    assert task["timeline"][0]["state"] == "queued"
    # cancel: 200, then a second cancel is a transition that is not allowed: 409
    assert served.post(f"/api/tasks/{task_id}/cancel").body["state"] == "cancelled"
    again = served.post(f"/api/tasks/{task_id}/cancel")
    expected = asyncio.run(python_error(store_dir / "api.db", "cancel", task_id))
    assert (again.status, again.body["error"]) == (409, expected)
    # retry: queued again; retrying a queued task is refused the same way
    assert served.post(f"/api/tasks/{task_id}/retry").body["state"] == "queued"
    twice = served.post(f"/api/tasks/{task_id}/retry")
    expected = asyncio.run(python_error(store_dir / "api.db", "retry", task_id))
    assert (twice.status, twice.body["error"]) == (409, expected)
    # a unique key held by an active task: the holder's id, 200 not 201
    first = served.post("/api/tasks", {"handler": "x", "unique_key": "k1"})
    second = served.post("/api/tasks", {"handler": "x", "unique_key": "k1"})
    assert (first.status, second.status) == (201, 200)
    assert second.body == {"id": first.body["id"], "deduplicated": True}


@pytest.mark.parametrize(
    ("body", "call", "status"),
    [
        ({"handler": "x", "priority": 99}, {"priority": 99}, 422),
        ({"handler": "x", "queue": "bad queue!"}, {"queue": "bad queue!"}, 422),
        ({"handler": "x", "payload": [1, 2]}, {"payload": [1, 2]}, 400),
        ({"handler": "x", "run_at": "2030-01-01T00:00:00"}, None, 422),
    ],
)
def test_refused_values_have_the_engines_words(
    served: Served, store_dir: Path, body: dict[str, Any], call: dict[str, Any] | None, status: int
) -> None:
    answer = served.post("/api/tasks", body)
    assert answer.status == status, answer.body
    assert answer.body["status"] == status
    if call is not None:
        payload = call.pop("payload", None)
        expected = asyncio.run(python_error(store_dir / "api.db", "enqueue", "x", payload, **call))
        assert answer.body["error"] == expected
    else:
        assert "timezone-aware" in answer.body["error"]


def test_malformed_requests_are_400_and_unknown_ids_404(served: Served, store_dir: Path) -> None:
    bad_json = served.call("POST", "/api/tasks", raw=b"{handler: 1")
    assert bad_json.status == 400 and "not valid JSON" in bad_json.body["error"]
    unknown = served.post("/api/tasks", {"handler": "x", "prio": 3})
    assert unknown.status == 400 and "did you mean 'priority'" in unknown.body["error"]
    wrong_type = served.post("/api/tasks", {"handler": "x", "run_at": 5})
    assert wrong_type.status == 400
    missing = served.get("/api/tasks/987654")
    expected = asyncio.run(python_error(store_dir / "api.db", "get", "987654"))
    assert (missing.status, missing.body["error"]) == (404, expected)
    assert served.post("/api/tasks/987654/cancel").status == 404
    query = served.get("/api/tasks?where=state%3D")
    assert query.status == 400 and query.body["position"] == 7
    assert query.body["error"].startswith("at 7:")
    assert served.get("/api/tasks?limit=0").status == 400
    assert served.get("/api/tasks?cursor=abc").status == 400


def test_list_pages_by_cursor(served: Served) -> None:
    ids = [served.post("/api/tasks", {"handler": "pager", "payload": {"i": i}}).body["id"]
           for i in range(5)]  # fmt: skip
    served.post(f"/api/tasks/{ids[1]}/cancel")
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = served.get(f"/api/tasks?where=handler%3Dpager&limit=2{cursor}").body
        seen += [t["id"] for t in page["tasks"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == ids[::-1]  # newest first, each once, across a state change
    assert pages == 3
    queued = served.get("/api/tasks?where=handler%3Dpager%20state%3Dqueued").body["tasks"]
    assert [t["id"] for t in queued] == [i for i in ids[::-1] if i != ids[1]]


def test_queues_and_nodes(served: Served) -> None:
    served.post("/api/tasks", {"handler": "x", "queue": "reports"})
    queues = {q["name"]: q for q in served.get("/api/queues").body["queues"]}
    assert queues["reports"]["depth"] >= 1
    assert served.get("/api/nodes").body == {"nodes": []}  # serve itself runs no workers
    assert served.get("/ready", token=None).status == 200
    assert served.get("/health", token=None).body == {"status": "ok"}


def test_tokens_refuse_and_change_nothing(served: Served) -> None:
    before = served.get("/api/queues").body
    no_token = served.post("/api/tasks", {"handler": "x"}, token=None)
    assert no_token.status == 401 and no_token.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = served.post("/api/tasks", {"handler": "x"}, token="not-a-token-of-ours-at-all")
    assert wrong.status == 401 and "invalid_token" in wrong.headers["WWW-Authenticate"]
    read_only = served.post("/api/tasks", {"handler": "x"}, token=READ_TOKEN)
    assert read_only.status == 403 and "needs a write token" in read_only.body["error"]
    assert served.post("/api/tasks/1/cancel", token=READ_TOKEN).status == 403
    assert served.get("/metrics", token=None).status == 401
    assert served.get("/api/tasks", token="wrong-token-0123456789").status == 401
    assert served.get("/api/queues").body == before  # nothing changed


def test_openapi_lists_every_route(served: Served, tmp_path: Path) -> None:
    document = served.get("/api/openapi.json").body
    assert document["openapi"].startswith("3.1")

    async def routes() -> set[tuple[str, str]]:
        server = HttpServer(Engine(tmp_path / "o.db", workers=0), Tokens(), ServeOptions())
        server.bridge = EngineBridge(asyncio.get_running_loop())
        app = server.app()
        return {
            (r.method.lower(), r.resource.canonical)
            for r in app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        }

    served_routes = asyncio.run(routes())
    listed = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert listed == served_routes


def test_read_only_env_refuses_writes(store_dir: Path) -> None:
    env = {**TOKENS_ENV, "TASKDECK_READ_ONLY": "1"}
    with serving(["serve", "--store", "api.db"], store_dir, env) as server:
        refused = server.post("/api/tasks", {"handler": "x"})
        assert refused.status == 403 and "TASKDECK_READ_ONLY=1" in refused.body["error"]
        assert server.get("/api/tasks?limit=1").status == 200
        assert "taskdeck_tasks" in server.get("/metrics").body


def test_no_tokens_binds_loopback_only(tmp_path: Path) -> None:
    result = run("serve", "--host", "0.0.0.0", "--store", "x.db", cwd=tmp_path)
    assert result.returncode != 0
    assert "without auth" in result.stderr and "tokens" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_health_says_503_when_the_store_is_gone(tmp_path: Path) -> None:
    with serving(["serve", "--store", "gone.db"], tmp_path, TOKENS_ENV) as server:
        assert server.get("/health", token=None).status == 200
        for name in ("gone.db", "gone.db-wal", "gone.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        until_true(lambda: server.get("/health", token=None).status == 503, what="a 503")
        reason = server.get("/health", token=None).body["reason"]
        assert "deleted or replaced" in reason


def test_a_port_in_use_is_one_line(served: Served, store_dir: Path) -> None:
    port = served.url.rsplit(":", 1)[1]
    result = run("serve", "--store", "api.db", "--port", port, cwd=store_dir, env=TOKENS_ENV)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_api_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    with serving(["serve", "--store", pg_url], tmp_path, TOKENS_ENV) as server:
        ids = [server.post("/api/tasks", {"handler": "pg.job"}).body["id"] for _ in range(3)]
        assert server.post(f"/api/tasks/{ids[0]}/cancel").body["state"] == "cancelled"
        first = server.get("/api/tasks?where=handler%3Dpg.job&limit=2").body
        rest = server.get(f"/api/tasks?where=handler%3Dpg.job&cursor={first['next_cursor']}")
        assert [t["id"] for t in first["tasks"] + rest.body["tasks"]] == ids[::-1]
        metrics = server.get("/metrics").body
        assert 'taskdeck_tasks{state="cancelled"} 1.0' in metrics
