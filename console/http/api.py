"""The JSON API under ``/api``: enqueue, read, list, cancel and retry tasks; queues and
nodes. Every call runs on the engine's loop through the bridge (a blocked loop is a 503,
never a hang); errors map to statuses in :mod:`console.http.errors`.

Writes are the engine's own methods, inside ``engine.audit.note()``: each is recorded
in the audit trail as the API's (the engine acts as interface ``api``). Under
``TASKDECK_READ_ONLY`` every write is refused with 403 before it reaches the engine.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from console.http.bridge import EngineBridge
from console.http.errors import ApiError, dumps
from engine import Engine, NodeInfo, TaskRecord, parse_query

T = TypeVar("T")
#: The fields ``POST /api/tasks`` takes (``handler`` is required).
ENQUEUE_FIELDS = ("handler", "payload", "priority", "queue", "run_at", "unique_key")
#: Fields the cancel and retry bodies take (both optional; the body may be empty).
NOTE_FIELDS = ("note",)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_BODY = 1 << 20  # bytes of a request body (a payload is at most this)


def task_json(task: TaskRecord) -> dict[str, Any]:
    """Every field of a task, the timeline as a list (as ``taskdeck show --json``)."""
    row = asdict(task)
    row.pop("webhook", None)  # a URL that may carry a secret
    row["state"] = task.state.value
    row["max_attempts"] = task.max_attempts
    row["timeline"] = [asdict(e) | {"state": e.state.value} for e in task.timeline]
    return row


def task_row(task: TaskRecord) -> dict[str, Any]:
    """A task in a list: no payload, no result (``GET /api/tasks/{id}`` has them)."""
    keys = ("id", "handler", "queue", "priority", "attempts", "progress", "created_at",
            "started_at", "finished_at", "run_at", "worker", "error")  # fmt: skip
    return {k: getattr(task, k) for k in keys} | {"state": task.state.value}


def node_json(node: NodeInfo) -> dict[str, Any]:
    row = asdict(node)
    row["handlers"] = list(node.handlers) if node.handlers is not None else None
    return row


async def json_body(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); 400 when it is not JSON,
    not an object, or names a field that is not ``allowed``."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object; got {type(body).__name__}")
    for name in body:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ApiError(400, f"unknown field {name!r}{hint} (allowed: {', '.join(allowed)})")
    return body


def parse_run_at(value: object) -> datetime | None:
    """``run_at``: ISO 8601 text with a UTC offset; a time without one is handed to the
    engine, which refuses it with its own words."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(
            400,
            f"run_at must be ISO 8601 text, e.g. 2026-11-23T01:00:00Z; got {type(value).__name__}",
        )
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400,
            "run_at must be an ISO 8601 time with a UTC offset, e.g. "
            f"2026-11-23T02:00:00+01:00 or 2026-11-23T01:00:00Z; got {value!r}",
        ) from None


def list_window(request: web.Request) -> tuple[str | None, int, int | None]:
    """``where``, ``limit`` and ``cursor`` of ``GET /api/tasks`` (400 when malformed;
    a malformed query says at which column, as ``taskdeck tasks --where`` does)."""
    where = request.query.get("where") or None
    if where is not None:
        parse_query(where, 0.0)  # QueryError → 400 with its position
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}; got {text!r}")
    cursor = request.query.get("cursor")
    if cursor is not None and not (cursor.isascii() and cursor.isdigit() and int(cursor) > 0):
        raise ApiError(
            400, f"cursor must be the next_cursor of the previous page (an id); got {cursor!r}"
        )
    return where, int(text), int(cursor) if cursor is not None else None


def keyed_query(where: str | None, cursor: int | None) -> str | None:
    """The engine query of one page: newest first, keyed by id. ``NOT NOT (…)`` keeps
    the query's own ``state=`` from choosing the engine's per-state order (which a
    cursor on the id could not follow); it matches the same tasks."""
    terms = [] if cursor is None else [f"id<{cursor}"]
    if where is not None:
        terms.append(f"NOT NOT ({where})")
    return " ".join(terms) or None


