"""Every ``taskdeck`` command: global options before or after it mean the same store,
and no input — however wrong — gets a traceback instead of one line on stderr."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .cli_helpers import COMMAND, cli_env, max_task_id, run

DOWNLOAD = '{"image_id": "a", "url": "https://photos.example/a.raw"}'


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with a store ``s.db`` served by a headless demo engine (a node with
    schedules and workflows), which runs until the module's tests are done."""
    home = tmp_path_factory.mktemp("served")
    proc = subprocess.Popen(
        [*COMMAND, "--store", "s.db", "run", "--headless", "--json", "--workers", "2",
         "--interval", "0.2", "--demo-rate", "1"],
        cwd=home, env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    while True:  # until the demo's first workflow is stored
        line = json.loads(proc.stdout.readline())
        if sum(line["counts"].values()) >= 5:
            break
    # Keep reading its status lines: a full pipe would block the engine's writes to
    # stdout, and with them its heartbeats (the node would look dead to the commands).
    drain = threading.Thread(target=proc.stdout.read, daemon=True)
    drain.start()
    try:
        yield home
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=30)
        drain.join(timeout=5)
        assert proc.returncode == 0 and "Traceback" not in err, err


#: Each command, as (arguments without --store, does it print JSON).
COMMANDS = [
    (["status"], True),
    (["tasks", "--limit", "3"], True),
    (["show", "1"], True),
    (["schedules"], True),
    (["workflow", "1"], True),
    (["nodes"], True),
    (["cancel", "1"], False),
    (["retry", "1"], False),
    (["schedule", "pause", "images.nightly-report"], False),
    (["node", "all", "pause", "reports"], True),
    (["enqueue", "images.download", DOWNLOAD], False),
]


@pytest.mark.parametrize(("args", "has_json"), COMMANDS, ids=[c[0][0] for c in COMMANDS])
def test_global_options_before_or_after_the_command_name_the_same_store(
    served: Path, args: list[str], has_json: bool
) -> None:
    before_ids = max_task_id(served / "s.db")
    first = run("--store", "s.db", "--log-level", "error", *args, cwd=served)
    second = run(*args, "--log-level", "error", "--store", "s.db", cwd=served)
    for done in (first, second):
        assert "Traceback" not in done.stderr
        if args[0] in ("cancel", "retry"):  # the second cancel (retry) finds it done already
            assert done.returncode in (0, 1), done.stderr
        elif args[0] == "node" and done.returncode == 1:
            # sent to the node of s.db, which a loaded machine may keep from answering
            # within the CLI's wait; what it answers is test_cli_nodes' concern
            assert "no answer to pause within" in done.stdout, done.stdout + done.stderr
        else:
            assert done.returncode == 0, done.stderr
    assert not (served / "taskdeck.db").exists()  # never the default store
    if args[0] == "enqueue":  # both went into s.db
        assert before_ids < int(first.stdout) < int(second.stdout)  # the demo adds more
        assert max_task_id(served / "s.db") >= int(second.stdout)
    if has_json:
        as_json = [
            run("--json", "--store", "s.db", *args, cwd=served),
            run(*args, "--store", "s.db", "--json", cwd=served),
        ]
        for done in as_json:
            data = json.loads(done.stdout)
            if args[0] == "node" and done.returncode == 1:
                assert data["no_answer"], data  # sent; the node was too busy to answer
            else:
                assert done.returncode == 0, done.stderr
        if args[0] in ("show", "workflow", "schedules"):
            assert json.loads(as_json[0].stdout) == json.loads(as_json[1].stdout)


