"""``TaskHandle``: what ``@engine.task`` returns, the handler plus enqueue sugar."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.registry import ENQUEUE_OPTIONS, VAR_KEYWORD, VAR_POSITIONAL, Handler
from engine.workflow import Signature, WorkflowEngine

EnqueueFn = Callable[..., Awaitable[str]]


class TaskHandle:
    """What ``@engine.task`` returns: still callable as the plain function, plus
    ``.enqueue(payload, **options)`` and Celery-style ``.delay(*args, **kwargs)``."""

    def __init__(
        self, handler: Handler, enqueue: EnqueueFn, engine: WorkflowEngine | None = None
    ) -> None:
        self.handler = handler
        self._enqueue = enqueue
        self.engine = engine
        self.__wrapped__ = handler.fn
        self.__name__ = getattr(handler.fn, "__name__", handler.name)
        self.__qualname__ = getattr(handler.fn, "__qualname__", handler.name)
        self.__module__ = getattr(handler.fn, "__module__", __name__)
        self.__doc__ = handler.fn.__doc__

    @property
    def name(self) -> str:
        return self.handler.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.handler.fn(*args, **kwargs)

    async def enqueue(self, payload: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
        """Enqueue with a payload dict; keyword arguments that are not enqueue options
        (priority, queue, delay, run_at) are taken as the payload instead."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ENQUEUE_OPTIONS}
        if kwargs:
            if payload is not None:
                raise TypeError(
                    "pass the payload either as a dict or as keyword arguments, not both "
                    f"(extra: {', '.join(kwargs)}); "
                    f"enqueue options are {', '.join(ENQUEUE_OPTIONS)}"
                )
            payload = kwargs
        return await self._enqueue(self.handler.name, payload, **options)

    def s(self, **arguments: Any) -> Signature:
        """A workflow step with these arguments (the previous result fills the rest):
        ``chain(download.s(url=u), resize.s(width=8))``."""
        return Signature(self.handler.name, arguments, {}, self.engine)

    async def delay(self, *args: Any, **kwargs: Any) -> str:
        """Enqueue with the handler's own arguments, bound by its signature."""
        try:
            bound = inspect.signature(self.handler.fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(
                f"arguments do not match {self.handler.signature_text()}: {exc}"
            ) from None
        payload = dict(bound.arguments)
        for p in inspect.signature(self.handler.fn).parameters.values():
            if p.kind is VAR_KEYWORD and p.name in payload:
                payload.update(payload.pop(p.name))
            elif p.kind is VAR_POSITIONAL and p.name in payload:
                raise TypeError(f"{self.handler.name} takes *{p.name}; payloads are passed by name")
        return await self._enqueue(self.handler.name, payload)

    def __repr__(self) -> str:
        return f"<task {self.handler.name} ({self.handler.executor})>"