class Api:
    """The ``/api`` routes over one engine."""

    def __init__(self, engine: Engine, bridge: EngineBridge, read_only: str | None) -> None:
        self.engine = engine
        self.bridge = bridge
        self.read_only = read_only  # why writes are refused (None: they are not)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/tasks", self.enqueue),
            web.get("/api/tasks", self.list_tasks),
            web.get("/api/tasks/{id}", self.get_task),
            web.post("/api/tasks/{id}/cancel", self.cancel),
            web.post("/api/tasks/{id}/retry", self.retry),
            web.get("/api/queues", self.queues),
            web.get("/api/nodes", self.nodes),
        ]

    async def write(self, request: web.Request, make: Callable[[], Awaitable[T]]) -> T:
        """Run a change on the engine loop, recorded in the audit trail."""
        if self.read_only is not None:
            raise ApiError(
                403,
                f"read-only ({self.read_only}): {request.method} {request.path} changes the "
                "store; nothing was done",
            )

        async def recorded() -> T:
            with self.engine.audit.note(None):
                return await make()

        return await self.bridge.call(recorded)

    async def enqueue(self, request: web.Request) -> web.Response:
        body = await json_body(request, ENQUEUE_FIELDS)
        if "handler" not in body:
            raise ApiError(400, "handler is required: the name of a registered task handler")
        run_at = parse_run_at(body.get("run_at"))
        task_id = await self.write(
            request,
            lambda: self.engine.enqueue(
                body["handler"],
                body.get("payload"),
                priority=body.get("priority"),
                queue=body.get("queue"),
                run_at=run_at,
                unique_key=body.get("unique_key"),
            ),
        )
        answer = {"id": str(task_id), "deduplicated": bool(task_id.deduplicated)}
        return web.json_response(answer, status=200 if task_id.deduplicated else 201)

    async def get_task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["id"]
        task = await self.bridge.call(lambda: self.engine.get(task_id))
        return web.json_response(task_json(task), dumps=dumps)

    async def list_tasks(self, request: web.Request) -> web.Response:
        where, limit, cursor = list_window(request)
        query = keyed_query(where, cursor)
        page = await self.bridge.call(lambda: self.engine.tasks(limit=limit + 1, where=query))
        rows = [task_row(t) for t in page[:limit]]
        more = len(page) > limit
        answer = {"tasks": rows, "next_cursor": rows[-1]["id"] if more and rows else None}
        return web.json_response(answer, dumps=dumps)

    async def cancel(self, request: web.Request) -> web.Response:
        return await self._change(request, "cancel")

    async def retry(self, request: web.Request) -> web.Response:
        return await self._change(request, "retry")

    async def _change(self, request: web.Request, action: str) -> web.Response:
        body = await json_body(request, NOTE_FIELDS)
        task_id = request.match_info["id"]
        note = body.get("note")

        async def change() -> TaskRecord:
            with self.engine.audit.note(note):
                if action == "cancel":
                    await self.engine.cancel(task_id)
                else:
                    await self.engine.retry(task_id)
            return await self.engine.get(task_id)

        task = await self.write(request, change)
        return web.json_response({"id": task.id, "state": task.state.value}, dumps=dumps)

    async def queues(self, request: web.Request) -> web.Response:
        snap = await self.bridge.call(self._snapshot)
        rows = [
            {
                "name": q.name,
                "depth": q.depth,
                "paused": q.paused,
                "counts": {state.value: n for state, n in q.counts.items()},
            }
            for q in snap.queues.values()
        ]
        return web.json_response({"queues": rows})

    async def _snapshot(self) -> Any:
        return self.engine.snapshot()

    async def nodes(self, request: web.Request) -> web.Response:
        nodes = await self.bridge.call(self.engine.nodes)
        return web.json_response({"nodes": [node_json(n) for n in nodes]}, dumps=dumps)
