"""The console in a browser (``taskdeck serve --console``): ``/console`` on the HTTP
endpoint's server, through `textual-serve <https://github.com/Textualize/textual-serve>`_.

Each browser session (each websocket) is one process: ``taskdeck console --attach
--store URL`` for a write token, ``taskdeck console --read-only --store URL`` for a read
token, started by textual-serve's ``AppService`` when the websocket opens and told to
quit when it closes. The session's console runs no workers: it steers the nodes on the
store, like any attached console.

Tokens are the endpoint's (:mod:`console.http.tokens`). The browser brings one in the
URL (``/console/?token=…``: it is moved to an HttpOnly cookie and dropped from the URL
by a redirect) or through the login form; ``Authorization: Bearer`` works too. The page,
its static files and the websocket each check it: no token or a wrong one is a 401
(the login form), and nothing starts. Without tokens configured the server listens on
loopback only (:func:`~console.http.server.check_bind`) and every session is a full one.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import shlex
from asyncio.subprocess import Process
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager
from yarl import URL

from console.http.tokens import READ_ENV, WRITE_ENV, Scope, Tokens

log = logging.getLogger("taskdeck.http.console")
#: Where the console is mounted on the endpoint's server.
PREFIX = "/console"
#: The cookie that keeps the browser's token (HttpOnly: page scripts cannot read it).
COOKIE = "taskdeck_console"
#: textual-serve's xterm.js client, fonts and styles.
STATIC = Path(textual_serve.__file__).parent / "static"
#: How long a session's console may take to quit before its process is killed.
QUIT_WAIT = 5.0


class BrowserConsole:
    """The ``/console`` sub-application: the page, its static files, the websocket that
    runs one console process per session, and the token checks in front of them."""

    def __init__(self, tokens: Tokens, command: Sequence[str], environ: Mapping[str, str]) -> None:
        """``command`` starts a console (``--attach`` or ``--read-only`` is added per
        session); ``environ`` is added to its environment (the store's URL goes there,
        not on the command line where ``ps`` shows it)."""
        self.tokens = tokens
        self.command = list(command)
        self.environ = dict(environ)
        self.sessions: set[AppService] = set()
        self._downloads = DownloadManager()

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/", self.page),
                web.post("/login", self.login),
                web.get("/logout", self.logout),
                web.get("/ws", self.websocket),
                web.get("/static/{path:.+}", self.static),
            ]
        )
        app.on_shutdown.append(self._close_all)
        return app

    def session_command(self, scope: Scope) -> list[str]:
        """What a session runs: an attached console, or a read-only one."""
        return [*self.command, "--attach" if scope is Scope.WRITE else "--read-only"]

    # -- who is asking ------------------------------------------------------------------
    def scope_of(self, request: web.Request) -> Scope | None:
        """The scope of the request's token (cookie or ``Authorization``); without
        tokens configured, full access (the server is on loopback then)."""
        if not self.tokens.configured:
            return Scope.WRITE
        token = request.cookies.get(COOKIE, "")
        kind, _, bearer = request.headers.get("Authorization", "").partition(" ")
        if not token and kind.lower() == "bearer":
            token = bearer.strip()
        return self.tokens.scope_of(token) if token else None

    # -- routes -----------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.StreamResponse:
        if "token" in request.query:
            return self._sign_in(request, request.query["token"])
        if self.scope_of(request) is None:
            return login_page(request, "")
        # no-store: never cached, and no back-forward cache either (a page kept there
        # would keep its session's console running)
        return web.Response(
            text=console_page(request),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = form.get("token")
        return self._sign_in(request, token if isinstance(token, str) else "")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = see_other(f"{PREFIX}/")
        response.del_cookie(COOKIE, path=PREFIX)
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        if self.scope_of(request) is None:
            return login_page(request, "")
        path = (STATIC / request.match_info["path"]).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """One console process for the life of the websocket; refused (401, no
        process) without a valid token or from another site's page."""
        scope = self.scope_of(request)
        if scope is None or not same_origin(request):
            why = "another site's page" if scope is not None else "no valid token"
            return web.Response(status=401, text=f"the console's websocket needs {why}")
        socket = web.WebSocketResponse(heartbeat=15)
        await socket.prepare(request)
        service = ConsoleSession(
            self.session_command(scope),
            self.environ,
            write_bytes=socket.send_bytes,
            write_str=socket.send_str,
            close=socket.close,
            download_manager=self._downloads,
        )
        width, height = (whole(request.query.get(k), d) for k, d in (("width", 80), ("height", 24)))
        self.sessions.add(service)
        log.info("browser console session started (%s)", scope.value)
        try:
            await service.start(width, height)
            await until_either_ends(socket, service)
        finally:
            self.sessions.discard(service)
            await stop(service)
            await socket.close()
            log.info("browser console session ended")
        return socket

    def _sign_in(self, request: web.Request, token: str) -> web.StreamResponse:
        """A token from the URL or the form: into the cookie, then back to the page
        without it in the URL; a wrong one gets the login form again (401)."""
        if self.tokens.configured and self.tokens.scope_of(token.strip()) is None:
            return login_page(request, "That token is not valid.")
        keep = {k: v for k, v in request.query.items() if k != "token"}
        response = see_other(str(URL(f"{PREFIX}/").with_query(keep)))
        response.set_cookie(
            COOKIE,
            token.strip(),
            path=PREFIX,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def _close_all(self, app: web.Application) -> None:
        """On shutdown every session's console quits (an open websocket would hold the
        server's shutdown for its whole timeout)."""
        await asyncio.gather(*(stop(s) for s in list(self.sessions)))


class ConsoleSession(AppService):
    """textual-serve's process for one session, started without a shell (so that
    stopping it stops the console), with our variables in its environment and without
    the HTTP tokens (the console does not need them)."""

    def __init__(self, argv: Sequence[str], environ: Mapping[str, str], **options: Any) -> None:
        super().__init__(shlex.join(argv), **options)
        self.argv = list(argv)
        self.environ = environ

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)
        for name in (READ_ENV, WRITE_ENV):
            environment.pop(name, None)
        return {**environment, **self.environ}

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        pipe = asyncio.subprocess.PIPE
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=pipe,
            stdout=pipe,
            stderr=pipe,
            env=self._build_environment(width, height),
        )
        self._stdin = process.stdin
        return process


