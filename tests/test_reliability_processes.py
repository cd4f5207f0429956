"""Reliability across real processes: graceful and hard SIGTERM, zombie fencing,
many processes on one SQLite file, and poison tasks (R4, R5, R7 and the
"concurrent processes" check in the reliability notes).

Every engine here is the product's own headless runner (``python -m console.cli
run --headless --json --app tests.reliability_worker:app``) in its own process;
the handlers in :mod:`tests.reliability_worker` write a ledger line with their
pid when they start and finish. Assertions compare exit codes, stderr, the
status JSON lines, the ledger and the store file read directly with ``sqlite3``
(an Engine would run a rescuer of its own and change what is being observed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.model import TERMINAL_STATES, TaskState, TimelineEntry, parse_timeline

from .reliability_worker import build

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.reliability_worker:app"
HEADLESS = [sys.executable, "-m", "console.cli", "run", "--headless", "--json", "--interval", "0.2"]

#: Short leases so that rescue shows within a test (reliability notes, §5 "tests").
FAST = {
    "lease_ttl": 1.5,
    "lease_renew_interval": 0.3,
    "rescue_interval": 0.2,
    "poll_interval": 0.05,
    "shutdown_grace": 3.0,
}


def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def settings_env(
    db: Path, ledger: Path, workers: int, settings: dict[str, float]
) -> dict[str, str]:
    env = {**os.environ, "RW_DB": str(db), "RW_LEDGER": str(ledger), "RW_WORKERS": str(workers)}
    env.update({f"TASKDECK_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class Node:
    """One headless engine process; collects its status lines and stderr as it runs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*HEADLESS, "--app", APP],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.statuses: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.statuses.append(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def node(self) -> str:
        return str(self.statuses[0]["node"])

    @property
    def stderr(self) -> str:
        return "".join(self.errors)

    def stats(self) -> dict[str, int]:
        return dict(self.statuses[-1]["stats"]) if self.statuses else {}

    def ready(self, timeout: float = 30.0) -> float:
        """Wait for the first status line (the engine has started); returns when."""

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited with {self.proc.returncode}: {self.stderr}")
            return bool(self.statuses)

        until(up, timeout, "the engine to start")
        return time.monotonic()

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.wait()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start headless engines on this test's store; any left are killed at the end."""
    made: list[Node] = []

    def start(workers: int = 8, **settings: float) -> Node:
        node = Node(settings_env(DB(tmp_path), LEDGER(tmp_path), workers, {**FAST, **settings}))
        made.append(node)
        return node

    yield start
    for node in made:
        node.kill()


def DB(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


def LEDGER(tmp_path: Path) -> Path:
    return tmp_path / "ledger.txt"


def enqueue(tmp_path: Path, items: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[int]:
    """Enqueue from this (producer) process with the handlers' real options."""

    async def go() -> list[str]:
        producer = build(DB(tmp_path), LEDGER(tmp_path), workers=0)
        async with producer:
            return await producer.enqueue_many(items)

    return [int(i) for i in asyncio.run(go())]


# -- reading the evidence --------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    kind: str
    handler: str
    n: int
    attempt: int
    pid: int
    at: float


def ledger(tmp_path: Path) -> list[Line]:
    path = LEDGER(tmp_path)
    if not path.exists():
        return []
    out = []
    for text in path.read_text().splitlines():
        kind, handler, n, attempt, pid, at = text.split()
        out.append(Line(kind, handler, int(n), int(attempt), int(pid), float(at)))
    return out


@dataclass(frozen=True)
class Row:
    id: int
    handler: str
    state: str
    attempts: int
    result: Any
    error: str | None
    lease_owner: str | None
    timeline_text: str
    created_at: float

    @property
    def timeline(self) -> list[TimelineEntry]:
        return list(parse_timeline(self.timeline_text, self.created_at))

    @property
    def terminal_entries(self) -> int:
        return sum(1 for e in self.timeline if e.state in TERMINAL_STATES)


def rows(tmp_path: Path) -> dict[int, Row]:
    conn = sqlite3.connect(DB(tmp_path), timeout=10)
    try:
        found = conn.execute(
            "SELECT id, handler, state, attempts, result, error, lease_owner, timeline, "
            "created_at FROM tasks"
        ).fetchall()
    finally:
        conn.close()
    return {
        r[0]: Row(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None, *r[5:]) for r in found
    }


def integrity(tmp_path: Path) -> str:
    conn = sqlite3.connect(DB(tmp_path), timeout=10)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def starts(tmp_path: Path, handler: str) -> list[Line]:
    return [x for x in ledger(tmp_path) if x.kind == "start" and x.handler == handler]


def clean(text: str) -> None:
    assert "Traceback" not in text, text
    assert "locked" not in text.lower(), text


# -- 1. graceful stop (R4) -------------------------------------------------------------


def test_sigterm_lets_running_tasks_finish_within_grace_and_requeues_the_rest(
    tmp_path: Path, spawn: Callable[..., Node]
) -> None:
    grace = FAST["shutdown_grace"]
    short = [("nap", {"n": n, "seconds": 2.0}, {"priority": 9}) for n in range(4)]
    long = [("nap", {"n": n, "seconds": 60.0}, {"priority": 8}) for n in range(4, 8)]
    waiting = [("nap", {"n": n, "seconds": 2.0}, {"priority": 1}) for n in range(8, 40)]
    ids = enqueue(tmp_path, short + long + waiting)

    # Given 8 workers busy: four tasks that can finish within the grace, four that cannot
    node = spawn(workers=8)
    node.ready()
    until(lambda: len(starts(tmp_path, "nap")) == 8, 30, "8 tasks running")

    # When it gets SIGTERM
    signalled = time.monotonic()
    node.send(signal.SIGTERM)
    code = node.wait(timeout=30)
    took = time.monotonic() - signalled

    # Then it exits 0 within the grace + 1 s, saying what it did
    assert code == 0, node.stderr
    assert took < grace + 1.0, f"exit took {took:.2f} s"
    assert "SIGTERM: stopping gracefully" in node.stderr
    assert "stopped; 4 running tasks were returned to the queue" in node.stderr
    clean(node.stderr)

    # … it claimed nothing after the signal although slots came free during the grace
    started = starts(tmp_path, "nap")
    assert sorted(x.n for x in started) == list(range(8))
    done = sorted(x.n for x in ledger(tmp_path) if x.kind == "done")
    assert done == [0, 1, 2, 3]

    # … the ones that fit in the grace succeeded, the others are queued again with no
    # attempt used and an "interrupted" entry, and the waiting ones were not touched
    table = rows(tmp_path)
    assert not [r for r in table.values() if r.state == "running"]
    for task_id in ids[:4]:
        assert (table[task_id].state, table[task_id].attempts) == ("succeeded", 1)
    for task_id in ids[4:8]:
        row = table[task_id]
        assert (row.state, row.attempts, row.lease_owner) == ("queued", 0, None)
        last = row.timeline[-1]
        assert last.state == TaskState.QUEUED and last.attempt == 0
        assert last.note is not None and "interrupted by shutdown" in last.note
        assert [e.state for e in row.timeline] == ["queued", "running", "queued"]
    for task_id in ids[8:]:
        row = table[task_id]
        assert (row.state, row.attempts, row.timeline_text) == ("queued", 0, "")
    assert integrity(tmp_path) == "ok"


def test_second_sigterm_stops_at_once_and_the_next_start_recovers_within_the_lease(
    tmp_path: Path, spawn: Callable[..., Node]
) -> None:
    ttl, rescue = FAST["lease_ttl"], FAST["rescue_interval"]
    ids = enqueue(tmp_path, [("nap", {"n": n, "seconds": 1.5}, {}) for n in range(8)])
    first = spawn(workers=8)
    first.ready()
    until(lambda: len(starts(tmp_path, "nap")) == 8, 30, "8 tasks running")

    # When SIGTERM comes twice, 0.1 s apart
    first.send(signal.SIGTERM)
    time.sleep(0.1)
    signalled = time.monotonic()
    first.send(signal.SIGTERM)
    code = first.wait(timeout=30)
    took = time.monotonic() - signalled

    # Then it stops at once and leaves its tasks running under its (expiring) lease
    assert code == 130, first.stderr
    assert took < 1.0, f"exit took {took:.2f} s"
    assert "stopping now; running tasks will be recovered" in first.stderr
    clean(first.stderr)
    left = rows(tmp_path)
    assert {r.state for r in left.values()} == {"running"}
    assert {r.lease_owner for r in left.values()} == {first.node}
    assert integrity(tmp_path) == "ok"

    # And the next start on the same file takes them back within the lease time
    second = spawn(workers=8)
    up = second.ready()
    until(
        lambda: not any(r.lease_owner == first.node for r in rows(tmp_path).values()),
        ttl + rescue + 5,
        "the dead engine's tasks to be rescued",
    )
    recovered = time.monotonic() - up
    assert recovered <= ttl + rescue + 1.0, f"recovery took {recovered:.2f} s"
    until(
        lambda: all(r.state == "succeeded" for r in rows(tmp_path).values()),
        30,
        "the recovered tasks to finish",
    )
    table = rows(tmp_path)
    for task_id in ids:
        row = table[task_id]
        assert row.attempts == 2  # at-least-once: the lost attempt counts
        assert row.result["pid"] == second.pid
        notes = [e.note or "" for e in row.timeline]
        assert any(f"rescued from {first.node}: worker lost during attempt 1/6" in n for n in notes)
        assert row.terminal_entries == 1
    until(lambda: second.stats().get("rescued") == 8, 10, "rescued == 8 in the stats")
    second.send(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    clean(second.stderr)
    assert integrity(tmp_path) == "ok"


# -- 2. zombie fencing (R5) ------------------------------------------------------------


def test_a_resumed_zombie_cannot_overwrite_the_result_and_is_counted(
    tmp_path: Path, spawn: Callable[..., Node]
) -> None:
    settings = {"lease_ttl": 2.0}
    a, b = spawn(workers=2, **settings), spawn(workers=2, **settings)
    a.ready()
    b.ready()
    by_pid = {a.pid: a, b.pid: b}
    (task_id,) = enqueue(tmp_path, [("hog", {"n": 0, "seconds": 1.5}, {})])

    # Given the engine running the task is frozen (SIGSTOP) in the middle of it
    until(lambda: starts(tmp_path, "hog"), 30, "the task to start")
    (first,) = starts(tmp_path, "hog")
    zombie = by_pid[first.pid]
    live = b if zombie is a else a
    zombie.send(signal.SIGSTOP)
    assert not [x for x in ledger(tmp_path) if x.kind == "done"], "SIGSTOP came too late"

    # When the other engine rescues the task after the lease expired and completes it
    until(
        lambda: rows(tmp_path)[task_id].state == "succeeded",
        30,
        "the live engine to rescue and complete the task",
    )
    stored = rows(tmp_path)[task_id]
    assert stored.result == {"n": 0, "pid": live.pid, "attempt": 2}

    # And the zombie wakes up and finishes its (stale) attempt
    zombie.send(signal.SIGCONT)
    until(
        lambda: any(x.kind == "done" and x.pid == zombie.pid for x in ledger(tmp_path)),
        10,
        "the zombie to finish its attempt",
    )
    until(
        lambda: zombie.stats().get("stale_completions") == 1,
        10,
        "the zombie to count its stale completion",
    )

    # Then its late completion changed nothing, and it was counted
    after = rows(tmp_path)[task_id]
    assert after.result == {"n": 0, "pid": live.pid, "attempt": 2}
    assert (after.state, after.attempts) == ("succeeded", 2)
    assert after.terminal_entries == 1
    assert [(e.state.value, e.attempt) for e in after.timeline] == [
        ("queued", 0),
        ("running", 1),
        ("queued", 1),  # rescued: "worker lost during attempt 1/4"
        ("running", 2),
        ("succeeded", 2),
    ]
    assert live.stats()["stale_completions"] == 0
    assert live.stats()["rescued"] == 1
    assert [x.pid for x in ledger(tmp_path) if x.kind == "done"].count(zombie.pid) == 1
    for node in (a, b):
        node.send(signal.SIGTERM)
    for node in (a, b):
        assert node.wait(timeout=30) == 0, node.stderr
        assert "Traceback" not in node.stderr
    assert "dropped a late completion of task" in zombie.stderr
    assert integrity(tmp_path) == "ok"


# -- 3. many processes on one file -----------------------------------------------------


@dataclass
class CliCall:
    args: tuple[str, ...]
    code: int
    out: str
    err: str


def test_engines_and_cli_commands_hammering_one_file_lose_nothing(
    tmp_path: Path, spawn: Callable[..., Node]
) -> None:
    # Enough work to keep both engines busy for the whole run
    preload = enqueue(
        tmp_path, [("nap", {"n": n, "seconds": 0.2 + (n % 5) * 0.1}, {}) for n in range(150)]
    )
    # … and two that run long, to be cancelled while another process runs them
    endless = enqueue(
        tmp_path, [("nap", {"n": n, "seconds": 60}, {"priority": 9}) for n in (-1, -2)]
    )
    engines = [spawn(workers=3, lease_ttl=2.0), spawn(workers=3, lease_ttl=2.0)]
    for node in engines:
        node.ready()
    env = settings_env(DB(tmp_path), LEDGER(tmp_path), 0, FAST)
    calls: list[CliCall] = []
    enqueued: list[int] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 10.0

    def cli(*args: str) -> CliCall:
        done = subprocess.run(
            [sys.executable, "-m", "console.cli", *args, "--app", APP],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
        )
        call = CliCall(args, done.returncode, done.stdout, done.stderr)
        with lock:
            calls.append(call)
        return call

    def producer() -> None:
        i = 0
        while time.monotonic() < stop_at:
            # high priority ones start at once and run long enough to be cancelled running
            options = ["--delay", "3"] if i % 3 == 2 else ["--priority", "high"]
            call = cli("enqueue", "nap", json.dumps({"n": 1000 + i, "seconds": 1.0}), *options)
            if call.code == 0:
                with lock:
                    enqueued.append(int(call.out.strip()))
            i += 1

    def canceller() -> None:
        until(
            lambda: {x.n for x in starts(tmp_path, "nap")} >= {-1, -2}, 30, "the long tasks to run"
        )
        cli("cancel", *map(str, endless))
        rng = random.Random(7)
        while time.monotonic() < stop_at:
            with lock:
                recent = enqueued[-4:]
            picks = {*rng.sample(recent, min(2, len(recent))), rng.choice(preload[50:])}
            cli("cancel", *map(str, picks))

    def watcher() -> None:
        while time.monotonic() < stop_at:
            cli("status", "--json")

    threads = [threading.Thread(target=f) for f in (producer, canceller, watcher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)

    # No user ever saw a lock error or a traceback, and every command did its job
    assert {c.args[0] for c in calls} == {"enqueue", "cancel", "status"}
    cancelled: dict[int, str] = {}
    for call in calls:
        clean(call.err)
        if call.args[0] == "cancel":
            refused = call.err.splitlines()
            for line in call.out.splitlines():
                task_id, _, was = line.partition(": cancelled (was ")
                cancelled[int(task_id)] = was.rstrip(")")
            assert all("nothing to cancel" in line for line in refused), call
            assert len(call.out.splitlines()) + len(refused) == len(call.args) - 1, call
            assert call.code == (1 if refused else 0), call
        else:
            assert call.code == 0, call
        if call.args[0] == "status":
            assert "queues" in json.loads(call.out)
    assert len([c for c in calls if c.args[0] == "enqueue"]) == len(enqueued)
    assert [cancelled.get(i) for i in endless] == ["running", "running"]

    for node in engines:
        node.send(signal.SIGTERM)
    for node in engines:
        assert node.wait(timeout=30) == 0, node.stderr
        clean(node.stderr)

    # Nothing was lost: every printed id exists, every cancel stuck, nothing is running
    table = rows(tmp_path)
    assert len(table) == len(preload) + len(endless) + len(enqueued)
    assert set(enqueued) <= set(table)
    states = {r.state for r in table.values()}
    assert states <= {"queued", "scheduled", "succeeded", "cancelled"}, states
    for cancelled_id, was in cancelled.items():
        assert table[cancelled_id].state == "cancelled", (cancelled_id, was)
    for row in table.values():
        assert row.terminal_entries <= 1
    assert sum(r.state == "succeeded" for r in table.values()) > 0
    assert integrity(tmp_path) == "ok"


# -- 4. poison tasks (R7) ---------------------------------------------------------------


def test_a_task_that_kills_its_process_fails_after_its_attempts_and_others_go_on(
    tmp_path: Path, spawn: Callable[..., Node]
) -> None:
    ttl = 1.0
    (poison,) = enqueue(tmp_path, [("poison", {"n": 0}, {"priority": 9})])
    others = enqueue(tmp_path, [("nap", {"n": n, "seconds": 0.1}, {}) for n in range(40)])

    def settled() -> bool:
        table = rows(tmp_path)
        return table[poison].state == "failed" and all(
            table[i].state == "succeeded" for i in others
        )

    # Given a supervisor that restarts the engine whenever it dies
    deaths: list[int] = []
    deadline = time.monotonic() + 45
    while True:
        assert time.monotonic() < deadline, f"still not settled after {len(deaths)} deaths"
        node = spawn(workers=2, lease_ttl=ttl, lease_renew_interval=0.3)
        proc = node.proc
        until(lambda: proc.poll() is not None or settled(), 30, "a death or the end")  # noqa: B023
        if proc.poll() is None:
            break
        deaths.append(node.wait())
        assert len(deaths) <= 3, "the poison task killed the engine more than 3 times"

    # Then it died exactly once per attempt, the last rescue failed the task …
    assert deaths == [77, 77, 77]
    row = rows(tmp_path)[poison]
    assert (row.state, row.attempts) == ("failed", 3)
    assert row.error is not None and "worker lost during attempt 3/3" in row.error
    assert row.terminal_entries == 1
    assert [(x.attempt) for x in starts(tmp_path, "poison")] == [1, 2, 3]
    # … and the other tasks were worked on while it ran (each crashed engine finished
    # some), and all of them succeeded in the end
    for dead in {x.pid for x in starts(tmp_path, "poison")}:
        assert any(x.kind == "done" and x.pid == dead for x in ledger(tmp_path)), dead
    assert all(rows(tmp_path)[i].attempts <= 1 + len(deaths) for i in others)
    until(lambda: node.stats().get("rescued", 0) >= 1, 10, "the last start to count its rescue")
    node.send(signal.SIGTERM)
    assert node.wait(timeout=30) == 0
    clean(node.stderr)
    assert integrity(tmp_path) == "ok"


def test_a_thread_that_never_returns_times_out_leaks_and_keeps_capacity(
    tmp_path: Path, spawn: Callable[..., Node]
) -> None:
    (stuck,) = enqueue(tmp_path, [("stuck", {"n": 0}, {})])
    node = spawn(workers=2)
    node.ready()

    # When a thread handler blocks forever under timeout=0.5
    until(lambda: rows(tmp_path)[stuck].state == "failed", 30, "the stuck task to time out")
    row = rows(tmp_path)[stuck]
    assert row.attempts == 1 and row.error is not None
    assert "HardTimeout: attempt 1 exceeded the hard timeout of 0.5 s" in row.error
    assert "TimeoutError" in row.error  # HardTimeout is a TimeoutError, raised from one
    until(lambda: node.stats().get("leaked_threads") == 1, 10, "leaked_threads == 1")

    # Then both workers still run tasks side by side while the thread stays leaked
    naps = enqueue(tmp_path, [("nap_thread", {"n": n, "seconds": 1.0}, {}) for n in range(2)])
    until(
        lambda: any(s["busy"] == 2 for s in node.statuses),
        15,
        "both workers busy at once",
    )
    until(
        lambda: all(rows(tmp_path)[i].state == "succeeded" for i in naps), 15, "the naps to finish"
    )
    lines = [x for x in ledger(tmp_path) if x.handler == "nap_thread"]
    first_done = min(x.at for x in lines if x.kind == "done")
    assert sorted(x.n for x in lines if x.kind == "start" and x.at < first_done) == [0, 1]
    assert node.stats()["leaked_threads"] == 1
    assert node.stats()["leaked_threads_total"] == 1
    assert node.statuses[-1]["workers"] == 2

    # And the leaked thread does not hold up a graceful stop
    signalled = time.monotonic()
    node.send(signal.SIGTERM)
    assert node.wait(timeout=30) == 0
    assert time.monotonic() - signalled < FAST["shutdown_grace"] + 1.0
    clean(node.stderr)


_OPEN_FRESH = """
import asyncio, sys
from engine import Engine

async def main() -> None:
    async with Engine(sys.argv[1], workers=1):
        pass

asyncio.run(main())
"""


def test_processes_creating_one_new_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Several engines started together on a file that does not exist yet: one creates
    and migrates it, the others wait and open it (none mistakes the half-made file for
    another program's, none fails on the switch to WAL)."""
    for round_ in range(6):
        store = tmp_path / f"fresh-{round_}.db"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_FRESH, str(store)],
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        conn = sqlite3.connect(store)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
