"""Bearer tokens and their scopes, for every HTTP surface (the JSON API and /metrics
now, the browser console next).

Two scopes: ``read`` and ``write`` (a write token reads too). Tokens come from the
configuration file's ``[http]`` table (``read_tokens = [...]``, ``write_tokens =
[...]``) and from ``TASKDECK_HTTP_READ_TOKENS`` / ``TASKDECK_HTTP_WRITE_TOKENS``
(comma-separated); both sources add up. :meth:`Tokens.check` compares in constant
time: a wrong token takes as long to refuse whatever its first characters are.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from engine import Config, ConfigError, check_http_tokens

READ_ENV = "TASKDECK_HTTP_READ_TOKENS"
WRITE_ENV = "TASKDECK_HTTP_WRITE_TOKENS"
#: The realm named in ``WWW-Authenticate``.
REALM = "taskdeck"


class Scope(Enum):
    READ = "read"
    WRITE = "write"


class Verdict(Enum):
    """What a request's credentials allow."""

    OK = "ok"
    MISSING = "missing"  # no token, or a malformed Authorization header: 401
    WRONG = "wrong"  # a token that is none of ours: 401
    FORBIDDEN = "forbidden"  # a read token on a write endpoint: 403

    @property
    def status(self) -> int:
        return {"ok": 200, "missing": 401, "wrong": 401, "forbidden": 403}[self.value]


@dataclass(frozen=True)
class Tokens:
    """The tokens of each scope; none at all means the endpoint runs without auth
    (and then only on loopback: see :func:`console.http.server.check_bind`)."""

    read: tuple[bytes, ...] = ()
    write: tuple[bytes, ...] = ()

    @classmethod
    def load(cls, config: Config, environ: Mapping[str, str]) -> Tokens:
        """From the file's ``[http]`` table and the environment; a bad token is a
        :class:`ConfigError` naming where it is and what is allowed."""
        found: dict[str, tuple[str, ...]] = {}
        problems: dict[str, str] = {}
        for key, env in (("read_tokens", READ_ENV), ("write_tokens", WRITE_ENV)):
            found[key] = tuple(config.http.get(key, ()))
            if environ.get(env, "").strip():
                try:
                    found[key] += check_http_tokens(environ[env])
                except ValueError as exc:
                    problems[env] = str(exc)
        if problems:
            raise ConfigError(problems)
        return cls(
            tuple(t.encode() for t in found["read_tokens"]),
            tuple(t.encode() for t in found["write_tokens"]),
        )

    @property
    def configured(self) -> bool:
        return bool(self.read or self.write)

    def scope_of(self, token: str) -> Scope | None:
        """The token's scope (None: not ours). Every stored token is compared, each in
        constant time, so the answer's timing says nothing about the token."""
        given = token.encode("utf-8", "replace")
        writes = [hmac.compare_digest(given, t) for t in self.write]
        reads = [hmac.compare_digest(given, t) for t in self.read]
        if any(writes):
            return Scope.WRITE
        return Scope.READ if any(reads) else None

    def check(self, authorization: str | None, need: Scope) -> Verdict:
        """A request's ``Authorization`` header against the scope it ``need``s. Without
        any token configured everything is allowed."""
        if not self.configured:
            return Verdict.OK
        kind, _, token = (authorization or "").strip().partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return Verdict.MISSING
        scope = self.scope_of(token.strip())
        if scope is None:
            return Verdict.WRONG
        if need is Scope.WRITE and scope is not Scope.WRITE:
            return Verdict.FORBIDDEN
        return Verdict.OK

    @staticmethod
    def challenge(verdict: Verdict) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        if verdict is Verdict.WRONG:
            return f'Bearer realm="{REALM}", error="invalid_token"'
        return f'Bearer realm="{REALM}"'
