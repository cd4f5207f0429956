"""Shared fixtures: a fresh store file per test and engines with short timings."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, EventKind, Subscription

from .pg_fixtures import pg_url  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    """The tests run in parallel processes (pytest-xdist), whose environment says
    ``COLUMNS=80 LINES=24``: a console started in a pseudo-terminal of another size
    would believe those. Drop them; each test sizes its own terminal."""
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


#: Short leases and intervals so crash/rescue behaviour shows within a test.
FAST: dict[str, Any] = {
    "lease_ttl": 2.0,
    "lease_renew_interval": 0.5,
    "rescue_interval": 0.2,
    "poll_interval": 0.05,
    "shutdown_grace": 2.0,
    "cleanup_interval": 0.1,
    "progress_interval": 0.05,
}

EngineFactory = Callable[..., Engine]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store on each backend in turn: a SQLite file's URL, then a fresh PostgreSQL
    schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tasks.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


#: Runs a test that takes the ``store`` fixture on a SQLite file and on PostgreSQL.
BOTH_BACKENDS = pytest.mark.parametrize(
    "store",
    [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
    indirect=True,
)


@pytest.fixture
def store(request: pytest.FixtureRequest, db_path: Path) -> str | Path:
    """The test's store: a SQLite file, or a fresh PostgreSQL schema for tests marked
    :data:`BOTH_BACKENDS`."""
    if getattr(request, "param", "sqlite") == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return db_path


@pytest.fixture
async def make_engine(db_path: Path) -> AsyncIterator[EngineFactory]:
    """Build engines on the test's store; any still running are stopped at the end."""
    made: list[Engine] = []

    def factory(workers: int = 4, path: Path | None = None, **options: Any) -> Engine:
        engine = Engine(path or db_path, workers=workers, **{**FAST, **options})
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        await engine.stop(grace=0)


ROOT = Path(__file__).resolve().parent.parent


def taskdeck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``taskdeck`` command as a user would; ``env`` is added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; only for state no event announces
    (another process's file, a thread gauge). Fails the test on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


async def started(sub: Subscription, count: int = 1, timeout: float = 10.0) -> list[str]:
    """Wait for ``count`` STARTED events on ``sub``; returns their task ids."""
    ids: list[str] = []
    async with asyncio.timeout(timeout):
        while len(ids) < count:
            event = await sub.get()
            if event.kind == EventKind.STARTED and event.task_id is not None:
                ids.append(event.task_id)
    return ids
