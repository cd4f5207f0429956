"""Handlers and their options: what ``@engine.task(...)`` registers.

Options are validated when the decorator runs, so a typo fails at import time
with a "did you mean" suggestion instead of at 3 a.m. in a worker. Payloads are
checked against the handler's signature at enqueue time.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from engine.argtypes import Expect, field_types, type_problems
from engine.checks import MAX_HANDLER_NAME, check_handler_name, check_queue_name
from engine.limits import parse_rate
from engine.model import DEFAULT_PRIORITY, parse_priority
from engine.retry import DEFAULT_RETRY, RetryPolicy, check_exception_types
from engine.routes import Routes
from engine.settings import suggest

Executor: TypeAlias = Literal["async", "thread", "process"]
EXECUTORS: tuple[Executor, ...] = ("async", "thread", "process")
TASK_OPTIONS = (
    "name",
    "queue",
    "priority",
    "retries",
    "retry",
    "retry_on",
    "timeout",
    "soft_timeout",
    "executor",
    "rate_limit",
    "on_success",
    "on_failure",
)
ENQUEUE_OPTIONS = ("priority", "queue", "delay", "run_at", "unique_key", "webhook")
MAX_RETRIES = 1000

_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL


def unknown_option_error(kind: str, names: list[str], allowed: tuple[str, ...]) -> TypeError:
    parts = [f"{name!r}{suggest(name, allowed)}" for name in names]
    plural = "s" if len(names) > 1 else ""
    return TypeError(
        f"unknown {kind} option{plural}: {', '.join(parts)}. Allowed: {', '.join(allowed)}"
    )


def _check_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None; got {type(value).__name__}")
    number = float(value)
    if not (0 < number < float("inf")):  # also refuses NaN
        raise ValueError(
            f"{name} must be a finite number of seconds above 0, or None; got {value!r}"
        )
    return number


@dataclass(frozen=True)
class Handler:
    """A registered handler: the function and its validated options."""

    name: str
    fn: Callable[..., Any]
    queue: str
    priority: int
    retries: int
    retry: RetryPolicy
    timeout: float | None
    soft_timeout: float | None
    executor: Executor
    params: tuple[str, ...]
    required: frozenset[str]
    accepts_any: bool
    rate_limit: str | None = None
    #: called (in this process) with the TaskRecord once a task of this handler
    #: succeeded / failed for good; sync or async
    on_success: Callable[[Any], Any] | None = None
    on_failure: Callable[[Any], Any] | None = None
    #: parameters with a simple annotation, checked at enqueue (engine.argtypes)
    types: Mapping[str, Expect] = field(default_factory=dict)
    #: registered with ``queue=``: that queue beats the ``routes`` setting
    queue_given: bool = False

    def routed_queue(self, routes: Routes) -> str:
        """The queue its tasks go to when an enqueue names none: its own ``queue=``,
        else the first matching route, else ``default``."""
        if self.queue_given:
            return self.queue
        return routes.queue_for(self.name) or self.queue

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    @property
    def module(self) -> str:
        return str(self.fn.__module__)

    @property
    def qualname(self) -> str:
        return str(self.fn.__qualname__)

    def signature_text(self) -> str:
        """``name(a: int, b: str = 'x')``: how a payload must look, for error messages."""
        parts = []
        for p in inspect.signature(self.fn).parameters.values():
            text = p.name
            if p.kind is VAR_KEYWORD:
                text = "**" + text
            elif p.kind is VAR_POSITIONAL:
                text = "*" + text
            if p.annotation is not inspect.Parameter.empty:
                annotation = p.annotation
                shown = (
                    annotation
                    if isinstance(annotation, str)
                    else getattr(annotation, "__name__", repr(annotation))
                )
                text += f": {shown}"
            if p.default is not inspect.Parameter.empty:
                text += f" = {p.default!r}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})"

    def check_payload(self, payload: object, types: bool = True) -> dict[str, Any]:
        """Return the keyword arguments for a payload, or raise ``TypeError`` naming
        what is missing or unexpected, or (``types``) every value that does not fit
        its parameter's annotation: ``images.resize: field "image_id" must be str;
        got null``."""
        if type(payload) is not dict:
            example = "{" + ", ".join(repr(p) + ": …" for p in self.params[:3]) + "}"
            payload = payload_object(payload, f"payload for {self.name}", example)
        keys = payload.keys()
        missing = self.required.difference(keys)
        unexpected = [] if self.accepts_any else [k for k in keys if k not in self.params]
        if missing or unexpected:
            problems = []
            if missing:
                problems.append("missing " + ", ".join(repr(m) for m in sorted(missing)))
            if unexpected:
                problems.append(
                    "unexpected "
                    + ", ".join(f"{k!r}{suggest(str(k), self.params)}" for k in unexpected)
                )
            raise TypeError(
                f"payload does not match {self.signature_text()}: {'; '.join(problems)}"
            )
        if types:
            self.check_types(payload)
        return payload

    def check_types(self, arguments: Mapping[str, Any]) -> None:
        """``TypeError`` naming every argument whose value does not fit its annotation."""
        if self.types:
            problems = type_problems(self.name, self.types, arguments)
            if problems:
                raise TypeError(problems)


def payload_object(payload: object, what: str = "payload", example: str = "") -> dict[str, Any]:
    """A payload as a dict (None means no arguments), or ``TypeError`` saying why not."""
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        hint = f", e.g. {example}" if example else ""
        raise TypeError(
            f"{what} must be a JSON object mapping argument names to values{hint}; "
            f"got {type(payload).__name__}"
        )
    return payload if type(payload) is dict else dict(payload)


def _analyse_signature(fn: Callable[..., Any]) -> tuple[tuple[str, ...], frozenset[str], bool]:
    sig = inspect.signature(fn)
    params: list[str] = []
    required: set[str] = set()
    accepts_any = False
    for p in sig.parameters.values():
        if p.kind is _POSITIONAL_ONLY:
            raise ValueError(
                f"handler parameter {p.name!r} is positional-only; payloads are passed by "
                "name, so remove the '/' from the signature"
            )
        if p.kind is VAR_KEYWORD:
            accepts_any = True
        elif p.kind is not VAR_POSITIONAL:
            params.append(p.name)
            if p.default is inspect.Parameter.empty:
                required.add(p.name)
    return tuple(params), frozenset(required), accepts_any


def default_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` (just the qualname in a script), without ``<locals>``."""
    module = getattr(fn, "__module__", "") or ""
    qualname = getattr(fn, "__qualname__", getattr(fn, "__name__", "task"))
    qualname = re.sub(r"[^A-Za-z0-9_.:\-]", "", qualname.replace("<locals>.", "")).strip(".")
    name = qualname if module in ("__main__", "__mp_main__") else f"{module}.{qualname}"
    return name[-MAX_HANDLER_NAME:].lstrip("._-:") or "task"


