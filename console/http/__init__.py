"""Taskdeck over HTTP: Prometheus metrics, health checks and a JSON API with token auth
(``taskdeck serve``, ``taskdeck run --headless --http PORT``). See :mod:`.server`."""

from console.http.server import HttpServer, ServeOptions, check_bind, is_loopback
from console.http.tokens import Scope, Tokens, Verdict

__all__ = ["HttpServer", "Scope", "ServeOptions", "Tokens", "Verdict", "check_bind", "is_loopback"]
