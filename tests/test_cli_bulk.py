"""``taskdeck bulk``, ``taskdeck ops`` and ``taskdeck edit`` run as a user runs them:
how many tasks match is said first; cancel and purge ask on a terminal and are
refused without one (unless --yes); a progress bar on a terminal; an empty match
says 0 and changes nothing; edit reads the payload from text, a file or stdin."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from console.demo import register_demo
from engine import Engine

from .cli_helpers import Terminal, run


def seed(cwd: Path, count: int, priority: int = 2) -> None:
    """``count`` queued images.resize tasks in cwd's taskdeck.db (no engine runs them)."""

    async def main() -> None:
        engine = Engine(cwd / "taskdeck.db", workers=0)
        register_demo(engine, schedules=False)
        async with engine.client():
            await engine.enqueue_many(
                [
                    ("images.resize", {"image_id": f"i{n}", "bytes": n}, {"priority": priority})
                    for n in range(count)
                ]
            )

    asyncio.run(main())


def priorities(cwd: Path) -> list[int]:
    with sqlite3.connect(cwd / "taskdeck.db") as conn:
        return [r[0] for r in conn.execute("SELECT priority FROM tasks ORDER BY id")]


def states(cwd: Path) -> list[str]:
    with sqlite3.connect(cwd / "taskdeck.db") as conn:
        return [r[0] for r in conn.execute("SELECT state FROM tasks ORDER BY id")]