def build_handler(fn: Callable[..., Any], options: Mapping[str, Any]) -> Handler:
    """Validate ``options`` for ``fn`` and return the :class:`Handler`."""
    unknown = [k for k in options if k not in TASK_OPTIONS]
    if unknown:
        raise unknown_option_error("task", unknown, TASK_OPTIONS)
    if not callable(fn):
        raise TypeError(f"@task needs a function; got {type(fn).__name__}")
    name = check_handler_name(options.get("name") or default_name(fn))
    queue = check_queue_name(options.get("queue", "default"))
    priority = parse_priority(options.get("priority", DEFAULT_PRIORITY))
    retries = options.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"retries must be a whole number from 0 to {MAX_RETRIES}; got {retries!r}")
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be from 0 to {MAX_RETRIES}; got {retries}")
    retry = options.get("retry", DEFAULT_RETRY)
    if not isinstance(retry, RetryPolicy):
        raise TypeError(
            "retry must be a RetryPolicy, e.g. RetryPolicy.exponential(base=0.5, cap=60); "
            f"got {type(retry).__name__}"
        )
    if "retry_on" in options:
        extra = check_exception_types(options["retry_on"])
        retry = RetryPolicy(
            retry.kind, retry.base, retry.factor, retry.cap, retry.jitter, retry.retry_on + extra
        )
    timeout = _check_timeout("timeout", options.get("timeout"))
    soft_timeout = _check_timeout("soft_timeout", options.get("soft_timeout"))
    if timeout is not None and soft_timeout is not None and soft_timeout >= timeout:
        raise ValueError(
            f"soft_timeout ({soft_timeout:g} s) must be less than timeout ({timeout:g} s)"
        )
    is_async = inspect.iscoroutinefunction(fn)
    executor = options.get("executor", "async" if is_async else "thread")
    if executor not in EXECUTORS:
        raise ValueError(
            f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}"
            + suggest(str(executor), EXECUTORS)
        )
    if executor == "async" and not is_async:
        raise ValueError(
            f"executor 'async' needs an 'async def' handler and {name} is a plain function; "
            "use executor='thread' (I/O) or executor='process' (CPU-heavy)"
        )
    if executor == "process" and "<locals>" in getattr(fn, "__qualname__", "<locals>"):
        raise ValueError(
            f"process handlers must be module-level functions so a worker process can "
            f"import them; {fn.__qualname__} is defined inside another function"
        )
    params, required, accepts_any = _analyse_signature(fn)
    rate_limit = options.get("rate_limit")
    if rate_limit is not None:
        rate_limit = str(parse_rate(rate_limit))
    hooks = {}
    for hook in ("on_success", "on_failure"):
        value = options.get(hook)
        if value is not None and not callable(value):
            raise TypeError(
                f"{hook} must be a function called with the task's record; "
                f"got {type(value).__name__}"
            )
        hooks[hook] = value
    return Handler(
        name=name,
        fn=fn,
        queue=queue,
        priority=priority,
        retries=retries,
        retry=retry,
        timeout=timeout,
        soft_timeout=soft_timeout,
        executor=executor,
        params=params,
        required=required,
        accepts_any=accepts_any,
        rate_limit=rate_limit,
        types=field_types(fn),
        queue_given="queue" in options,
        **hooks,
    )


class Registry:
    """Handlers by name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def add(self, handler: Handler) -> Handler:
        existing = self._handlers.get(handler.name)
        if existing is not None and existing.fn is not handler.fn:
            raise ValueError(
                f"a handler named {handler.name!r} is already registered "
                f"({existing.module}.{existing.qualname}); give this one another name="
            )
        self._handlers[handler.name] = handler
        return handler

    def get(self, name: str) -> Handler:
        """The handler called ``name``; ``LookupError`` names the closest ones."""
        handler = self._handlers.get(name)
        if handler is None:
            raise LookupError(self.unknown_message(name))
        return handler

    def find(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def unknown_message(self, name: str) -> str:
        names = sorted(self._handlers)
        if not names:
            return (
                f"unknown handler {name!r}: no handlers are registered in this engine "
                "(register with @engine.task, or use strict_handlers=False for a producer)"
            )
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
        return f"unknown handler {name!r}{hint} Registered: {shown}"

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def queues(self, routes: Routes) -> dict[str, str]:
        """Handler name → the queue its tasks go to (see :meth:`Handler.routed_queue`)."""
        return {h.name: h.routed_queue(routes) for h in self._handlers.values()}

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._handlers.values())
