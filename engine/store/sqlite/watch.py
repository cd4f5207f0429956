"""Noticing the store file being deleted or replaced under a running engine.

SQLite keeps writing to the file it opened, even after it was unlinked or another
file took its name: every later commit would be acknowledged and then lost (a
restart finds none of it). :class:`FileIdentity` remembers the opened file's device
and inode; the writer thread compares them with the path once per batch (one
``stat``, after the commit, so nothing acknowledged can be lost) and before each
full counts read, and from the first mismatch on fails every write with one
``StoreError`` saying so.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.errors import StoreError
from engine.store.sqlite.txn import BatchResult

T = TypeVar("T")


class FileIdentity:
    """The device and inode of the store file the writer opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._where = str(path)  # stat() of a str skips the os.fspath step
        self._opened: tuple[int, int] | None = None
        self.gone: str | None = None  # why writes stop, once the file is not the one opened

    def capture(self) -> None:
        """Remember the file at the path now (on the writer thread, once connected)."""
        st = os.stat(self.path)
        self._opened, self.gone = (st.st_dev, st.st_ino), None

    def check(self) -> str | None:
        """One ``stat``: None while the path is still the opened file; else (and from
        then on) the reason every write is refused."""
        if self.gone is not None or self._opened is None:
            return self.gone
        try:
            st = os.stat(self._where)
        except FileNotFoundError:
            now = "is gone"
        except OSError:
            return None  # cannot tell (a permission change …): the writes will say
        else:
            if (st.st_dev, st.st_ino) == self._opened:
                return None
            now = f"is replaced by inode {st.st_ino}"
        self.gone = (
            f"the store file {self.path} was deleted or replaced while the engine ran (inode "
            f"{self._opened[1]} {now}); nothing was written; restart the engine on a store"
        )
        return self.gone

    def guard(self, run: Callable[[], BatchResult], size: int) -> BatchResult:
        """Run a batch of ``size`` operations unless the file is gone; if it went while
        the batch ran, its results are refused too (they went to the lost file)."""
        gone = self.gone
        if gone is None:
            outcome = run()
            gone = self.check()
            if gone is None:
                return outcome
        return BatchResult([StoreError(gone) for _ in range(size)])

    def read(self, fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
        """``fn(conn)`` after a check: a gone file raises the reason (the monitor's
        counts read finds it once a second even when nothing is written)."""
        gone = self.check()
        if gone is not None:
            raise StoreError(gone)
        return fn(conn)
