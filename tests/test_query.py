"""The task query language (issue 17, item 1): one grammar for ``engine.tasks(where=...)``,
``taskdeck tasks --where`` and the console's ``/``; errors that say where and what."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, QueryError, TaskRecord, TaskState
from engine.query import AllOf, AnyOf, Compare, Not, Word, parse
from engine.store.base import TaskFilter
from engine.store.sqlite.driver import SQLiteStore
from engine.store.sqlite.scan import ScanReader

from .cli_helpers import run
from .conftest import BOTH_BACKENDS, FAST, until

NOW = 1_800_000_000.0


# -- reading a query -------------------------------------------------------------------
def test_the_grammar_builds_the_tree_with_and_or_not_and_parentheses() -> None:
    q = parse("state=failed AND (handler~img OR NOT queue=mail) heic", NOW)
    assert q.root == AllOf(
        (
            Compare("state", "=", "failed"),
            AnyOf((Compare("handler", "~", "img"), Not(Compare("queue", "=", "mail")))),
            Word("heic"),
        )
    )
    # keywords in any case; OR binds looser than AND; quotes keep spaces and operators
    assert parse("a or b and c", NOW).root == AnyOf((Word("a"), AllOf((Word("b"), Word("c")))))
    assert parse('error~"x = \\"y\\" (z)"', NOW).root == Compare("error", "~", 'x = "y" (z)')
    assert parse("   ", NOW).root is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("id=12", 12),
        ("id>=3", 3),
        ("priority=high", 7),
        ("priority<5", 5),
        ("attempts!=0", 0),
        ("state=FAILED", "failed"),
        ("handler=images.resize", "images.resize"),
        ("worker~node-1/", "node-1/"),
        ("node=node-1", "node-1"),
        ("created>-1h", NOW - 3600),
        ("started>=-30m", NOW - 1800),
        ("finished<-2d", NOW - 2 * 86400),
        ("created<+10s", NOW + 10),
        ("created>2027-01-15T08:00:00Z", 1_800_000_000.0),
        ("created>2027-01-15T09:00:00+01:00", 1_800_000_000.0),
        ("created>2027-01-15T08:00", 1_800_000_000.0),  # no offset: UTC
        ("payload.user_id=42", 42),
        ("payload.ratio<0.5", 0.5),
        ("payload.ok=true", True),
        ('payload.user_id="42"', "42"),
        ("result.items.0.name~a", "a"),
    ],
)
def test_every_field_reads_its_value(text: str, value: Any) -> None:
    [term] = [parse(text, NOW).root]
    assert isinstance(term, Compare)
    assert term.value == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("state=", "at 7: expected a value after '='"),
        ("handler=x AND state=", "at 21: expected a value after '='"),
        ("state=failed AND", "at 17: expected a term after AND"),
        ("NOT", "at 4: expected a term after NOT"),
        ("OR x", "at 1: expected a term here"),
        ("(state=failed", "at 14: expected ')' to close the '(' at 1"),
        ("state=failed)", "at 13: unexpected ')': no '(' is open"),
        ("()", "at 2: expected a term inside '(' ')'"),
        ("=3", "at 1: expected a field name before '='"),
        ('error~"HEIC', "at 7: this quote is not closed"),
        ("a ! b", "at 3: unexpected '!'"),
        ("colour=red", "at 1: unknown field 'colour'; fields are: id, handler, queue, state,"),
        ("state=done", "at 7: unknown state 'done'; states are: queued, scheduled, running"),
        ("priority=urgent", "at 10: priority takes a whole number or low, normal, high"),
        ("attempts>x", "at 10: attempts takes a whole number; got 'x'"),
        ("created>yesterday", "at 9: created takes an ISO 8601 time"),
        ("created~-1h", "at 9: created takes < <= > >= = !=, not '~'"),
        ("error<3", "at 7: error takes = != ~, not '<'"),
        ("state>queued", "at 7: state takes = !=, not '>'"),
        ("handler.x=1", "at 1: only payload and result take a path; handler has none"),
        ("payload.a..b=1", "at 1: 'payload.a..b': a path is keys"),
        ('"state"=failed', "at 1: a field name is not quoted"),
    ],
)
def test_a_malformed_query_says_where_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text, NOW)
    assert str(caught.value).startswith(message), str(caught.value)
    assert caught.value.position == int(message.split(":")[0].removeprefix("at "))


def test_an_encrypted_store_refuses_sealed_fields_and_words_skip_the_error() -> None:
    for field in ("payload~x", "result.a=1", 'error~"HEIC"'):
        with pytest.raises(QueryError, match="is encrypted in this store, so it cannot be"):
            parse(field, NOW, encrypted=True)
    assert parse("heic", NOW, encrypted=True).root == Word("heic", errors=False)
    assert not parse("heic", NOW, encrypted=True).searches_text
    assert parse("heic", NOW).searches_text


def test_the_old_filter_words_still_work() -> None:
    assert parse("handler:mail.send queue:emails id:12", NOW).root == AllOf(
        (
            Compare("handler", "=", "mail.send"),
            Compare("queue", "=", "emails"),
            Compare("id", "prefix", "12"),
        )
    )


def test_state_queue_and_handler_at_the_top_pick_the_list() -> None:
    pins, rest = parse("handler=a state=queued priority>5", NOW).pinned()
    assert pins == {"handler": "a", "state": "queued"}
    assert rest.root == Compare("priority", ">", 5)
    pins, rest = parse("state=queued OR state=failed", NOW).pinned()
    assert pins == {} and isinstance(rest.root, AnyOf)


# -- running it on both stores ---------------------------------------------------------
def query_engine(store: str | Path, **options: Any) -> Engine:
    engine = Engine(store, workers=2, name="node-q", **{**FAST, **options})

    @engine.task(name="images.resize", queue="images", retries=0)
    async def resize(user_id: int, name: str, tags: list[str] | None = None) -> dict[str, Any]:
        if "heic" in name.lower():
            raise ValueError(f"HEIC is not supported: {name}")
        return {"score": user_id / 100, "size": [640, 480]}

    @engine.task(name="mail.send", queue="emails")
    async def send(to: str) -> str:
        return f"sent to {to}"

    @engine.task(name="reports.build", queue="reports")
    async def build(day: str) -> None:
        return None

    return engine


async def fill(engine: Engine) -> list[TaskRecord]:
    """Succeeded, failed, queued (a paused queue), scheduled and cancelled tasks."""
    ran = [
        await engine.enqueue("images.resize", {"user_id": 42, "name": "cat.png", "tags": ["a"]}),
        await engine.enqueue("images.resize", {"user_id": 7, "name": "dog.heic"}),
        await engine.enqueue("images.resize", {"user_id": 99, "name": "café.HEIC"}),
        await engine.enqueue("mail.send", {"to": "ada@example.com"}, priority=9),
    ]
    for tid in ran:
        await engine.wait(tid, timeout=10)
    await engine.pause("reports")
    for day, priority in (("mon", 2), ("tue", 5), ("wed", 8)):
        await engine.enqueue("reports.build", {"day": day}, priority=priority)
    await engine.enqueue("mail.send", {"to": "bob@example.com"}, delay=3600)
    gone = await engine.enqueue("reports.build", {"day": "thu"})
    await engine.cancel(gone)
    page = await engine.tasks(limit=1000)
    assert len(page) == 9
    return list(page)


def _has(text: str | None, part: str) -> bool:
    return text is not None and part.lower() in text.lower()


def cases(now: float) -> list[tuple[str, Callable[[TaskRecord], bool]]]:
    hour = now - 3600
    return [
        ("id=3", lambda t: int(t.id) == 3),
        ("id!=3", lambda t: int(t.id) != 3),
        ("id<3", lambda t: int(t.id) < 3),
        ("id<=3", lambda t: int(t.id) <= 3),
        ("id>6", lambda t: int(t.id) > 6),
        ("id>=6", lambda t: int(t.id) >= 6),
        ("id~1", lambda t: "1" in t.id),
        ("handler=images.resize", lambda t: t.handler == "images.resize"),
        ("handler!=images.resize", lambda t: t.handler != "images.resize"),
        ("handler~MAIL", lambda t: "mail" in t.handler),
        ("handler>m", lambda t: t.handler > "m"),
        ("queue=reports", lambda t: t.queue == "reports"),
        ("state=failed", lambda t: t.state == TaskState.FAILED),
        ("state!=succeeded", lambda t: t.state != TaskState.SUCCEEDED),
        ("priority>=high", lambda t: t.priority >= 7),
        ("priority<5", lambda t: t.priority < 5),
        ("attempts=1", lambda t: t.attempts == 1),
        ("attempts>0", lambda t: t.attempts > 0),
        ("worker~node-q/", lambda t: _has(t.worker, "node-q/")),
        ("node=node-q", lambda t: (t.worker or "").split("/")[0] == "node-q"),
        ("node!=node-q", lambda t: (t.worker or "").split("/")[0] != "node-q"),
        ("created>-1h", lambda t: t.created_at > hour),
        ("created<-1h", lambda t: False),
        ("started>-1h", lambda t: t.started_at is not None),
        ("finished>=-1h", lambda t: t.finished_at is not None),
        ('error~"heic"', lambda t: _has(t.error, "heic")),
        ("error!=x", lambda t: True),
        ("payload~bob", lambda t: "bob" in str(t.payload)),
        ("payload~café", lambda t: "café" in str(t.payload)),
        ("payload.user_id=42", lambda t: t.payload.get("user_id") == 42),
        ("payload.user_id!=42", lambda t: t.payload.get("user_id") != 42),
        ("payload.user_id>10", lambda t: t.payload.get("user_id", 0) > 10),
        ("payload.user_id<=7", lambda t: 0 < t.payload.get("user_id", 0) <= 7),
        ("payload.name~HEIC", lambda t: "heic" in t.payload.get("name", "").lower()),
        ("payload.tags.0=a", lambda t: t.payload.get("tags") == ["a"]),
        ('payload.day="tue"', lambda t: t.payload.get("day") == "tue"),
        ("result.score>=0.4", lambda t: isinstance(t.result, dict) and t.result["score"] >= 0.4),
        ("result.size.1=480", lambda t: isinstance(t.result, dict)),
        ("result~ada", lambda t: "ada" in str(t.result)),
        ("heic", lambda t: _has(t.error, "heic")),
        ("resize", lambda t: t.handler == "images.resize"),
        ("NOT state=queued", lambda t: t.state != TaskState.QUEUED),
        (
            "(handler=mail.send OR queue=reports) AND NOT priority<5",
            lambda t: (t.handler == "mail.send" or t.queue == "reports") and t.priority >= 5,
        ),
        ("state=queued queue=reports priority>2", lambda t: t.state == "queued" and t.priority > 2),
        ("handler:reports.build", lambda t: t.handler == "reports.build"),
    ]


@BOTH_BACKENDS
async def test_every_field_and_operator_finds_exactly_its_tasks(store: str | Path) -> None:
    engine = query_engine(store)
    async with engine:
        tasks = await fill(engine)
        for text, wanted in cases(time.time()):
            page = await engine.tasks(limit=1000, where=text)
            expected = [t.id for t in tasks if wanted(t)]
            assert sorted(t.id for t in page) == sorted(expected), text
        # with the list's own filters: the Failed tab with a word typed into /
        page = await engine.tasks(state="failed", where="heic")
        assert sorted(t.id for t in page) == ["2", "3"]
        assert await engine.tasks(state="failed", where="state=queued") == []
        # queued tasks in claim order, whatever the query adds
        page = await engine.tasks(where="state=queued priority>0")
        assert [t.payload["day"] for t in page] == ["wed", "tue", "mon"]
        page = await engine.tasks(where="handler=reports.build state=queued")  # its index
        assert [t.payload["day"] for t in page] == ["wed", "tue", "mon"]
        around = await engine.tasks_around(
            page[1].id, "queued", None, 10, 1, handler="reports.build"
        )
        assert around is not None and [t.id for t in around] == [t.id for t in page]
        # the total where the counts know it; None where only a scan could tell
        assert (await engine.tasks(where="state=queued queue=reports")).total == 3
        assert (await engine.tasks(where="state=queued priority>2")).total is None
        # a malformed query never reaches the store
        with pytest.raises(QueryError, match="at 10: expected a value"):
            await engine.tasks(where="priority>")


async def test_an_encrypted_store_refuses_text_search_and_still_matches_names(
    db_path: Path,
) -> None:
    engine = query_engine(db_path, encryption_key="k" * 43 + "=")
    async with engine:
        await fill(engine)
        with pytest.raises(QueryError, match="payload is encrypted in this store"):
            await engine.tasks(where="payload.user_id=42")
        assert len(await engine.tasks(where="resize")) == 3
        assert len(await engine.tasks(where="heic")) == 0  # errors are sealed: not read


async def test_a_text_search_past_its_time_limit_is_stopped_with_a_clear_error(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = query_engine(db_path)
    async with engine:
        await fill(engine)
        monkeypatch.setattr("engine.reads.SEARCH_SECONDS", 0.0)
        with pytest.raises(QueryError, match="the search was stopped after 0 s"):
            await engine.tasks(where="payload~ada")
        assert len(await engine.tasks(where="priority>0")) == 9  # no text: no limit


async def test_cancelling_a_scan_stops_the_sqlite_statement(db_path: Path) -> None:
    engine = query_engine(db_path)
    async with engine:
        pass  # makes the store
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    )
    scan = ScanReader(db_path)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(scan(endless), 0.3)
    cancelled = time.monotonic()
    # the thread's statement is interrupted at once, not left running
    await until(lambda: scan.running == 0, 5, "the scan statement stopped")
    assert time.monotonic() - cancelled < 0.5
    assert await scan("SELECT count(*) FROM tasks") == [(0,)]


async def test_metadata_queries_use_the_indexes(db_path: Path) -> None:
    engine = query_engine(db_path)
    async with engine:
        pass
    conn = sqlite3.connect(db_path)
    lister = SQLiteStore(db_path)
    lister._by_queue = {q: {TaskState.QUEUED: 1000} for q in ("mail", "images")}
    for flt, index in [
        (TaskFilter(TaskState.QUEUED, handler="h"), "handler_ready"),
        (
            TaskFilter(TaskState.QUEUED, handler="h", where=parse("priority>5", NOW).root),
            "handler_ready",
        ),
        (TaskFilter(TaskState.QUEUED, where=parse("priority>5", NOW).root), "ready"),
        (TaskFilter(TaskState.QUEUED, "mail", where=parse("created>-1h", NOW).root), "ready"),
        (TaskFilter(TaskState.FAILED, where=parse('error~"HEIC"', NOW).root), "finished"),
        (TaskFilter(TaskState.SCHEDULED, where=parse("payload.a=1", NOW).root), "due"),
    ]:
        query = lister._list_query(flt)
        steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query.sql, query.params)]
        assert any(f"tasks_{index}" in step for step in steps), (flt, steps)
        assert "SCAN tasks" not in steps, (flt, steps)


# -- the command line ------------------------------------------------------------------
def test_tasks_where_on_the_command_line(tmp_path: Path) -> None:
    store = str(tmp_path / "cli.db")
    ids = []
    for image in ("a", "b"):
        payload = f'{{"image_id": "{image}", "bytes": 10}}'
        made = run("enqueue", "images.resize", payload, "--store", store, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        ids.append(made.stdout.strip())
    where = "payload.image_id=b AND state=queued"
    got = run("tasks", "--where", where, "--json", "--store", store, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert [row["id"] for row in json.loads(got.stdout)["tasks"]] == [ids[1]]
    bad = run("tasks", "--where", "state=queued AND prio>1", "--store", store, cwd=tmp_path)
    assert bad.returncode == 2
    assert "at 18: unknown field 'prio'; fields are: id, handler" in bad.stderr
    assert "Traceback" not in bad.stderr
