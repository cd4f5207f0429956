"""``taskdeck --version``, payloads from a file or standard input, and shell completion
(run the way a shell runs it: the command with argcomplete's variables set)."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from .cli_helpers import COMMAND, cli_env, run

DOWNLOAD = {"image_id": "a", "url": "https://photos.example/a.raw"}


def ok(cwd: Path, *args: str, stdin: int | None = subprocess.DEVNULL) -> str:
    done = run(*args, cwd=cwd, stdin=stdin)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def test_version_prints_the_package_version() -> None:
    done = run("--version", cwd=Path.cwd())
    assert done.returncode == 0
    assert done.stdout == f"taskdeck {metadata.version('taskdeck')}\n"


def test_enqueue_takes_its_payload_from_a_file_or_standard_input(tmp_path: Path) -> None:
    # A payload far longer than a command line may be (ARG_MAX is 2 MB, one argument 128 kB)
    big = {**DOWNLOAD, "url": "https://photos.example/" + "x" * 300_000}
    (tmp_path / "big.json").write_text(json.dumps(big), encoding="utf-8")
    from_file = ok(tmp_path, "enqueue", "images.download", "--payload", "@big.json").strip()
    (tmp_path / "in.json").write_text(json.dumps(DOWNLOAD), encoding="utf-8")
    with open(tmp_path / "in.json", "rb") as stdin:
        from_stdin = ok(
            tmp_path, "enqueue", "images.download", "--payload", "-", stdin=stdin.fileno()
        )
    as_argument = ok(tmp_path, "enqueue", "images.download", json.dumps(DOWNLOAD)).strip()
    payloads = [json.loads(ok(tmp_path, "show", task_id.strip(), "--json"))["payload"]
                for task_id in (from_file, from_stdin, as_argument)]  # fmt: skip
    assert payloads == [big, DOWNLOAD, DOWNLOAD]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["images.download", json.dumps(DOWNLOAD), "--payload", "@in.json"],
            "taskdeck: error: give the payload once: as the JSON argument or with --payload "
            "(JSON, @FILE or -), not both\n",
        ),
        (
            ["images.download", "--payload", "@missing.json"],
            "taskdeck: error: --payload @missing.json: cannot read missing.json: "
            "No such file or directory\n",
        ),
        (
            ["images.download", "--payload", "@in.json"],
            "taskdeck: error: --payload @in.json is not valid JSON: line 1, column 2: "
            "Expecting property name enclosed in double quotes\n",
        ),
    ],
    ids=["both", "missing-file", "bad-json"],
)
def test_a_bad_payload_source_is_one_clear_line(
    tmp_path: Path, args: list[str], error: str
) -> None:
    (tmp_path / "in.json").write_text("{oops", encoding="utf-8")
    done = run("enqueue", *args, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, error)
    assert not (tmp_path / "taskdeck.db").exists()  # nothing was stored, not even a store


# -- completion ----------------------------------------------------------------------------
def complete(line: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """What the shell would offer for ``line`` (the cursor at its end)."""
    out = cwd / "completions.txt"
    variables = {
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        **(env or {}),
    }
    done = subprocess.run(
        COMMAND, cwd=cwd, env=cli_env(variables), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return [word.strip() for word in out.read_text().split("\n") if word.strip()]


def test_completion_offers_commands_options_and_the_app_handlers(tmp_path: Path) -> None:
    assert complete("taskdeck enq", tmp_path) == ["enqueue"]
    assert complete("taskdeck sche", tmp_path) == ["schedules", "schedule"]
    assert complete("taskdeck enqueue x --pay", tmp_path) == ["--payload"]
    # the handlers of the demo, or of the app given with --app (before or after the command)
    assert complete("taskdeck enqueue images.d", tmp_path) == ["images.download"]
    node = {"NODE_STORE": str(tmp_path / "n.db")}
    assert complete("taskdeck --app tests.node_worker:app enqueue ", tmp_path, node) == ["job"]
    assert complete("taskdeck tasks --app tests.node_worker:app --handler j", tmp_path, node) == [
        "job"
    ]


def test_completion_offers_the_stores_queues_and_never_fails(tmp_path: Path) -> None:
    ok(tmp_path, "enqueue", "images.download", json.dumps(DOWNLOAD), "--queue", "billing")
    defaults = ["downloads", "images", "notifications", "reports", "uploads"]
    # the store's queues (webhooks: the engine's own) and the demo handlers' default ones
    stored = sorted(["billing", "webhooks", *defaults])
    assert complete("taskdeck tasks --queue ", tmp_path) == stored
    assert complete("taskdeck pause b", tmp_path) == ["billing"]
    # no store there, a store that is not one, an app that cannot load: no traceback
    (tmp_path / "text.db").write_text("not a database\n")
    for line in (
        "taskdeck --store missing.db tasks --queue ",
        "taskdeck tasks --store text.db --queue ",
    ):
        assert complete(line, tmp_path) == defaults
    assert complete("taskdeck --app nosuch:app enqueue ", tmp_path) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script_and_the_line_for_the_shell_rc(shell: str) -> None:
    done = run("completion", shell, cwd=Path.cwd())
    assert done.returncode == 0
    first, script = done.stdout.split("\n", 1)
    rc = {"bash": "~/.bashrc", "zsh": "~/.zshrc", "fish": "~/.config/fish/config.fish"}[shell]
    assert first.startswith(f"# taskdeck completion for {shell}: put this line in {rc}: ")
    assert "_ARGCOMPLETE" in script and "taskdeck" in script


def test_the_bash_script_registers_the_completion() -> None:
    command = " ".join(COMMAND)
    done = subprocess.run(
        ["bash", "-c", f'eval "$({command} completion bash)" && complete -p taskdeck'],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(" taskdeck") and "-F" in done.stdout
