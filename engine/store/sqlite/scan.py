"""Reads that may scan many rows (a query over payload or error text), each on its
own short-lived read-only connection, so a long one never holds up the shared reader
and cancelling it stops it: the connection's progress handler sees the cancel within
a few thousand SQLite steps and interrupts the statement."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from engine.errors import StoreError
from engine.store.sqlite.file import uri

#: SQLite virtual-machine steps between two looks at the cancel flag (well under 1 ms).
_STEPS = 10_000


class ScanReader:
    """``await scan(sql, params)``: the rows, read on a fresh ``mode=ro`` connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.running = 0  # statements still executing (a cancelled one ends within ms)
        self._lock = threading.Lock()

    async def __call__(self, sql: str, params: Any = ()) -> list[Any]:
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._run, sql, params, stop)
        except BaseException:
            stop.set()  # cancelled (a timeout, the console moving on): the thread ends too
            raise

    def _run(self, sql: str, params: Any, stop: threading.Event) -> list[Any]:
        try:
            conn = sqlite3.connect(uri(self.path, "mode=ro"), uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc
        with self._lock:
            self.running += 1
        try:
            conn.set_progress_handler(stop.is_set, _STEPS)
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if stop.is_set():
                return []  # nobody is waiting for these rows any more
            raise StoreError(f"cannot read {self.path}: {exc}") from exc
        finally:
            conn.close()
            with self._lock:
                self.running -= 1
