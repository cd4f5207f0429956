"""Cross-process wake-ups on one SQLite file: a Unix datagram socket per engine.

Processes on one SQLite file share no server that could tell them about each
other's writes, so an idle engine would notice work another process made ready
only at its next poll (``poll_interval``). Instead, each engine that runs workers
binds a Unix datagram socket in the store's *wake directory*, and after every
commit that made tasks ready (an enqueue, a retry, a promotion of due tasks, a
resumed queue, a workflow's next step, a task given back) the committing process,
an engine or a command-line producer alike, sends one byte to every other socket
there: once per commit, not per task. The receiving engine wakes its pool, which
claims at once. Same-process wake-ups do not go through here (an enqueue kicks its
own pool directly), and ``poll_interval`` stays the fallback for everything a
datagram cannot reach.

The wake directory is ``<store>.wake/`` beside the store file (its real path, so a
symlinked directory finds the same one), private (0700). Where a socket path there
would be too long for ``AF_UNIX`` (about 100 bytes) or the store's directory is not
writable, it is ``<tmp>/taskdeck-<uid>/wake-<hash of the store's real path>/``.
Senders look in both. A socket is named ``<pid>-<random>.sock``; a stopping engine
closes and unlinks its own and removes the directory when it is empty, so a store
used by one process at a time leaves nothing beside it. A socket whose process died
without removing it refuses datagrams (``ECONNREFUSED``) and the first sender that
meets it unlinks it.

Wake-ups closer together than ``COALESCE`` (5 ms) wake the pool once, at the end of
that gap, so that a stream of single enqueues is claimed a few tasks at a time.

Sending never blocks and never raises into the write path: the sockets are
non-blocking, a full receive queue (``EAGAIN``: that engine has wake-ups pending
already) and a vanished socket are skipped, and any other error is logged at debug
level. Where ``AF_UNIX`` datagrams do not exist (Windows), nothing is sent or bound
and the poll finds the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.store.base import OpenMode
from engine.store.sqlite.txn import BatchResult

log = logging.getLogger(__name__)

SUFFIX = ".sock"
#: Longest socket path used: AF_UNIX allows 107 bytes on Linux, 103 on macOS.
MAX_PATH = 100
#: The longest socket name (a 7-digit pid), so that every process picks the same place.
NAME_ROOM = len(f"/{2**22}-{'0' * 8}{SUFFIX}")
#: Wake-ups that arrive closer together than this (s) wake the pool once, at the end of
#: the gap: under a stream of single enqueues from another process the pool then claims
#: several tasks per transaction instead of one each, and leaves the producer the write
#: lock in between (bench/wake_bench.py, 64 workers: about 1.3× the stream's rate, for
#: at most 5 ms more latency). An engine woken less often than this is woken at once.
COALESCE = 0.005
SUPPORTED = sys.platform != "win32" and hasattr(socket, "AF_UNIX")


def wake_dirs(store: Path) -> tuple[Path, Path]:
    """Where the sockets of ``store``'s engines are: beside the store file, and the
    fallback under the temporary directory (see the module docstring)."""
    real = Path(os.path.realpath(store))
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    private = Path(tempfile.gettempdir()) / f"taskdeck-{os.getuid()}"
    return real.with_name(real.name + ".wake"), private / f"wake-{digest}"


def _private_dir(path: Path) -> bool:
    """Make ``path`` a directory only this user can use (if missing); True if it is one."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # whatever the umask
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