def test_the_headless_engine_names_the_store_given_before_or_after(tmp_path: Path) -> None:
    for args in (["--store", "x.db", "run"], ["run", "--store", "y.db"]):
        proc = subprocess.Popen(
            [*COMMAND, *args, "--headless", "--json", "--no-demo"], cwd=tmp_path,
            env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert line["store"].endswith(args[args.index("--store") + 1])
    assert {p.name for p in tmp_path.glob("*.db")} == {"x.db", "y.db"}


# -- bad input, everywhere ---------------------------------------------------------------
def bad_inputs(home: Path) -> list[list[str | bytes]]:
    """Wrong input for every command (the defects issue 13 found, and their siblings)."""
    (home / "text.db").write_text("not a database\n")
    with sqlite3.connect(home / "other.db") as conn:
        conn.execute("PRAGMA user_version = 2")
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    loose = home / "loose.key"
    loose.write_text("x")
    loose.chmod(0o644)
    garbage = home / "garbage.key"
    garbage.write_bytes(b"\xff\xfe\x00")
    garbage.chmod(0o600)
    stores = ["/etc/passwd", "mysql://x", "sqlite://host/x.db", "", "/no/such/dir/x.db", ".",
              "text.db", "other.db", "postgresql://127.0.0.1:5999/test"]  # fmt: skip
    reads = [["status"], ["tasks"], ["show", "1"], ["schedules"], ["workflow", "1"], ["nodes"]]
    cases: list[list[str | bytes]] = []
    for store in stores:
        cases += [[*cmd, "--store", store] for cmd in reads[:2]]
        cases.append(["enqueue", "images.download", DOWNLOAD, "--store", store])
    for option in (
        ["--workers", "-1"], ["--workers", "x"], ["--workers", "99999"], ["--app", "nope:x"],
        ["--app", "os:environ"], ["--app", "json:loads"], ["--app", "nocolon"],
        ["--key-file", "missing.key"], ["--key-file", str(loose)], ["--key-file", "."],
        ["--key-file", str(garbage)], ["--log-level", "loud"], ["--store"],
    ):  # fmt: skip
        cases += [[*option, "status"], ["status", *option]]
    ids = ["0", "-1", "abc", str(2**64), "١٢", "1.5", "", " "]
    for verb in ("show", "cancel", "retry", "workflow"):
        cases += [[verb, i] for i in ids]
    payloads: list[str | bytes] = [
        "{bad", "[1, 2]", '"text"', "null", "{" * 5000, '{"a": ' + "[" * 3000 + "]" * 3000 + "}",
        b'{"image_id": "\xff\xfe", "url": "u"}', '{"image_id": null, "url": null}',
        '{"image_id": 1, "url": 2}', '{"image_id": "a"}', '{"image_id": "a", "url": "u", "x": 1}',
        '{"n": NaN}', '{"n": ' + "9" * 5000 + "}", "{}" + " " * 10,
    ]  # fmt: skip
    cases += [["enqueue", "images.download", p] for p in payloads]
    cases += [
        ["enqueue", "", DOWNLOAD], ["enqueue", "x" * 2000, DOWNLOAD], ["enqueue", "a b", DOWNLOAD],
        ["enqueue", "images.download", DOWNLOAD, "--priority", "-1"],
        ["enqueue", "images.download", DOWNLOAD, "--priority", "1.5"],
        ["enqueue", "images.download", DOWNLOAD, "--queue", ""],
        ["enqueue", "images.download", DOWNLOAD, "--queue", "q" * 500],
        ["enqueue", "images.download", DOWNLOAD, "--queue", "a\nb"],
        ["enqueue", "images.download", DOWNLOAD, "--delay", "1e400"],
        ["enqueue", "images.download", DOWNLOAD, "--delay", "5", "--run-at", "2030-01-01T00:00Z"],
        ["enqueue", "images.download", DOWNLOAD, "--run-at", "2030-01-01T00:00"],
        ["enqueue", "images.download", DOWNLOAD, "--run-at", "99999-01-01T00:00Z"],
        ["enqueue", "images.download", DOWNLOAD, "--unique-key", ""],
        ["enqueue", "images.download", DOWNLOAD, "--unique-key", "a\x01b"],
        ["enqueue", "images.download", DOWNLOAD, "--webhook", "ftp://x/y"],
        ["enqueue", "images.download", DOWNLOAD, "--webhook", "not a url"],
        ["tasks", "--state", "lost"], ["tasks", "--queue", "q" * 500], ["tasks", "--limit", "x"],
        ["tasks", "--offset", "1e30"],
        ["schedule", "stop", "images.report"], ["schedule", "run", ""],
        ["schedule", "pause", "x" * 2000], ["schedules", "extra"],
        ["node", "all", "jump", "1"], ["node", "all", "set-workers", "x"],
        ["node", "all", "set-workers", "1", "2"], ["node", "all", "settings", "noequals"],
        ["node", "all", "settings", "unknown=1"], ["node", "all", "settings", "lease_ttl=abc"],
        ["node", "", "pause", "q"],
        ["run", "--headless", "--interval", "0"], ["run", "--headless", "--demo-rate", "-5"],
        ["run", "--headless", "--interval", "nan"], ["run", "--json"],
        ["console", "--refresh", "0"], ["console"], ["console", "--attach", "--app", "x:y"],
        ["screenshot", "--seconds", "-1"], ["screenshot", "--out", "/etc/passwd/shots"],
        ["frobnicate"], ["--no-such-flag"], ["status", "--no-such-flag"],
    ]  # fmt: skip
    return cases


def test_no_input_gets_a_traceback(tmp_path: Path) -> None:
    store = tmp_path / "taskdeck.db"
    assert run("enqueue", "images.download", DOWNLOAD, cwd=tmp_path).returncode == 0
    before = store.read_bytes()
    cases = bad_inputs(tmp_path)

    def attempt(args: list[str | bytes]) -> tuple[list[str | bytes], int, str]:
        done = subprocess.run(
            [*COMMAND, *args], cwd=tmp_path, env=cli_env(), stdin=subprocess.DEVNULL,
            capture_output=True, timeout=60,
        )  # fmt: skip
        return args, done.returncode, done.stderr.decode("utf-8", "replace")

    workers = max(2, (os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(attempt, cases))
    for args, code, err in results:
        assert "Traceback" not in err, (args, err)
        assert code in (1, 2), (args, code, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[0].startswith("taskdeck: error: "), (args, err)
        assert "--log-level DEBUG" not in err, (args, err)  # an error we did not foresee
    assert max_task_id(store) == 1  # nothing bad was written
    assert store.read_bytes()[:100] == before[:100]
