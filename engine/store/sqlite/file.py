"""What is at an SQLite store's path, decided before anything is written.

:func:`inspect_file` says whether a path holds a new store (nothing there yet, or an
empty file), one of ours (marked with ``PRAGMA application_id``), or something to
refuse, with a message naming the file and why. It reads through a connection that
cannot write: when no process has the file open (no ``-wal``/``-shm`` next to it) an
``immutable`` one, which creates no files either; otherwise a ``mode=ro`` one, whose
``-wal``/``-shm`` are already there.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from engine.codec import Codec
from engine.errors import EncryptionKeyError, StoreOpenError
from engine.store.base import OpenMode
from engine.store.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION
from engine.store.sqlite.txn import locked

MIN_SQLITE = (3, 38, 0)  # RETURNING (3.35), the ->> operator (3.38)

#: The files SQLite keeps next to a database while it is in use.
SIDECARS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class FileInfo:
    """What :func:`inspect_file` learned without writing anything."""

    path: Path
    is_new: bool
    version: int
    key_check: str | None


@dataclass(frozen=True)
class _Marks:
    """The schema objects and markers of an SQLite file, read in one transaction."""

    objects: tuple[tuple[str, str], ...]  # (type, name) of every table, index, view …
    application_id: int
    version: int
    key_check: str | None


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        raise StoreOpenError(
            f"this Python links SQLite {sqlite3.sqlite_version}; Taskdeck needs {need} or newer"
        )


def sidecars(path: Path) -> frozenset[str]:
    """Which of ``-wal``, ``-shm`` and ``-journal`` exist next to ``path`` now."""
    return frozenset(s for s in SIDECARS if os.path.lexists(f"{path}{s}"))


def uri(path: Path, mode: str) -> str:
    """An SQLite URI for ``path`` (absolute) with ``mode`` as its query, e.g. ``mode=ro``."""
    return f"file:{quote(str(path))}?{mode}"


def no_store(path: Path, why: str) -> StoreOpenError:
    """A store that must exist (``create=False``, read-only) and does not."""
    return StoreOpenError(
        f"no Taskdeck store at {path} ({why}); check --store, or start an engine there "
        f"first (taskdeck run --headless --store {path})"
    )


def refuse(path: Path, why: str) -> StoreOpenError:
    return StoreOpenError(f"cannot use {path} as a Taskdeck store: {why}; the file was not touched")


def inspect_file(path: Path, mode: OpenMode | None = None, wait: float = 5.0) -> FileInfo:
    """Decide whether ``path`` is a new store, our store, or something to refuse.

    ``mode``: whether a missing store may be created, and whether the store will be
    opened read-only. ``wait``: how long to wait for a lock another process holds."""
    mode = mode or OpenMode()
    creating = mode.create and not mode.read_only
    check_sqlite_version()
    _check_place(path, creating, mode.read_only)
    if not path.exists() or path.stat().st_size == 0:
        if not creating:
            raise no_store(path, "no such file" if not path.exists() else "the file is empty")
        return FileInfo(path, True, 0, None)
    need = os.R_OK if mode.read_only else os.R_OK | os.W_OK
    if not os.access(path, need):
        raise refuse(path, "it is read-only for this user; Taskdeck needs read and write access")
    marks = _read_marks(path, wait)
    if marks.application_id == APPLICATION_ID:
        if marks.version > SCHEMA_VERSION:
            raise refuse(
                path,
                f"it was created by a newer Taskdeck (schema {marks.version} > "
                f"{SCHEMA_VERSION}); upgrade Taskdeck to open it",
            )
        return FileInfo(path, False, marks.version, marks.key_check)
    foreign = foreign_marks(marks.objects, marks.application_id, marks.version)
    if foreign is None and "-journal" in sidecars(path):
        foreign = "another program's rollback journal is next to it"
    if foreign is not None:
        raise refuse(path, f"it is an SQLite database of another program ({foreign})")
    if not creating:
        raise no_store(path, "an empty SQLite database")
    return FileInfo(path, True, 0, None)


def foreign_marks(
    objects: Sequence[tuple[str, str]], application_id: int, version: int
) -> str | None:
    """Why a database without Taskdeck's application id is another program's (None: it
    is clearly empty: no schema objects, user_version 0 and application_id 0).
    ``objects``: (type, name) of each table, index, view and trigger."""
    if application_id != 0:
        return f"application_id {application_id:#010x}, not Taskdeck's"
    if objects:
        tables = sorted(name for kind, name in objects if kind == "table")
        names = tables or sorted(name for _, name in objects)
        shown = ", ".join(names[:6]) + (" …" if len(names) > 6 else "")
        return f"{'tables' if tables else 'schema objects'}: {shown}"
    if version != 0:
        return f"user_version {version}, no Taskdeck tables"
    return None


def check_keys(info: FileInfo, codec: Codec) -> None:
    """Refuse an encrypted store opened without its key, or with another key."""
    if info.key_check is None:
        return
    if not codec.encrypted:
        raise EncryptionKeyError(
            f"{info.path} is encrypted; start the engine with encryption_key= (or keys=[…]; "
            "TASKDECK_KEY or --key-file on the command line). Nothing was changed."
        )
    if not codec.keys_match(info.key_check):
        raise EncryptionKeyError(
            f"the encryption key does not match the data in {info.path} (keys do not match "
            "data in this store); give the key it was created with, or keys=[new, old] to "
            "rotate. Nothing was changed."
        )


def _check_place(path: Path, creating: bool, read_only: bool) -> None:
    parent = path.parent
    if not parent.exists():
        if not creating:
            raise no_store(path, f"the directory {parent} does not exist")
        raise StoreOpenError(
            f"cannot create a store at {path}: the directory {parent} does not exist"
        )
    if not parent.is_dir():
        raise StoreOpenError(f"cannot create a store at {path}: {parent} is not a directory")
    if path.is_dir():
        raise StoreOpenError(
            f"cannot use {path} as a store: it is a directory, not a database file"
        )
    if path.exists() and not path.is_file():
        raise refuse(path, "it is not a regular file")
    if not read_only and not os.access(parent, os.W_OK | os.X_OK):
        raise StoreOpenError(
            f"cannot use {path}: the directory {parent} is not writable "
            "(SQLite needs to create its -wal and -shm files there)"
        )


def _stamp(path: Path) -> tuple[frozenset[str], int, int]:
    st = path.stat()
    return sidecars(path), st.st_size, st.st_mtime_ns


def _read_marks(path: Path, wait: float) -> _Marks:
    """Read the file's markers without creating anything next to it.

    With no ``-wal``/``-shm``/``-journal`` no process has the file open, so it is read
    as ``immutable`` (no locks, no files made). If the file or its neighbours changed
    meanwhile (another process is creating the store right now), it is read again
    through a ``mode=ro`` connection, which then shares that process's files."""
    before = _stamp(path)
    if not before[0]:
        try:
            marks = _read(path, "immutable=1", 0.0)
        except StoreOpenError:
            if _stamp(path) == before:
                raise
        else:
            if _stamp(path) == before:
                return marks
    return _read(path, "mode=ro", wait)


def _read(path: Path, mode: str, wait: float) -> _Marks:
    try:
        conn = sqlite3.connect(uri(path, mode), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise refuse(path, f"it cannot be opened ({exc})") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        # One read transaction, so every answer comes from the same snapshot: another
        # process may be creating the store right now (its tables and its id commit
        # together; read apart, the tables could be seen without the id).
        conn.execute("BEGIN")
        objects = tuple((r[0], r[1]) for r in conn.execute("SELECT type, name FROM sqlite_master"))
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        key_check = None
        if app_id == APPLICATION_ID and ("table", "meta") in objects:
            row = conn.execute("SELECT value FROM meta WHERE key='key_check'").fetchone()
            key_check = row[0] if row else None
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        if "not a database" in message:
            raise refuse(path, "it is not an SQLite database") from None
        if "locked" in message or "busy" in message:
            raise locked(path, wait) from None
        raise refuse(path, f"SQLite reports: {message}") from None
    finally:
        conn.close()
    return _Marks(objects, app_id, version, key_check)