def ok(cwd: Path, *args: str) -> str:
    done = run(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_bulk_reprioritize_says_how_many_then_does_it_and_ops_lists_it(tmp_path: Path) -> None:
    seed(tmp_path, 12)
    dry = ok(tmp_path, "bulk", "reprioritize", "--queue", "images", "--priority", "high",
             "--dry-run")  # fmt: skip
    assert dry.strip() == (
        "reprioritize → 7 on queue=images: 12 tasks match; 12 would change, 0 skipped"
    )
    assert priorities(tmp_path) == [2] * 12
    out = ok(tmp_path, "bulk", "reprioritize", "--ids", "1", "2", "3", "--priority", "9",
             "--note", "INC-5")  # fmt: skip
    assert out.splitlines()[-1] == "operation 1 done: 3 changed, 0 skipped"
    assert priorities(tmp_path) == [9, 9, 9] + [2] * 9
    listed = json.loads(ok(tmp_path, "ops", "--json"))["operations"]
    assert [(o["id"], o["action"], o["state"], o["changed"], o["note"]) for o in listed] == [
        ("1", "reprioritize", "done", 3, "INC-5")
    ]
    table = ok(tmp_path, "ops")
    assert "reprioritize → 9" in table and "3 ids" in table and "3/3" in table
    entries = json.loads(ok(tmp_path, "audit", "--json", "--action", "bulk_reprioritize"))
    assert [e["note"] for e in entries["entries"]] == ["INC-5", "INC-5"]
    # a step: each task's own priority plus or minus N, within 0–9
    out = ok(tmp_path, "bulk", "reprioritize", "--queue", "images", "--priority", "+1")
    assert out.splitlines()[-1] == "operation 2 done: 9 changed, 3 skipped (3 already priority 9)"
    assert priorities(tmp_path) == [9, 9, 9] + [3] * 9
    ok(tmp_path, "bulk", "reprioritize", "--all", "--priority", "-2")
    assert priorities(tmp_path) == [7, 7, 7] + [1] * 9


def test_an_empty_match_says_0_and_changes_nothing(tmp_path: Path) -> None:
    seed(tmp_path, 3)
    out = ok(tmp_path, "bulk", "cancel", "--handler", "images.upload")
    assert out.strip() == (
        "cancel on handler=images.upload: 0 tasks match; 0 would change, 0 skipped; nothing changed"
    )
    assert states(tmp_path) == ["queued"] * 3
    assert ok(tmp_path, "ops").strip() == "no bulk operations yet"


def test_cancel_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    seed(tmp_path, 4)
    refused = run("bulk", "cancel", "--queue", "images", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "taskdeck: error: bulk cancel would change 4 tasks; add --yes to confirm (there is "
        "no terminal to ask on); nothing was changed"
    )
    assert states(tmp_path) == ["queued"] * 4
    done = json.loads(ok(tmp_path, "bulk", "cancel", "--queue", "images", "--yes", "--json"))
    assert (done["state"], done["changed"]) == ("done", 4)
    assert states(tmp_path) == ["cancelled"] * 4
    purged = json.loads(ok(tmp_path, "bulk", "purge", "--state", "cancelled", "--yes", "--json"))
    assert purged["changed"] == 4 and states(tmp_path) == []


def test_on_a_terminal_it_asks_and_shows_a_progress_bar(tmp_path: Path) -> None:
    seed(tmp_path, 3000)
    term = Terminal(["bulk", "cancel", "--state", "queued"], tmp_path)
    term.until_drawn(b"cancel 3,000 tasks? [y/N]")
    term.send(b"y\r")
    term.until_drawn(b"operation 1 done: 3,000 changed, 0 skipped")
    assert term.wait(30) == 0
    assert b"] 0/3,000" in term.output or b"] 1,000/3,000" in term.output
    assert states(tmp_path) == ["cancelled"] * 3000
    no = Terminal(["bulk", "purge", "--state", "cancelled"], tmp_path)
    no.until_drawn(b"purge 3,000 tasks? [y/N]")
    no.send(b"n\r")
    assert no.wait(30) == 1
    assert b"not confirmed; nothing was changed" in no.output


def test_bad_bulk_input_is_one_line(tmp_path: Path) -> None:
    seed(tmp_path, 1)
    for args, said, code in (
        (("bulk", "reprioritize", "--queue", "images"), "bulk reprioritize needs --priority", 2),
        (("bulk", "cancel", "--priority", "3"), "bulk cancel takes no --priority", 2),
        (("bulk", "cancel", "--ids", "1", "--queue", "q"), "give --ids or a filter", 2),
        (("bulk", "explode"), "invalid choice: 'explode'", 2),
        (
            ("bulk", "move", "--all", "--to-queue", "no way"),
            "queue name 'no way' is not allowed",
            2,
        ),
        (("bulk", "cancel"), "bulk cancel needs the tasks: --ids ID …, a filter", 2),
        (("bulk", "cancel", "--where", "state=queued AND"), "at 17: expected a term after AND", 2),
        (("bulk", "cancel", "--all", "--state", "queued"), "--all means every task", 2),
        (("ops", "abort", "7"), "no bulk operation with id '7'", 1),
        (
            ("bulk", "reprioritize", "--all", "--priority", "+12"),
            "a priority step must be +N or -N with N from 1 to 9",
            2,
        ),
        (("ops", "abort"), "ops abort needs the operation's id", 2),
    ):
        done = run(*args, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (code, ""), (args, done)
        assert said in done.stderr and len(done.stderr.splitlines()) == 1, (args, done.stderr)


def show(cwd: Path, task: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(cwd, "show", task, "--json"))
    return found


def test_edit_from_text_file_and_stdin_and_the_enqueue_errors(tmp_path: Path) -> None:
    seed(tmp_path, 2)
    out = ok(tmp_path, "edit", "1", "--payload", '{"image_id": "x", "bytes": 5}', "--priority", "8")
    assert out.strip() == "task 1 edited: payload, priority (now queued)"
    task = show(tmp_path, "1")
    assert (task["payload"], task["priority"]) == ({"image_id": "x", "bytes": 5}, 8)
    assert any("edited by" in (e["note"] or "") for e in task["timeline"])
    (tmp_path / "p.json").write_text('{"image_id": "f", "bytes": 6}', encoding="utf-8")
    ok(tmp_path, "edit", "1", "--payload", "@p.json")
    assert show(tmp_path, "1")["payload"] == {"image_id": "f", "bytes": 6}
    (tmp_path / "in.json").write_text('{"image_id": "s", "bytes": 7}', encoding="utf-8")
    with open(tmp_path / "in.json", "rb") as stdin:
        piped = run("edit", "2", "--payload", "-", cwd=tmp_path, stdin=stdin.fileno())
    assert piped.returncode == 0, piped.stderr
    assert show(tmp_path, "2")["payload"] == {"image_id": "s", "bytes": 7}
    bad_enqueue = run("enqueue", "images.resize", '{"image_id": 1}', cwd=tmp_path)
    bad_edit = run("edit", "1", "--payload", '{"image_id": 1}', cwd=tmp_path)
    assert bad_edit.returncode == bad_enqueue.returncode == 2
    assert bad_edit.stderr == bad_enqueue.stderr
    nothing = run("edit", "1", cwd=tmp_path)
    assert nothing.returncode == 2 and "edit needs something to change" in nothing.stderr
    retry = run("edit", "1", "--retry", cwd=tmp_path)
    assert retry.returncode == 1
    assert "retry (save and retry) is for failed or cancelled tasks" in retry.stderr