async def until_either_ends(socket: web.WebSocketResponse, service: AppService) -> None:
    """Relay the browser's input until the browser leaves or the console's process
    ends (a console that could not start closes the page's session at once)."""
    reading = asyncio.create_task(relay(socket, service))
    running = service._task or reading
    try:
        await asyncio.wait({reading, running}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def relay(socket: web.WebSocketResponse, service: AppService) -> None:
    """The browser's keys, resizes and focus changes to the console process."""
    async for message in socket:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            kind, data = message.json()
        except ValueError:
            continue
        if kind == "stdin" and isinstance(data, str):
            await service.send_bytes(data.encode("utf-8"))
        elif kind == "resize" and isinstance(data, dict):
            await service.set_terminal_size(
                whole(data.get("width"), 80), whole(data.get("height"), 24)
            )
        elif kind == "ping":
            await socket.send_json(["pong", data])
        elif kind == "blur":
            await service.blur()
        elif kind == "focus":
            await service.focus()


async def stop(service: AppService) -> None:
    """Ask the session's console to quit and wait for it; kill it if it has not quit
    within QUIT_WAIT."""
    process = service._process
    try:
        async with asyncio.timeout(QUIT_WAIT):
            await service.stop()
            if process is not None:
                await process.wait()
    except (TimeoutError, OSError):
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def to_console(request: web.Request) -> web.Response:
    """``/console`` → ``/console/`` (the page's relative links need the slash)."""
    return see_other(f"{PREFIX}/?{request.query_string}" if request.query_string else f"{PREFIX}/")


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def whole(value: object, default: int) -> int:
    """A terminal dimension from the browser (1–1000), else ``default``."""
    try:
        number = int(str(value))
    except ValueError:
        return default
    return number if 1 <= number <= 1000 else default


def same_origin(request: web.Request) -> bool:
    """A browser's websocket carries the page's ``Origin``: it must be this server
    (a page elsewhere must not drive the console with the user's cookie)."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def console_page(request: web.Request) -> str:
    scheme = "wss" if request.secure else "ws"
    socket_url = f"{scheme}://{request.host}{PREFIX}/ws"
    return CONSOLE_PAGE.replace("{static}", f"{PREFIX}/static/").replace(
        "{socket}", html.escape(socket_url)
    )


def login_page(request: web.Request, error: str) -> web.Response:
    text = LOGIN_PAGE.replace("{action}", f"{PREFIX}/login").replace(
        "{error}", f'<p class="error">{html.escape(error)}</p>' if error else ""
    )
    return web.Response(
        status=401,
        text=text,
        content_type="text/html",
        headers={"WWW-Authenticate": 'Bearer realm="taskdeck"'},
    )


CONSOLE_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Taskdeck console</title>
<link rel="stylesheet" href="{static}css/xterm.css">
<script src="{static}js/textual.js"></script>
<style>
@font-face { font-family: "Roboto Mono";
  src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf"); }
html, body { margin: 0; height: 100%; background: #0c181f; }
#terminal { position: absolute; inset: 0; }
.dialog-container, .closed-dialog { display: none; }
body.-closed .closed-dialog { display: flex; position: absolute; inset: 0; z-index: 10;
  align-items: center; justify-content: center; color: #eee; background: #0c181fe0;
  font: 16px "Roboto Mono", monospace; }
</style>
</head>
<body>
<div class="closed-dialog">Session ended.&nbsp;<a href="" style="color:#8cf">Start again</a></div>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{socket}"
  data-font-size="16"></div>
</body>
</html>
"""

LOGIN_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Taskdeck console: sign in</title>
<style>
body { background: #0c181f; color: #eee; font: 16px monospace; display: flex;
  justify-content: center; align-items: center; height: 100vh; margin: 0; }
form { background: #12232d; padding: 2em; }
input { font: inherit; width: 24em; margin: 0.5em 0; }
.error { color: #f88; }
</style>
</head>
<body>
<form method="post" action="{action}">
<h1>Taskdeck console</h1>
{error}
<label for="token">Token (a read token gives a read-only console)</label><br>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus><br>
<button type="submit">Open the console</button>
</form>
</body>
</html>
"""
