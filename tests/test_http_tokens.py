"""Tokens for the HTTP endpoint: from ``[http]`` in the configuration file and from the
environment, checked with the file's line; scopes; and the refusals a server gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.http import Scope, Tokens, Verdict, check_bind
from engine import ConfigError, load_config
from tests.cli_helpers import run

READ = "r" * 20
WRITE = "w" * 20


def test_tokens_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "taskdeck.toml"
    path.write_text(f'[engine]\nlease_ttl = 30\n\n[http]\nread_tokens = ["{READ}"]\n')
    env = {"TASKDECK_HTTP_WRITE_TOKENS": f" {WRITE} , {'x' * 16}"}
    tokens = Tokens.load(load_config(path, environ={}), env)
    assert tokens.check(f"Bearer {READ}", Scope.READ) is Verdict.OK
    assert tokens.check(f"Bearer {READ}", Scope.WRITE) is Verdict.FORBIDDEN
    assert tokens.check(f"Bearer {WRITE}", Scope.WRITE) is Verdict.OK
    assert tokens.check(f"bearer {'x' * 16}", Scope.READ) is Verdict.OK  # write reads too
    assert tokens.check(None, Scope.READ) is Verdict.MISSING
    assert tokens.check(f"Basic {READ}", Scope.READ) is Verdict.MISSING
    assert tokens.check(f"Bearer {READ}x", Scope.READ) is Verdict.WRONG
    assert Tokens().check(None, Scope.WRITE) is Verdict.OK  # none configured: no auth


def test_a_bad_token_is_refused_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "taskdeck.toml"
    path.write_text('[http]\nread_tokens = ["short"]\nwrite_token = []\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = str(caught.value)
    assert f"{path}:2: [http] read_tokens: token 1 has 5 characters" in text
    assert f"{path}:3: [http] write_token: unknown key; did you mean 'write_tokens'" in text
    with pytest.raises(ConfigError, match="TASKDECK_HTTP_READ_TOKENS: token 1 holds ' '"):
        Tokens.load(load_config(None, environ={}), {"TASKDECK_HTTP_READ_TOKENS": "a b" * 9})


def test_non_loopback_needs_tokens() -> None:
    with pytest.raises(ValueError, match="without auth"):
        check_bind("0.0.0.0", Tokens())
    check_bind("0.0.0.0", Tokens(read=(READ.encode(),)))
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(host, Tokens())


def test_run_http_flags_are_checked(tmp_path: Path) -> None:
    result = run("run", "--headless", "--http-host", "0.0.0.0", "--store", "x.db", cwd=tmp_path)
    assert result.returncode != 0 and "--http-host needs --http PORT" in result.stderr
    result = run("run", "--headless", "--http", "99999", "--store", "x.db", cwd=tmp_path)
    assert result.returncode != 0 and "--http" in result.stderr
    result = run("run", "--http", "8000", "--store", "x.db", cwd=tmp_path)
    assert result.returncode != 0 and "--http is for run --headless" in result.stderr
    assert not (tmp_path / "x.db").exists()
