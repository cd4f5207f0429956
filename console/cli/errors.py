"""What a failed command prints and which exit code it returns.

- 2 (usage): what was typed is wrong: an unknown command or option, a bad option
  value, a payload that is not JSON (or too deep, or not UTF-8) or does not fit the
  handler, an unknown handler, a bad setting, a bad configuration file.
- 1 (refused): what was typed is fine, but the store, a key or the state of what it
  names refused it: the store cannot be opened (or none exists there, or it is
  locked), a key or key file is missing or wrong, no such task, schedule or node, a
  task in a state that does not allow it, a node that refused or did not answer.
- 130: interrupted (Ctrl-C).

Every failure is one line on stderr (``taskdeck: error: …``), never a traceback.
"""

from __future__ import annotations

import logging

from engine import (
    ConfigError,
    EncryptionKeyError,
    EngineNotRunning,
    InvalidTransition,
    SettingsError,
    StoreError,
    StoreOpenError,
    TaskNotFound,
)

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("taskdeck")


class UserError(Exception):
    """A mistake in how taskdeck was called: exit code 2."""


class Refused(Exception):
    """A well-formed command that the store, a key or a task's state refused: exit 1."""


#: Refusals by the store, a key or the state of what a command names (exit 1); checked
#: before the usage errors because some of them are ValueErrors or LookupErrors too.
REFUSALS: tuple[type[BaseException], ...] = (
    Refused,
    StoreOpenError,
    StoreError,
    EncryptionKeyError,
    TaskNotFound,
    InvalidTransition,
    EngineNotRunning,
    OSError,
)
USAGE: tuple[type[BaseException], ...] = (
    UserError,
    SettingsError,
    ValueError,
    TypeError,
    LookupError,
)


def exit_code(exc: BaseException) -> int:
    """The exit code for a failure (see the module's docstring)."""
    if isinstance(exc, REFUSALS):
        return EXIT_REFUSED
    if isinstance(exc, USAGE):
        return EXIT_USAGE
    return EXIT_REFUSED


def message(exc: BaseException) -> str:
    """One line for stderr (a bad configuration: one per bad entry)."""
    if isinstance(exc, ConfigError):
        return f"{exc}\nnothing was started or changed: fix the configuration first"
    if isinstance(exc, SettingsError):  # one line, however many settings are wrong
        named = "; ".join(f"{name}: {text}" for name, text in exc.errors.items())
        return f"invalid setting{'s' if len(exc.errors) > 1 else ''}: {named} (nothing was changed)"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to read"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, REFUSALS + USAGE):
        return text
    return f"{type(exc).__name__}: {text} (run with --log-level DEBUG for the details)"
