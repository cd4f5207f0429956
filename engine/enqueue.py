"""Turning an ``enqueue`` call into a validated :class:`NewTask`, or a clear error.

Everything is checked before anything is written: the handler (with the closest
names when unknown), the payload against the handler's signature and against
JSON (with the path of a bad value), its size, the priority, the queue, the
delay or due time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.checks import check_handler_name, check_queue_name, check_seconds
from engine.codec import Codec, to_json
from engine.model import DEFAULT_PRIORITY, parse_priority
from engine.registry import (
    ENQUEUE_OPTIONS,
    Handler,
    Registry,
    payload_object,
    unknown_option_error,
)
from engine.settings import Settings
from engine.store.base import NewTask
from engine.webhook_target import check_url
from engine.workflow import Chain, Group, Signature, Workflow, receiving_parameter

MAX_DELAY = 10 * 365 * 86400.0
DEFAULT_RETRIES = 3
MAX_UNIQUE_KEY = 200


def check_unique_key(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"unique_key must be a str; got {type(value).__name__}")
    if not value or len(value) > MAX_UNIQUE_KEY or not value.isprintable():
        raise ValueError(
            f"unique_key must be 1–{MAX_UNIQUE_KEY} printable characters; got {value[:40]!r}"
        )
    return value


@lru_cache(maxsize=4096)
def _queue(name: str) -> str:
    return check_queue_name(name)


@dataclass
class Preparer:
    """Validates enqueue calls for one engine."""

    registry: Registry
    codec: Codec
    strict: bool
    settings: Callable[[], Settings]
    clock: Callable[[], float]

    def prepare(
        self,
        handler: str,
        payload: Any = None,
        *,
        priority: Any = None,
        queue: Any = None,
        delay: Any = None,
        run_at: Any = None,
        unique_key: Any = None,
        webhook: Any = None,
    ) -> NewTask:
        registered = self.registry.find(handler) if isinstance(handler, str) else None
        if registered is not None:
            payload = registered.check_payload(payload)
            default_queue, default_priority = self._queue_for(registered), registered.priority
            retries = registered.retries
        else:
            check_handler_name(handler)
            if self.strict:
                raise LookupError(self.registry.unknown_message(handler))
            payload = payload_object(payload)
            default_queue, default_priority, retries = (
                self.settings().routes.queue_for(handler) or "default",
                DEFAULT_PRIORITY,
                DEFAULT_RETRIES,
            )
        prio = default_priority if priority is None else parse_priority(priority)
        if queue is None:
            queue_name = default_queue
        else:
            queue_name = _queue(queue) if isinstance(queue, str) else check_queue_name(queue)
        due = None if delay is None and run_at is None else self._due_time(delay, run_at)
        return NewTask(
            handler,
            queue_name,
            prio,
            self._seal(payload),
            retries,
            due,
            None if unique_key is None else check_unique_key(unique_key),
            None if webhook is None else self.codec.seal(self._webhook(webhook)),
        )

    def _queue_for(self, registered: Handler) -> str:
        """A handler's queue when the call names none: its own, else a route's."""
        return registered.routed_queue(self.settings().routes)

    def _webhook(self, url: object) -> str:
        return check_url(url, self.settings().webhook_allow_private)

    def _seal(self, payload: Any) -> str:
        text = to_json(payload, "payload")
        limit = self.settings().max_payload_bytes
        if len(text) > limit:
            raise ValueError(
                f"payload is {len(text):,} bytes as JSON; the limit is {limit:,} bytes "
                "(max_payload_bytes)"
            )
        return self.codec.seal(text)

    def prepare_workflow(self, flow: Workflow) -> list[NewTask]:
        """Check every step of a chain or group; errors name the step."""
        if not isinstance(flow, Chain | Group):
            raise TypeError(
                f"enqueue_workflow takes chain(...) or group(...); got {type(flow).__name__}"
            )
        out = []
        for index, sig in enumerate(flow.steps):
            if flow.kind == "chain":
                where, waits = f"chain step {index + 1} ({sig.handler})", index > 0
            elif index < len(flow.members):  # type: ignore[union-attr]
                where, waits = f"group member {index + 1} ({sig.handler})", False
            else:
                where, waits = f"group callback ({sig.handler})", True
            try:
                task = (
                    self._waiting_step(sig, flow.kind == "group")
                    if waits
                    else self.prepare(sig.handler, dict(sig.payload), **sig.options)
                )
            except (TypeError, ValueError, LookupError) as exc:
                text = str(exc)
                raise type(exc)(text if text.startswith(where) else f"{where}: {text}") from None
            task.step = index
            out.append(task)
        return out

    def _waiting_step(self, sig: Signature, many: bool) -> NewTask:
        """A step that waits for earlier ones: its own arguments are checked now, the
        rest arrives with the previous result."""
        registered = self.registry.find(sig.handler)
        given = payload_object(dict(sig.payload))
        if registered is not None:
            receives = receiving_parameter(registered, given, "arguments", many)
            registered.check_types(given)  # its own arguments; not what arrives at run time
            default_queue, default_priority = self._queue_for(registered), registered.priority
            retries = registered.retries
        else:
            check_handler_name(sig.handler)
            if self.strict:
                raise LookupError(self.registry.unknown_message(sig.handler))
            receives = "results" if many else ""
            default_queue, default_priority, retries = (
                self.settings().routes.queue_for(sig.handler) or "default",
                DEFAULT_PRIORITY,
                DEFAULT_RETRIES,
            )
        priority, queue = sig.options.get("priority"), sig.options.get("queue")
        return NewTask(
            sig.handler,
            default_queue if queue is None else check_queue_name(queue),
            default_priority if priority is None else parse_priority(priority),
            self._seal(given),
            retries,
            receives=receives,
            waiting=True,
        )

    def _due_time(self, delay: Any, run_at: Any) -> float | None:
        if delay is not None and run_at is not None:
            raise TypeError("give delay (seconds from now) or run_at (a datetime), not both")
        if delay is not None:
            seconds = check_seconds("delay", delay)
            if seconds > MAX_DELAY:
                raise ValueError(
                    f"delay must be at most {MAX_DELAY:,.0f} seconds (10 years); got {delay!r}"
                )
            return self.clock() + seconds if seconds > 0 else None
        if run_at is not None:
            if not isinstance(run_at, dt.datetime):
                raise TypeError(
                    f"run_at must be a timezone-aware datetime; got {type(run_at).__name__}"
                )
            if run_at.tzinfo is None or run_at.utcoffset() is None:
                raise ValueError(
                    "run_at must be timezone-aware, e.g. datetime.now(timezone.utc) + "
                    "timedelta(minutes=5); a naive datetime is ambiguous"
                )
            at = run_at.timestamp()
            if at - self.clock() > MAX_DELAY:
                raise ValueError("run_at must be at most 10 years from now")
            return at
        return None

    def prepare_many(self, items: Iterable[Any]) -> list[NewTask]:
        """Validate every item of an ``enqueue_many`` call; errors name the item."""
        out = []
        for index, item in enumerate(items):
            try:
                out.append(self._prepare_item(item))
            except (TypeError, ValueError, LookupError) as exc:
                raise type(exc)(f"item {index}: {exc}") from None
        return out

    def _prepare_item(self, item: Any) -> NewTask:
        if type(item) is tuple and len(item) == 2 and type(item[0]) is str:
            return self.prepare(item[0], item[1])  # the common shape, checked cheaply
        if not isinstance(item, tuple | list) or not 1 <= len(item) <= 3:
            raise TypeError(
                "each item must be (handler, payload) or (handler, payload, {options}); "
                f"got {type(item).__name__}"
            )
        handler = item[0]
        payload = item[1] if len(item) > 1 else None
        options = item[2] if len(item) > 2 else {}
        if not isinstance(options, Mapping):
            raise TypeError(f"item options must be a dict; got {type(options).__name__}")
        unknown = [k for k in options if k not in ENQUEUE_OPTIONS]
        if unknown:
            raise unknown_option_error("enqueue", unknown, ENQUEUE_OPTIONS)
        if not isinstance(handler, str):
            raise TypeError(f"handler must be a name (str); got {type(handler).__name__}")
        return self.prepare(handler, payload, **options)
