"""The configuration a process starts with: ``taskdeck.toml``, the environment and
command-line flags, each over the one before.

Precedence, lowest first (one order everywhere): the defaults < the file's
``[engine]`` table < ``TASKDECK_<NAME>`` environment variables < command-line flags
(``--set NAME=VALUE``) < runtime changes, which are saved in the store (see
:mod:`engine.saved_settings`). ``Engine(config=load_config())`` starts from it.

The file is the one given (``load_config(path)``, ``--config FILE``), else the one in
``TASKDECK_CONFIG``, else ``taskdeck.toml`` in the working directory when there is
one. Its ``[engine]`` table holds settings by the names, units and bounds of
:class:`~engine.settings.Settings` (and ``store``, the store's URL or path); its
``[alerts]`` table is kept as it is (:attr:`Config.alerts`); its ``[http]`` table
holds the HTTP endpoint's tokens (:attr:`Config.http`); any other table is refused.
Everything is checked before anything starts: :class:`ConfigError` has a
line per bad entry, each with the file and line (or the variable, or the flag) and
what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config_file import KeyLines, read_file
from engine.errors import ConfigError, SettingsError
from engine.settings import ENV_PREFIX, SPEC_BY_NAME, Settings, env_texts, validate_value
from engine.store import DEFAULT_URL

CONFIG_FILE = "taskdeck.toml"
CONFIG_ENV = "TASKDECK_CONFIG"
STORE_ENV = "TASKDECK_STORE"
#: Where a setting's value comes from, lowest first (``code``: given to ``Engine(...)``
#: by your program).
SOURCES = ("default", "file", "env", "flag", "code", "runtime")

Layer = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Config:
    """What a process is configured with, layer by layer (checked values by name).

    ``path``: the file read (None: none); ``file``, ``env``, ``flags``: the settings
    each layer gives; ``store``: the store from ``TASKDECK_STORE`` or the file's
    ``[engine] store`` (None: neither); ``alerts``: the file's ``[alerts]`` table, as
    written; ``http``: the file's ``[http]`` tokens (``read_tokens``, ``write_tokens``)."""

    path: Path | None = None
    file: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)
    flags: Mapping[str, Any] = field(default_factory=dict)
    store: str | None = None
    alerts: Mapping[str, Any] = field(default_factory=dict)
    http: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def layers(self) -> tuple[Layer, ...]:
        """``(source, values)`` pairs, lowest first."""
        return (("file", self.file), ("env", self.env), ("flag", self.flags))

    @property
    def settings(self) -> Settings:
        """The defaults with the file, the environment and the flags on top."""
        return Settings(**merged(self.layers()))


class Layers:
    """The settings below the runtime changes: a :class:`Config`'s layers, then the
    values a program gives ``Engine(...)`` (``code``)."""

    def __init__(self, config: Config | None = None, code: Mapping[str, Any] | None = None):
        self.config = config or Config()
        self.code = dict(code or {})

    @classmethod
    def build(
        cls,
        settings: Settings | Mapping[str, Any] | None,
        config: Config | None,
        overrides: Mapping[str, Any],
    ) -> Layers:
        """For ``Engine(settings=…, config=…, **overrides)``."""
        if settings is not None and config is not None:
            raise TypeError("give settings= or config=, not both: a Config holds settings")
        if isinstance(settings, Settings):
            code = settings.changed()
        elif settings is None or isinstance(settings, Mapping):
            code = dict(settings or {})
        else:
            raise TypeError(
                f"settings must be a Settings or a mapping; got {type(settings).__name__}"
            )
        layers = cls(config, {**code, **overrides})
        layers.settings()  # every bad value named, before anything starts
        return layers

    def all(self) -> tuple[Layer, ...]:
        return (*self.config.layers(), ("code", self.code))

    def settings(self) -> Settings:
        """The defaults with every layer on top."""
        return Settings(**merged(self.all()))

    def source(self, name: str) -> str:
        return source_of(name, self.all())

    def store_url(self, given: str | Path | None) -> str | Path:
        """The store: ``given``, else the config's, else the default."""
        return given if given is not None else self.config.store or DEFAULT_URL


def merged(layers: Iterable[Layer]) -> dict[str, Any]:
    """Every layer's values, a later layer's winning."""
    out: dict[str, Any] = {}
    for _, values in layers:
        out.update(values)
    return out


def source_of(name: str, layers: Iterable[Layer]) -> str:
    """The highest layer that gives ``name`` (``"default"``: none does)."""
    found = "default"
    for source, values in layers:
        if name in values:
            found = source
    return found


def find_file(path: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The file to read: ``path``, else ``TASKDECK_CONFIG``, else ``./taskdeck.toml``
    if it exists (None: no file)."""
    if path is not None:
        return Path(path)
    named = environ.get(CONFIG_ENV, "").strip()
    if named:
        return Path(named)
    here = Path(CONFIG_FILE)
    return here if here.is_file() else None


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Config:
    """Read the configuration (see the module docstring): the file, ``TASKDECK_<NAME>``
    variables of ``environ`` (``os.environ`` by default) and ``flags`` (setting
    names and their values as text, like ``--set``). Raises :class:`ConfigError` with
    every bad entry when anything is wrong."""
    env = os.environ if environ is None else environ
    problems: dict[str, str] = {}
    file_path = find_file(path, env)
    lines = KeyLines("")
    content = None
    if file_path is not None:
        content, found, lines = read_file(file_path)
        problems.update(found)
    env_values = _parse(env_texts(env), problems, lambda n: f"{ENV_PREFIX}{n.upper()}")
    flag_values = _parse(dict(flags or {}), problems, lambda n: f"--set {n}")
    config = Config(
        path=file_path,
        file=content.settings if content else {},
        env=env_values,
        flags=flag_values,
        store=env.get(STORE_ENV, "").strip() or (content.store if content else None),
        alerts=content.alerts if content else {},
        http=content.http if content else {},
    )
    if not problems:
        _cross_check(config, lines, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _parse(texts: Mapping[str, str], problems: dict[str, str], place: Any) -> dict[str, Any]:
    """Each text as its setting's value; a bad one goes to ``problems`` at ``place(name)``."""
    values: dict[str, Any] = {}
    for name, text in texts.items():
        try:
            values[name] = validate_value(SPEC_BY_NAME[name], Settings.parse(name, text))
        except SettingsError as exc:
            message = exc.errors[name]
            if message == "unknown setting":
                message += "; taskdeck settings lists them"
            problems[place(name)] = message
    return values


def _cross_check(config: Config, lines: KeyLines, problems: dict[str, str]) -> None:
    """Values fine one by one that do not fit together (``lease_renew_interval`` not
    below ``lease_ttl``): each named where it was given (or where the other one was)."""
    try:
        config.settings  # noqa: B018 (built to be checked)
    except SettingsError as exc:
        layers = config.layers()
        given = [name for _, values in layers for name in values]
        for name, message in exc.errors.items():
            named = name if name in given else next((g for g in given if g in message), name)
            problems[_place(config, lines, named, source_of(named, layers))] = (
                f"{name} {message}" if named != name else message
            )


def _place(config: Config, lines: KeyLines, name: str, source: str) -> str:
    if source == "env":
        return f"{ENV_PREFIX}{name.upper()}"
    if source == "flag":
        return f"--set {name}"
    if source != "file" or config.path is None:
        return name
    line = lines.of("engine", name)
    where = f"{config.path}:{line}" if line is not None else str(config.path)
    return f"{where}: [engine] {name}"
