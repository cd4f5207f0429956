"""``Engine.client()``: the store opened for commands only.

``async with engine.client() as e:`` opens the store and nothing else: no workers,
no scheduler, promoter, rescuer, cleaner, lease keeper, progress reporter, monitor,
no node row or heartbeat. Reads and operator commands work inside the block
(``engine.running`` is True); leaving it closes the store. This is what a command
line tool needs: ``taskdeck status`` must not fire a due periodic run or rescue
another engine's tasks, and must not create a store at a mistyped path.

The settings saved in the store (runtime changes, see :mod:`engine.saved_settings`)
are taken when it opens, as an engine takes them when it starts.

- ``create=False``: a store that does not exist is refused with ``StoreOpenError``
  ("no Taskdeck store at …"), and nothing is created.
- ``read_only=True`` (implies ``create=False``): nothing is written. SQLite is opened
  with ``mode=ro`` (no WAL switch, no migration, never a wait for the write lock);
  PostgreSQL sessions are read-only. Every write method raises ``ReadOnlyError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from engine.errors import ReadOnlyError
from engine.store.base import OpenMode, Store


class _Engine(Protocol):
    @property
    def running(self) -> bool: ...


E = TypeVar("E", bound=_Engine)


def open_mode(read_only: object, create: object) -> OpenMode:
    """The store's open mode for ``client(read_only, create)``; both must be bools."""
    for name, value in (("read_only", read_only), ("create", create)):
        if not isinstance(value, bool):
            raise TypeError(f"client() {name} must be True or False; got {value!r}")
    return OpenMode(read_only=bool(read_only), create=bool(create) and not read_only, client=True)


def read_only_refusal(verb: str) -> ReadOnlyError:
    return ReadOnlyError(
        f"the engine was opened read-only (engine.client(read_only=True)); cannot {verb}"
    )


class ClientSession(Generic[E]):
    """What ``engine.client()`` returns. ``async with`` opens the store and yields the
    engine; leaving the block closes the store (see the module docstring)."""

    def __init__(
        self,
        engine: E,
        store: Store,
        mode: OpenMode,
        configure: Callable[[], None],
        set_mode: Callable[[OpenMode | None], Awaitable[None]],
    ) -> None:
        self._engine = engine
        self._store = store
        self._mode = mode
        self._configure = configure  # the engine's settings reach the store first
        self._set_mode = set_mode
        self._open = False

    async def __aenter__(self) -> E:
        if self._engine.running:
            raise RuntimeError(
                "the engine is already running; client() opens the store of an engine that "
                "is not started (for commands only)"
            )
        self._configure()
        await self._store.open(self._mode)
        self._open = True
        try:
            await self._set_mode(self._mode)  # it reads the settings saved in the store
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self._engine

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._open:
            return
        self._open = False
        await self._set_mode(None)
        await self._store.close()
