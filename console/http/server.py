"""The HTTP endpoint: ``/metrics``, ``/health``, ``/ready`` and the JSON API, served by
aiohttp on a thread of its own.

Why aiohttp: ``textual-serve``, which will put the console in a browser, is built on
aiohttp, so one HTTP stack (one server, one set of token checks) serves both.

The server runs its own event loop on its own thread: ``/health`` answers while the
engine's loop is blocked (and says so: 503), and every call into the engine goes
through :class:`~console.http.bridge.EngineBridge`, with a timeout. ``/health`` and
``/ready`` are open; everything else needs a token when tokens are configured (see
:mod:`console.http.tokens`); without any, the server binds to loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from console.http.api import MAX_BODY, Api
from console.http.bridge import STALL_THRESHOLD, EngineBridge, EngineBusy
from console.http.errors import ApiError, as_api_error, error_response
from console.http.metrics import CONTENT_TYPE, MetricsPage, Scrape
from console.http.openapi import document
from console.http.tokens import Scope, Tokens, Verdict
from engine import Engine, EngineSnapshot, StoreError

log = logging.getLogger("taskdeck.http")
#: Paths anyone may read (load balancers and orchestrators probe them).
OPEN_PATHS = frozenset({"/health", "/ready"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ServeOptions:
    """Where to listen, and when the engine's loop counts as blocked."""

    host: str = "127.0.0.1"
    port: int = 8077
    stall_threshold: float = STALL_THRESHOLD


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Tokens) -> None:
    """Without a token, only loopback: anyone who reaches the port could change tasks."""
    if not tokens.configured and not is_loopback(host):
        raise ValueError(
            f"--host {host} would serve the API to other machines without auth: configure "
            "tokens first ([http] read_tokens / write_tokens in taskdeck.toml, or "
            "TASKDECK_HTTP_READ_TOKENS / TASKDECK_HTTP_WRITE_TOKENS), or serve 127.0.0.1"
        )


class HttpServer:
    """One engine's HTTP endpoint on its own thread (:meth:`start`, :meth:`stop`)."""

    def __init__(
        self,
        engine: Engine,
        tokens: Tokens,
        options: ServeOptions,
        *,
        read_only: str | None = None,
        refresh_counts: bool = False,
    ) -> None:
        check_bind(options.host, tokens)
        self.engine = engine
        self.tokens = tokens
        self.options = options
        self.refresh_counts = refresh_counts  # no monitor reads them (a read-only client)
        self.port = options.port
        self.stopping = False
        self.bridge: EngineBridge | None = None
        self.read_only = read_only  # why writes are refused (None: they are not)
        self._metrics = MetricsPage()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._bound = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle (from the engine's thread) --------------------------------------
    async def start(self) -> None:
        """Listen (called on the engine's loop, whose liveness it watches); raises
        ``OSError`` when the address cannot be bound."""
        self.bridge = EngineBridge(
            asyncio.get_running_loop(), stall_threshold=self.options.stall_threshold
        )
        self.bridge.start()
        self._thread = threading.Thread(target=self._run, name="taskdeck-http", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._bound.wait)
        if self._error is not None:
            self.bridge.stop()
            raise self._error

    def stop(self) -> None:
        """Stop listening and join the thread (idempotent; a second or so at most: call
        it through ``asyncio.to_thread`` from a loop)."""
        self.stopping = True
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.bridge is not None:
            self.bridge.stop()

    def describe(self) -> str:
        """The startup line: where, and with which auth."""
        if not self.tokens.configured:
            auth = f"no tokens configured: serving {self.options.host} only, without auth"
        else:
            auth = (
                f"token auth ({len(self.tokens.read)} read, {len(self.tokens.write)} write tokens)"
            )
        ro = f" · read-only ({self.read_only})" if self.read_only else ""
        return f"HTTP on {self.url} (/metrics /health /ready /api){ro}; {auth}"

    @property
    def url(self) -> str:
        host = self.options.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    # -- the HTTP thread ---------------------------------------------------------------
    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except OSError as exc:  # reported by start()
            where = f"{self.options.host}:{self.options.port}"
            self._error = OSError(
                f"cannot listen on {where}: "
                f"{os.strerror(exc.errno).lower() if exc.errno else exc}; choose another port"
            )
        except BaseException as exc:
            self._error = exc
        finally:
            self._bound.set()
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.options.host, self.options.port)
            await site.start()
            sockets = getattr(site._server, "sockets", None) or ()  # the port, when 0 was asked
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            self._bound.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def app(self) -> web.Application:
        assert self.bridge is not None
        api = Api(self.engine, self.bridge, self.read_only)
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.add_routes(
            [
                web.get("/health", self.health),
                web.get("/ready", self.ready),
                web.get("/metrics", self.metrics),
                web.get("/api/openapi.json", self.openapi),
                *api.routes(),
            ]
        )
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Tokens first (nothing runs for a refused request), then errors as JSON."""
        if request.path not in OPEN_PATHS:
            need = Scope.READ if request.method in ("GET", "HEAD") else Scope.WRITE
            verdict = self.tokens.check(request.headers.get("Authorization"), need)
            if verdict is not Verdict.OK:
                return refusal(verdict, request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(
                ApiError(exc.status, f"{exc.reason}: {request.method} {request.path}")
            )
        except Exception as exc:
            error = as_api_error(exc)
            if error.status == 500:
                log.exception("HTTP %s %s failed", request.method, request.path)
            return error_response(error)

    # -- the routes -------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        """200 while the engine's loop runs and its store answers; 503 with the reason."""
        assert self.bridge is not None
        reason = self.bridge.stalled()
        if reason is None and self.engine.running:
            try:
                limit = self.options.stall_threshold  # a loop blocked now answers no sooner
                snap = await self.bridge.call(self._snapshot, timeout=limit)
            except EngineBusy as exc:
                reason = str(exc)
            else:
                failing = [f for f in snap.findings if f.rule == "store_error"]
                if failing:
                    reason = f"{failing[0].title}: {failing[0].evidence}"
        if reason is not None:
            return web.json_response({"status": "unavailable", "reason": reason}, status=503)
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        """200 once the engine runs (its store open); 503 while starting or stopping."""
        if self.stopping or not self.engine.running:
            why = "stopping" if self.stopping else "the engine is not started yet"
            return web.json_response({"status": "not ready", "reason": why}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(self, request: web.Request) -> web.Response:
        assert self.bridge is not None
        scrape = await self.bridge.call(self._scrape)
        return web.Response(
            body=self._metrics.render(scrape), headers={"Content-Type": CONTENT_TYPE}
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(document(self.url))

    # -- on the engine's loop ------------------------------------------------------------
    async def _snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    async def _scrape(self) -> Scrape:
        nodes, firing = None, None
        try:
            if self.refresh_counts:
                await self.engine.counts()
            nodes = await self.engine.nodes()
            firing = await self.engine.alerts.firing()
        except StoreError as exc:  # the numbers in memory are still worth having
            log.warning("metrics without the store's rows: %s", exc)
        return Scrape(self.engine.snapshot(), nodes, firing)


def refusal(verdict: Verdict, request: web.Request) -> web.Response:
    """401 (with ``WWW-Authenticate``) or 403; the request did nothing."""
    if verdict is Verdict.FORBIDDEN:
        text = f"{request.method} {request.path} needs a write token; this one may only read"
        return error_response(ApiError(403, text))
    text = (
        "a token is required: send Authorization: Bearer TOKEN"
        if verdict is Verdict.MISSING
        else "the token is not valid"
    )
    return error_response(ApiError(401, text), {"WWW-Authenticate": Tokens.challenge(verdict)})
