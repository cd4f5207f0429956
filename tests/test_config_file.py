"""``taskdeck.toml``: the configuration file, and its precedence below the environment
and ``--set`` flags. A bad file is refused before anything starts, with one message per
bad entry, each naming the file, the line and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import Config, ConfigError, Engine, load_config

from .cli_helpers import run

GOOD = """\
# the on-call configuration
[engine]
store = "sqlite:///from-file.db"
result_ttl = 600
lease_ttl = 20
queue_rate_limits = { emails = "100/m" }
autoscale = "on"

[alerts]
[alerts.slo]
images = "p95 wait < 30s"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_gives_settings_a_store_and_keeps_the_alerts_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "taskdeck.toml", GOOD), environ={})
    assert config.store == "sqlite:///from-file.db"
    assert config.alerts == {"slo": {"images": "p95 wait < 30s"}}
    settings = config.settings
    assert (settings.result_ttl, settings.lease_ttl, settings.autoscale) == (600, 20, True)
    assert dict(settings.queue_rate_limits) == {"emails": "100/m"}
    assert settings.failed_ttl == 604800  # not in the file: the default


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path / "taskdeck.toml", "[engine]\nresult_ttl = 600\nfailed_ttl = 700\n")
    env = {"TASKDECK_FAILED_TTL": "800", "TASKDECK_COOLDOWN": "3", "TASKDECK_STORE": "env.db"}
    config = load_config(path, environ=env, flags={"cooldown": "5"})
    s = config.settings
    assert (s.result_ttl, s.failed_ttl, s.cooldown) == (600, 800, 5)  # file < env < flag
    assert config.store == "env.db"  # TASKDECK_STORE over the file's store


