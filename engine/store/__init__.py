"""Where tasks live. :func:`open_store` picks the backend from the URL scheme."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from engine.codec import Codec
from engine.errors import StoreOpenError
from engine.faults import FaultPlan
from engine.store.base import Store

DEFAULT_URL = "sqlite:///taskdeck.db"
SQLITE_SCHEMES = ("", "sqlite", "sqlite3")
_URL_HELP = "use sqlite:///relative/path.db, sqlite:////absolute/path.db or a plain file path"


def sqlite_path(url: str | Path) -> Path:
    """The file path of an SQLite store URL (or plain path)."""
    if isinstance(url, Path):
        return url
    if not isinstance(url, str) or not url.strip():
        raise StoreOpenError(f"the store must be a URL or a path; got {url!r} ({_URL_HELP})")
    text = url.strip()
    if "://" not in text:
        if text == ":memory:":
            raise StoreOpenError("in-memory stores are not supported; use a file path")
        return Path(text)
    parts = urlsplit(text)
    if parts.scheme not in ("sqlite", "sqlite3"):
        raise StoreOpenError(f"not an SQLite URL: {url!r} ({_URL_HELP})")
    if parts.netloc:
        raise StoreOpenError(
            f"an SQLite URL has no host: {url!r}; write three slashes for a relative path "
            "(sqlite:///data/tasks.db) or four for an absolute one"
        )
    path = unquote(parts.path)
    if path.startswith("/"):
        path = path[1:]
    if not path or path == ":memory:":
        raise StoreOpenError(f"{url!r} names no database file ({_URL_HELP})")
    return Path(path)


def scheme_of(url: str | Path) -> str:
    """The URL's scheme in lower case; ``""`` for a plain path."""
    return (
        "" if isinstance(url, Path) or "://" not in str(url) else str(url).split("://")[0].lower()
    )


def sqlite_file(url: str | Path) -> Path | None:
    """The absolute path of an SQLite store's file (None for another backend)."""
    if scheme_of(url) not in SQLITE_SCHEMES:
        return None
    return sqlite_path(url).expanduser().absolute()


def open_store(
    url: str | Path,
    codec: Codec | None = None,
    clock: Callable[[], float] = time.time,
    by: str = "engine",
    faults: FaultPlan | None = None,
) -> Store:
    """Create (not yet open) the store for ``url``; raises ``StoreOpenError`` if unusable.
    ``faults``: a crash test's fault plan (see :mod:`engine.faults`)."""
    scheme = scheme_of(url)
    if scheme in SQLITE_SCHEMES:
        from engine.store.sqlite.driver import SQLiteStore

        return SQLiteStore(sqlite_path(url), codec, clock, url=str(url), by=by, faults=faults)
    if scheme in ("postgres", "postgresql"):
        from engine.store.postgres.driver import PostgresStore

        return PostgresStore(str(url), codec, clock, by=by, faults=faults)
    raise StoreOpenError(
        f"unsupported store URL scheme {scheme!r} in {url!r}; {_URL_HELP}, "
        "or postgresql://user@host:port/database[?schema=name]"
    )


__all__ = ["DEFAULT_URL", "Store", "open_store", "scheme_of", "sqlite_file", "sqlite_path"]
