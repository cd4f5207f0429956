"""The JSON API's errors: one mapping from the engine's exceptions to HTTP statuses,
and the body every error has: ``{"error": "...", "status": N}``.

=====  =============================================================================
400    malformed JSON, an unknown field, a value of the wrong type (the engine's
       ``TypeError``), a malformed query (the body adds ``position``) or cursor
401    no token, or a wrong one (with ``WWW-Authenticate``)
403    a read token on a write endpoint, or a store that is read-only
       (``TASKDECK_READ_ONLY``)
404    no task with that id (``TaskNotFound``), or no such route
409    a transition that is not allowed (``InvalidTransition``: cancel a finished task)
422    a value the engine refuses (``ValueError``: a bad priority, queue or payload;
       ``LookupError``: an unknown handler)
503    the engine's loop is blocked, the engine is not running, or the store fails
=====  =============================================================================

The ``error`` text is the engine's own message, the one ``engine.enqueue`` raises and
``taskdeck enqueue`` prints.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from console.http.bridge import EngineBusy
from engine import (
    EngineNotRunning,
    InvalidTransition,
    QueryError,
    ReadOnlyError,
    StoreError,
    TaskNotFound,
)


class ApiError(Exception):
    """An error the API answers with ``status`` and ``text``."""

    def __init__(self, status: int, text: str, **extra: Any) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.extra = extra


def status_of(exc: BaseException) -> int:
    """The HTTP status for an exception the engine raised (see the module docstring)."""
    if isinstance(exc, QueryError):
        return 400
    if isinstance(exc, TaskNotFound):
        return 404
    if isinstance(exc, InvalidTransition):
        return 409
    if isinstance(exc, ReadOnlyError):
        return 403
    if isinstance(exc, EngineBusy | EngineNotRunning | StoreError):
        return 503
    if isinstance(exc, TypeError):
        return 400
    if isinstance(exc, ValueError | LookupError):
        return 422
    return 500


def as_api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    extra = {"position": exc.position} if isinstance(exc, QueryError) else {}
    return ApiError(status_of(exc), str(exc) or type(exc).__name__, **extra)


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": error.text, "status": error.status, **error.extra}
    return web.json_response(body, status=error.status, headers=headers, dumps=dumps)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
