"""``GET /api/openapi.json``: an OpenAPI 3.1 description of every route the server has
(a test checks that it lists each one)."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "malformed JSON, unknown field, wrong type or malformed query",
        401: "no token or a wrong one",
        403: "a read token on a write endpoint, or read-only",
        404: "no task with that id",
        409: "a transition that is not allowed",
        422: "a value the engine refuses",
        503: "the engine's loop is blocked or the store fails",
    }
    return {str(c): _answer(words[c], ERROR) for c in codes}


TASK_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
NOTE_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"note": {"type": "string"}}}
        }
    },
}
ENQUEUE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["handler"],
                "additionalProperties": False,
                "properties": {
                    "handler": {"type": "string"},
                    "payload": {"type": ["object", "null"]},
                    "priority": {"type": ["integer", "string"]},
                    "queue": {"type": "string"},
                    "run_at": {"type": "string", "format": "date-time"},
                    "unique_key": {"type": "string"},
                },
            }
        }
    },
}


def _paths() -> dict[str, Any]:
    read = _errors(401, 503)
    return {
        "/health": {"get": {"summary": "Liveness", "security": [],
                            "responses": {"200": _answer("ok"), "503": _answer("blocked")}}},
        "/ready": {"get": {"summary": "Readiness", "security": [],
                           "responses": {"200": _answer("ready"), "503": _answer("not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text)",
                             "responses": {"200": {"description": "Prometheus text format"},
                                           **read}}},
        "/api/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": _answer("OpenAPI 3.1"), **read}}},
        "/api/tasks": {
            "get": {
                "summary": "List tasks, newest first (keyset: cursor = next_cursor)",
                "parameters": [
                    {"name": "where", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _answer("a page"), **_errors(400, 401, 503)},
            },
            "post": {
                "summary": "Enqueue a task",
                "requestBody": ENQUEUE_BODY,
                "responses": {
                    "201": _answer("enqueued: {id, deduplicated}"),
                    "200": _answer("deduplicated: the holder's id"),
                    **_errors(400, 401, 403, 422, 503),
                },
            },
        },
        "/api/tasks/{id}": {"get": {
            "summary": "A task: state, attempts, progress, result, error, timeline",
            "parameters": [TASK_ID],
            "responses": {"200": _answer("the task"), **_errors(401, 404, 503)},
        }},
        "/api/tasks/{id}/cancel": {"post": {
            "summary": "Cancel a queued, scheduled or running task",
            "parameters": [TASK_ID], "requestBody": NOTE_BODY,
            "responses": {"200": _answer("{id, state}"), **_errors(400, 401, 403, 404, 409, 503)},
        }},
        "/api/tasks/{id}/retry": {"post": {
            "summary": "Queue a failed or cancelled task again",
            "parameters": [TASK_ID], "requestBody": NOTE_BODY,
            "responses": {"200": _answer("{id, state}"), **_errors(400, 401, 403, 404, 409, 503)},
        }},
        "/api/queues": {"get": {"summary": "Queues: depth, paused, counts by state",
                                "responses": {"200": _answer("queues"), **read}}},
        "/api/nodes": {"get": {"summary": "Engine processes on the store",
                               "responses": {"200": _answer("nodes"), **read}}},
    }  # fmt: skip


def document(server_url: str) -> dict[str, Any]:
    """The OpenAPI document, with ``server_url`` as its server."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Taskdeck", "version": "1"},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {
                        "error": {"type": "string"},
                        "status": {"type": "integer"},
                        "position": {"type": "integer"},
                    },
                }
            },
        },
    }