class Wake:
    """One store's end of the wake-ups: :meth:`send` after a commit that made tasks
    ready (on the writer thread), :meth:`listen` to receive them (an engine with
    workers: ``on_wake`` is called on the event loop), :meth:`close` on stop."""

    def __init__(self, store: Path) -> None:
        self._store = store
        self._dirs: tuple[Path, Path] | None = None  # found on first use, off the loop
        self.on_wake: Callable[[], None] | None = None
        self._name = f"{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        self._tx: socket.socket | None = None
        self._rx: socket.socket | None = None
        self._own: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken_at = float("-inf")  # the loop's time of the last wake-up
        self._pending: asyncio.TimerHandle | None = None  # a wake-up held back (COALESCE)

    @property
    def socket_path(self) -> Path | None:
        """This engine's socket while it listens."""
        return self._own

    def _folders(self) -> tuple[Path, Path]:
        if self._dirs is None:
            self._dirs = wake_dirs(self._store)
        return self._dirs

    # -- sending (the writer thread) ---------------------------------------------------
    def after(self, outcome: BatchResult) -> None:
        """After a group commit (its results on their way): a wake-up if it made tasks
        ready."""
        if outcome.woke:
            self.send()

    def send(self) -> None:
        """One datagram to every other engine's socket; never blocks, never raises."""
        if not SUPPORTED:
            return
        try:
            tx = self._tx
            if tx is None:
                tx = self._tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                tx.setblocking(False)
            for folder in self._folders():
                self._send_in(tx, str(folder))
        except Exception as exc:  # a wake-up is an optimisation: the poll finds the work
            log.debug("sending wake-ups failed: %s", exc)

    def _send_in(self, tx: socket.socket, folder: str) -> None:
        try:
            names = os.listdir(folder)
        except OSError:  # no such directory (nobody listens), or not ours to read
            return
        for name in names:
            if name == self._name or not name.endswith(SUFFIX):
                continue
            path = os.path.join(folder, name)
            try:
                tx.sendto(b"!", path)
            except ConnectionRefusedError:  # its process died without removing it
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except OSError:  # gone meanwhile, or its queue is full (it will wake)
                continue

    # -- receiving (the event loop) ----------------------------------------------------
    async def listen(self, mode: OpenMode) -> None:
        """Bind this engine's socket and call ``on_wake`` when a datagram arrives (a
        client, opened for commands, only sends). A socket that cannot be bound is
        logged and left out: the poll stays."""
        if not SUPPORTED or mode.client or mode.read_only or self._rx is not None:
            return
        rx = await asyncio.to_thread(self._bind)
        if rx is None:
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_reader(rx.fileno(), self._readable)
        except (NotImplementedError, RuntimeError) as exc:
            log.debug("cannot watch the wake-up socket: %s", exc)
            rx.close()
            await asyncio.to_thread(self._remove_own)
            return
        self._rx, self._loop = rx, loop

    def _bind(self) -> socket.socket | None:
        """On a thread: the socket bound in the wake directory (None: not possible)."""
        for _ in range(3):  # a stopping engine may remove an empty directory meanwhile
            try:
                folder = self._home()
                if folder is None:
                    return None
                rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            except OSError as exc:
                log.debug("no wake-up socket: %s", exc)
                return None
            path = folder / self._name
            try:
                rx.bind(str(path))
                rx.setblocking(False)
            except FileNotFoundError:
                rx.close()
                continue
            except OSError as exc:
                rx.close()
                log.debug("cannot bind a wake-up socket at %s: %s", path, exc)
                return None
            self._own = path
            return rx
        return None

    def _home(self) -> Path | None:
        """The wake directory to bind in, made if missing (see the module docstring)."""
        beside, fallback = self._folders()
        fits = len(os.fsencode(beside)) + NAME_ROOM <= MAX_PATH
        if fits and os.access(beside.parent, os.W_OK | os.X_OK) and _private_dir(beside):
            return beside
        if len(os.fsencode(fallback)) + NAME_ROOM > MAX_PATH:
            return None
        if _private_dir(fallback.parent) and _private_dir(fallback):
            return fallback
        return None

    def _readable(self) -> None:
        rx, loop = self._rx, self._loop
        if rx is None or loop is None:
            return
        while True:  # one wake-up however many datagrams are waiting
            try:
                rx.recv(16)
            except OSError:  # BlockingIOError: drained
                break
        if self._pending is not None:
            return  # a wake-up is due soon and covers these
        wait = self._woken_at + COALESCE - loop.time()
        if wait > 0:
            self._pending = loop.call_later(wait, self._wake)
        else:
            self._wake()

    def _wake(self) -> None:
        self._pending = None
        if self._loop is not None:
            self._woken_at = self._loop.time()
        try:
            if self.on_wake is not None:
                self.on_wake()
        except Exception:  # a wake-up must never break the loop's reader
            log.exception("the wake-up callback failed")

    # -- stop ---------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop listening; close and unlink this engine's socket, and remove the wake
        directory if that leaves it empty."""
        rx, loop, self._rx, self._loop = self._rx, self._loop, None, None
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if rx is not None:
            if loop is not None and not loop.is_closed():
                loop.remove_reader(rx.fileno())
            rx.close()
        if self._own is not None:
            await asyncio.to_thread(self._remove_own)
        if self._tx is not None:
            self._tx.close()
            self._tx = None

    def _remove_own(self) -> None:
        own, self._own = self._own, None
        if own is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(own)
        with contextlib.suppress(OSError):  # not empty: another engine listens there
            os.rmdir(own.parent)