def test_the_file_is_found_by_flag_variable_or_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}) == Config()  # no file: nothing but the defaults
    write(tmp_path / "taskdeck.toml", "[engine]\nresult_ttl = 1\n")
    assert load_config(environ={}).file == {"result_ttl": 1.0}
    other = write(tmp_path / "other.toml", "[engine]\nresult_ttl = 2\n")
    assert load_config(environ={"TASKDECK_CONFIG": str(other)}).file == {"result_ttl": 2.0}
    third = write(tmp_path / "third.toml", "[engine]\nresult_ttl = 3\n")
    assert load_config(third, environ={"TASKDECK_CONFIG": str(other)}).file == {"result_ttl": 3}
    with pytest.raises(ConfigError, match=r"missing.toml: cannot read the configuration file"):
        load_config(tmp_path / "missing.toml", environ={})


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        # malformed TOML: the line tomllib names
        ("[engine]\nresult_ttl = 600\nlease_ttl = \n", ":3", "not valid TOML: Invalid value"),
        ("[engine\n", ":1", "not valid TOML: Expected ']'"),
        # an unknown setting, with the nearest name
        (
            "[engine]\n\nlease_tll = 30\n",
            ":3: [engine] lease_tll",
            "unknown setting; did you mean 'lease_ttl'",
        ),
        # a bad value, and a value in the wrong unit
        (
            "[engine]\nmax_workers = 0\n",
            ":2: [engine] max_workers",
            "must be from 1 to 4096 workers; got 0",
        ),
        (
            '[engine]\nresult_ttl = "10 minutes"\n',
            ":2: [engine] result_ttl",
            "must be a number from 0 to 31536000 s; got '10 minutes'",
        ),
        (
            "[engine]\ndurability = 'fast'\n",
            ":2: [engine] durability",
            "must be one of normal, full; got 'fast'",
        ),
        # an unknown table: what is allowed
        (
            "[engine]\nresult_ttl = 5\n\n[metrics]\nport = 9000\n",
            ":4: [metrics]",
            "unknown table; allowed: [engine], [alerts], [http]",
        ),
        # a setting outside [engine]
        ("lease_ttl = 30\n", ":1: lease_ttl", "a setting outside any table: put it under [engine]"),
        ("[engine]\nstore = 5\n", ":2: [engine] store", "must be a store URL or path as text"),
        ("alerts = 3\n", ":1: [alerts]", "must be a table"),
        # values that do not fit together: named where the file gives one
        (
            "[engine]\nlease_ttl = 5\n",
            ":2: [engine] lease_ttl",
            "lease_renew_interval must be shorter than lease_ttl (5 s); got 10 s",
        ),
    ],
)
def test_each_bad_entry_is_named_with_file_line_and_what_is_allowed(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    path = write(tmp_path / "taskdeck.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    [(place, said)] = info.value.errors.items()
    assert place == f"{path}{where}", info.value
    assert message in said, said


def test_every_bad_entry_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path / "taskdeck.toml",
        "[engine]\nlease_tll = 30\nresult_ttl = -1\n\n[alarms]\nx = 1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"TASKDECK_FAILED_TTL": "soon"}, flags={"cooldown": "-1"})
    assert list(info.value.errors) == [
        f"{path}:2: [engine] lease_tll",
        f"{path}:3: [engine] result_ttl",
        f"{path}:5: [alarms]",
        "TASKDECK_FAILED_TTL",
        "--set cooldown",
    ]
    assert "(did you mean 'alerts'?)" in info.value.errors[f"{path}:5: [alarms]"]


def test_an_engine_starts_from_a_config(tmp_path: Path) -> None:
    path = write(tmp_path / "taskdeck.toml", f'[engine]\nstore = "{tmp_path / "x.db"}"\n')
    engine = Engine(config=load_config(path, environ={}), workers=0, result_ttl=60)
    assert engine.store_url == str(tmp_path / "x.db")
    assert engine.settings.result_ttl == 60  # given in code: above the configuration
    with pytest.raises(TypeError, match="give settings= or config=, not both"):
        Engine(tmp_path / "y.db", settings={"result_ttl": 1}, config=Config())


def test_the_command_line_refuses_a_bad_file_and_starts_nothing(tmp_path: Path) -> None:
    write(tmp_path / "taskdeck.toml", "[engine]\nlease_tll = 30\nresult_ttl = 'soon'\n")
    for args in (
        ["run", "--headless", "--no-demo"],
        ["status"],
        ["settings", "set", "result_ttl=5"],
    ):
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.splitlines() == [
            "taskdeck: error: taskdeck.toml:2: [engine] lease_tll: unknown setting; did you "
            "mean 'lease_ttl' or 'alert_lease_ttl'?",
            "taskdeck: error: taskdeck.toml:3: [engine] result_ttl: must be a number from 0 "
            "to 31536000 s; got 'soon'",
            "taskdeck: error: nothing was started or changed: fix the configuration first",
        ], args
        assert not (tmp_path / "taskdeck.db").exists()  # nothing was created


def test_the_command_line_reads_config_and_set(tmp_path: Path) -> None:
    write(tmp_path / "ops.toml", '[engine]\nstore = "sqlite:///ops.db"\nresult_ttl = 600\n')
    payload = '{"image_id": "a", "url": "https://photos.example/a.raw"}'
    done = run("--config", "ops.toml", "enqueue", "images.download", payload, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ops.db").exists() and not (tmp_path / "taskdeck.db").exists()
    listed = run("settings", "--json", "--set", "cooldown=5", cwd=tmp_path,
                 env={"TASKDECK_CONFIG": "ops.toml"})  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)["settings"]}
    assert (rows["result_ttl"]["value"], rows["result_ttl"]["source"]) == (600, "file")
    assert (rows["cooldown"]["value"], rows["cooldown"]["source"]) == (5, "flag")
    bad = run("status", "--config", "ops.toml", "--set", "cooldown", cwd=tmp_path)
    assert bad.returncode == 2
    assert (
        bad.stderr
        == "taskdeck: error: --set takes NAME=VALUE, e.g. --set lease_ttl=30; got 'cooldown'\n"
    )
    empty = run("status", "--config", " ", cwd=tmp_path)
    assert empty.returncode == 2 and "--config is empty" in empty.stderr
    app = run("status", "--app", "x:y", "--set", "cooldown=1", cwd=tmp_path)
    assert app.returncode == 2 and "--set cannot be combined with --app" in app.stderr
