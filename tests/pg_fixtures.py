"""PostgreSQL fixtures: a fresh schema per test on the local server.

``pg_url`` gives ``postgresql://postgres@127.0.0.1:5432/test?schema=td_<random>`` (the
store creates the schema when it opens) and drops the schema after the test. The
server must be up (``.ci/run`` starts it): a server that is down fails the test, it
never skips it. ``TASKDECK_TEST_PG`` overrides the server part of the URL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

T = TypeVar("T")

SERVER = os.environ.get("TASKDECK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def fresh_schema_url(server: str = SERVER) -> str:
    """A store URL on ``server`` with a new, unused schema name (``td_<random>``)."""
    return with_schema(server, f"td_{secrets.token_hex(6)}")


def with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def schema_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query)).get("schema", "public")


def server_of(url: str) -> str:
    """The URL without its schema (what asyncpg connects to)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a loop of its own, in a thread (safe to call
    from sync code and from inside a test's running loop)."""
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            box["value"] = asyncio.run(_call(make))
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=main, name="pg-fixture")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


async def sql(url: str, statement: str, *args: Any) -> list[Any]:
    """Run one statement on the store's schema (a connection of its own)."""
    conn = await asyncpg.connect(
        server_of(url), server_settings={"search_path": f'"{schema_of(url)}"'}
    )
    try:
        rows: list[Any] = await conn.fetch(statement, *args)
        return rows
    finally:
        await conn.close()


def drop_schema(url: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(server_of(url))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(url)}" CASCADE')
        finally:
            await conn.close()

    run_sync(drop)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A store URL with a fresh schema, dropped after the test."""
    url = fresh_schema_url()
    yield url
    drop_schema(url)
