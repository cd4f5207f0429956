"""Completion webhooks: ``enqueue(..., webhook="https://…")`` POSTs the task's final
record as JSON once it succeeds, fails for good or is cancelled.

The POST is a task of its own (handler ``taskdeck.webhook``, queue ``webhooks``),
enqueued in the same transaction as the final state, so it is durable, retried with
backoff on network errors, timeouts and 5xx/408/429 answers, and never holds up the
worker that ran the task. Other 4xx answers fail it for good (retrying cannot help).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from engine.model import TaskRecord
from engine.retry import RetryPolicy
from engine.store.base import WEBHOOK_HANDLER, WEBHOOK_QUEUE, WEBHOOK_RETRIES

RETRYABLE_STATUS = frozenset({408, 425, 429})
RETRY = RetryPolicy.exponential(
    base=1.0, cap=120.0, retry_on=(OSError, TimeoutError, ConnectionError)
)
USER_AGENT = "taskdeck-webhook/1"


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


def post_json(url: str, body: bytes, timeout: float) -> int:
    """POST ``body``; returns the HTTP status, or raises (OSError: retried)."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in RETRYABLE_STATUS:
            raise ConnectionError(f"{url} answered {exc.code} {exc.reason}; will retry") from None
        raise WebhookRefused(f"{url} answered {exc.code} {exc.reason}; not retried") from None


def make_handler(
    get: Callable[[str], Awaitable[TaskRecord]], timeout: Callable[[], float]
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The ``taskdeck.webhook`` handler for one engine."""

    async def deliver(url: str, task_id: str, state: str) -> dict[str, Any]:
        record = await get(task_id)
        body = json.dumps(record_json(record), ensure_ascii=False).encode("utf-8")
        status = await asyncio.to_thread(post_json, url, body, timeout())
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
