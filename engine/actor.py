"""Who acts on an engine: the OS user and host, the process id and the interface the
change came through (``api``, ``cli``, ``console`` or ``cluster``). A saved runtime
setting is stored with its actor, so ``taskdeck settings`` can say who changed it."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

#: How a change reaches an engine: your program, the command line, the console, or a
#: command another node sent through the store.
INTERFACES = ("api", "cli", "console", "cluster")


def os_user() -> str:
    """The login name of this process's user (its uid when there is none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container with a bare uid)
        return str(os.getuid())


@dataclass(frozen=True)
class Actor:
    """One process acting through one interface."""

    user: str
    host: str
    pid: int
    interface: str

    @classmethod
    def here(cls, interface: str) -> Actor:
        """This process, acting through ``interface`` (one of :data:`INTERFACES`)."""
        if interface not in INTERFACES:
            raise ValueError(f"interface must be one of {', '.join(INTERFACES)}; got {interface!r}")
        return cls(os_user(), socket.gethostname(), os.getpid(), interface)

    @property
    def who(self) -> str:
        """``alice@build-7``."""
        return f"{self.user}@{self.host}"

    def __str__(self) -> str:
        return f"{self.who} ({self.interface}, pid {self.pid})"
