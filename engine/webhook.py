"""Completion webhooks: ``enqueue(..., webhook="https://…")`` POSTs the task's final
record as JSON once it succeeds, fails for good or is cancelled.

The POST is a task of its own (handler ``taskdeck.webhook``, queue ``webhooks``),
enqueued in the same transaction as the final state, so it is durable, retried with
backoff on network errors, timeouts and 5xx/408/425/429 answers, and never holds up
the worker that ran the task. Other 4xx answers fail it for good (retrying cannot
help), and so does a redirect (3xx): webhooks follow none, so a redirect cannot send
them to another host, port or scheme. Where a webhook may go at all is checked by
:mod:`engine.webhook_target` (public addresses only, unless the setting
``webhook_allow_private`` is on), at enqueue and again at send time.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from engine.model import TaskRecord
from engine.retry import RetryPolicy
from engine.settings import Settings
from engine.store.base import WEBHOOK_HANDLER, WEBHOOK_QUEUE, WEBHOOK_RETRIES
from engine.webhook_target import WebhookTargetRefused, open_connection

RETRYABLE_STATUS = frozenset({408, 425, 429})
RETRY = RetryPolicy.exponential(
    base=1.0, cap=120.0, retry_on=(OSError, TimeoutError, ConnectionError)
)
USER_AGENT = "taskdeck-webhook/1"
_HEADERS = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
_MAX_ANSWER = 65536  # bytes of an answer read (and dropped) before the connection closes


class WebhookRefused(ValueError):
    """The endpoint answered 4xx: the request itself is wrong; not retried."""


def record_json(record: TaskRecord) -> dict[str, Any]:
    """The record as the webhook sends it (JSON types only; state as its name)."""
    body = asdict(record)
    body["state"] = record.state.value
    body["timeline"] = [
        {"at": e.at, "state": e.state.value, "attempt": e.attempt, "by": e.by, "note": e.note}
        for e in record.timeline
    ]
    return body


def post_json(url: str, body: bytes, timeout: float, allow_private: bool = False) -> int:
    """POST ``body`` to the checked address of ``url``'s host; returns the HTTP status,
    or raises (OSError: retried; ValueError: not). Blocking: runs on a thread."""
    try:
        conn, target = open_connection(url, timeout, allow_private)
    except WebhookTargetRefused as exc:
        raise WebhookRefused(f"{exc}; not sent") from None
    try:
        conn.request("POST", target, body, _HEADERS)
        response = conn.getresponse()
        response.read(_MAX_ANSWER)
        status, reason = int(response.status), response.reason
        location = response.getheader("Location") or ""
    except http.client.HTTPException as exc:  # a malformed answer: try again later
        raise ConnectionError(f"{url} gave an unreadable answer ({exc!r}); will retry") from None
    finally:
        conn.close()
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise WebhookRefused(
            f"{url} answered {status} {reason} (a redirect to {location[:200]!r}); webhooks "
            "follow no redirects: give the final URL. Not retried"
        )
    if status >= 500 or status in RETRYABLE_STATUS:
        raise ConnectionError(f"{url} answered {status} {reason}; will retry")
    raise WebhookRefused(f"{url} answered {status} {reason}; not retried")


def make_handler(
    get: Callable[[str], Awaitable[TaskRecord]], settings: Callable[[], Settings]
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The ``taskdeck.webhook`` handler for one engine."""

    async def deliver(url: str, task_id: str, state: str) -> dict[str, Any]:
        record = await get(task_id)
        body = json.dumps(record_json(record), ensure_ascii=False).encode("utf-8")
        now = settings()
        status = await asyncio.to_thread(
            post_json, url, body, now.webhook_timeout, now.webhook_allow_private
        )
        return {"url": url, "task_id": task_id, "state": state, "status": status}

    deliver.__qualname__ = deliver.__name__ = "deliver_webhook"
    return deliver


__all__ = [
    "RETRY",
    "WEBHOOK_HANDLER",
    "WEBHOOK_QUEUE",
    "WEBHOOK_RETRIES",
    "make_handler",
    "record_json",
]
