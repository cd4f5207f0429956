"""Exceptions the engine raises.

Bad input is always a ``ValueError``, ``TypeError`` or ``LookupError`` (or a
subclass) whose message says what was wrong and what is allowed.
"""

from __future__ import annotations


class TaskNotFound(LookupError):
    """No task has the given id."""


class InvalidTransition(ValueError):
    """A task cannot make the requested state change (e.g. cancel a finished task)."""


class TaskNotRunning(InvalidTransition):
    """The task is not running, so it has no live stack (``engine.stack``)."""


class SettingsError(ValueError):
    """One or more settings are unknown or invalid; nothing was changed."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        lines = [f"{name}: {message}" for name, message in self.errors.items()]
        count = len(lines)
        head = f"{count} invalid setting{'s' if count != 1 else ''}; nothing was changed"
        super().__init__(head + "\n  " + "\n  ".join(lines))


class ConfigError(SettingsError):
    """A configuration file, environment variable or ``--set`` flag is invalid: one
    line per bad entry, each saying where it is (``taskdeck.toml:7``) and what is
    allowed. ``errors`` maps each place to its message. Nothing was started."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        ValueError.__init__(self, "\n".join(f"{where}: {text}" for where, text in errors.items()))


class StoreError(RuntimeError):
    """The store cannot do what was asked (locked, full, corrupted …)."""


class ReadOnlyError(StoreError):
    """A write was asked of an engine opened read-only (``engine.client(read_only=True)``)."""


class StoreOpenError(ValueError):
    """The store URL or file cannot be used as a Taskdeck store. Nothing was written."""


class EncryptionKeyError(ValueError):
    """A key is malformed, missing, or does not match the data in the store."""


class EngineNotRunning(RuntimeError):
    """The engine must be started (``async with engine:``) for this call."""


class ResultNotSerializable(ValueError):
    """A handler returned something that is not JSON-serialisable (never retried)."""


class PayloadError(ValueError):
    """A payload (JSON text or a value) is not one Taskdeck can store: not UTF-8, not
    JSON, nested too deep, holding a lone surrogate, or not a JSON object."""


class PayloadDecodeError(ValueError):
    """A stored payload cannot be decrypted or parsed (never retried)."""


class UnclosedEngineWarning(RuntimeWarning):
    """An engine was garbage-collected, or the interpreter exited, while it still ran
    (``async with engine:`` or ``await engine.stop()`` was forgotten)."""


class HardTimeout(TimeoutError):
    """An attempt ran past its handler's ``timeout``."""


class WorkerProcessLost(Exception):
    """The worker process died while running a task."""


class RemoteError(Exception):
    """A handler failed in a worker process; ``text`` is its traceback."""

    def __init__(self, text: str, type_name: str, mro: list[str], not_serializable: bool) -> None:
        super().__init__(text.strip().splitlines()[-1] if text.strip() else type_name)
        self.text = text
        self.type_name = type_name
        self.mro = mro
        self.not_serializable = not_serializable
