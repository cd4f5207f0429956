"""Pure pieces: states, priorities, names, JSON codec, retry policies, settings, handlers."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from engine import RetryPolicy, Settings, SettingsError, TaskState
from engine.checks import check_queue_name, parse_task_id
from engine.codec import Codec, generate_key, to_json
from engine.errors import EncryptionKeyError, InvalidTransition
from engine.limits import LimitMap
from engine.model import ALLOWED_TRANSITIONS, check_transition, parse_priority
from engine.registry import build_handler

ROOT = Path(__file__).resolve().parent.parent


def test_engine_imports_without_textual() -> None:
    # Given a fresh interpreter, when the engine package is imported,
    # then neither Textual nor the console comes with it.
    code = (
        "import sys, engine, engine.store.sqlite.driver, engine.pool.worker_process;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'console', 'rich')];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == ""


# -- states and priorities -------------------------------------------------------


def test_transitions_follow_the_design() -> None:
    check_transition("", "queued")
    check_transition("queued", "running")
    check_transition("running", "scheduled")
    check_transition("failed", "queued")
    with pytest.raises(InvalidTransition, match="from succeeded to queued"):
        check_transition("succeeded", "queued")
    with pytest.raises(InvalidTransition, match="may move to: cancelled, running"):
        check_transition("queued", "succeeded")
    assert ALLOWED_TRANSITIONS[TaskState.SUCCEEDED] == frozenset()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (9, 9), ("high", 7), ("Critical", 9), ("low", 2), ("normal", 5), ("3", 3)],
)
def test_priority_accepts_numbers_and_names(value: object, expected: int) -> None:
    assert parse_priority(value) == expected


@pytest.mark.parametrize("value", [-1, 10, 5.5, True, "urgent", None, [5]])
def test_priority_refuses_with_the_allowed_range(value: object) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        parse_priority(value)
    assert "0 (lowest) to 9 (highest)" in str(info.value)
    assert "critical (9)" in str(info.value)


@pytest.mark.parametrize("name", ["", " ", "a b", "x" * 65, "'; DROP TABLE tasks;--", "-lead"])
def test_bad_queue_names_state_the_rule(name: str) -> None:
    with pytest.raises(ValueError, match="1–64 characters"):
        check_queue_name(name)


def test_task_ids_are_positive_integers() -> None:
    assert parse_task_id("42") == 42
    assert parse_task_id(7) == 7
    for bad in ("abc", "-1", "0", "", "4.2", True):
        with pytest.raises(LookupError, match="no task with id"):
            parse_task_id(bad)


# -- JSON codec ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"items": [1, 2, {3}]}, "$.items[2]"),
        ({"a": {"b": b"x"}}, "$.a.b"),
        ({"when": __import__("datetime").datetime.now()}, "$.when"),
        ({"odd key": object()}, '$["odd key"]'),
        ({"x": float("nan")}, "$.x"),
        ({"y": [float("inf")]}, "$.y[0]"),
        ({1: "int key"}, "$"),
    ],
)
def test_unserialisable_payload_names_the_path(payload: object, path: str) -> None:
    with pytest.raises(ValueError) as info:
        to_json(payload, "payload")
    assert path in str(info.value)


def test_deep_nesting_is_a_clear_error_not_a_recursion_error() -> None:
    value: object = "leaf"
    for _ in range(10_000):
        value = [value]
    with pytest.raises(ValueError, match="nested deeper than 200 levels"):
        to_json(value)


def test_unicode_edge_cases_round_trip_exactly() -> None:
    codec = Codec()
    value = {"nul": "a\x00b", "emoji": "🦄", "rtl": "שלום", "k": [1.5, None]}
    assert codec.decode(codec.encode(value)) == value
    # a lone surrogate is not Unicode text (issue 13 item 25): refused, with its path
    with pytest.raises(ValueError, match=r"lone surrogate U\+D800 at \$\.surrogate"):
        codec.encode({"surrogate": "\ud800"})


def test_encryption_round_trips_and_hides_the_text() -> None:
    codec = Codec([generate_key()])
    sealed = codec.encode({"secret": "MARKER-123"})
    assert "MARKER" not in sealed
    assert codec.decode(sealed) == {"secret": "MARKER-123"}


def test_key_rotation_reads_old_tokens() -> None:
    old, new = generate_key(), generate_key()
    token = Codec([old]).encode({"v": 1})
    assert Codec([new, old]).decode(token) == {"v": 1}
    assert "does not match" not in str(
        Codec([new, old]).keys_match(Codec([old]).key_check_token() or "")
    )
    assert Codec([new, old]).keys_match(Codec([old]).key_check_token() or "")
    assert not Codec([new]).keys_match(Codec([old]).key_check_token() or "")


def test_malformed_key_is_refused_with_the_rule() -> None:
    with pytest.raises(EncryptionKeyError, match="32 url-safe base64-encoded bytes"):
        Codec(["not-a-key"])


# -- retry policies --------------------------------------------------------------


def test_backoff_bounds_per_policy() -> None:
    assert RetryPolicy.fixed(2).bound(5) == 2
    assert RetryPolicy.linear(1.5, cap=4).bound(2) == 3.0
    assert RetryPolicy.linear(1.5, cap=4).bound(3) == 4.0
    exp = RetryPolicy.exponential(base=0.5, cap=60, jitter=False)
    assert [exp.bound(n) for n in (1, 2, 3, 10)] == [0.5, 1.0, 2.0, 60.0]
    assert exp.bound(10_000) == 60.0  # no overflow


def test_full_jitter_stays_within_zero_and_the_bound() -> None:
    policy = RetryPolicy.exponential(base=1, cap=8, jitter=True)
    rng = random.Random(7)
    for n in range(1, 8):
        delays = [policy.delay(n, rng) for _ in range(200)]
        assert all(0 <= d <= policy.bound(n) for d in delays)
        assert max(delays) > policy.bound(n) * 0.8  # it really spreads


def test_retry_only_on_listed_exceptions() -> None:
    policy = RetryPolicy.exponential(retry_on=(ConnectionError,))
    assert policy.should_retry(ConnectionResetError())
    assert not policy.should_retry(ValueError())
    assert RetryPolicy().should_retry(ValueError())


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy.fixed(-1),
        lambda: RetryPolicy.exponential(base=float("nan")),
        lambda: RetryPolicy.exponential(cap=0),
        lambda: RetryPolicy.exponential(factor=0.5),
        lambda: RetryPolicy.exponential(retry_on=("ValueError",)),  # type: ignore[arg-type]
    ],
)
def test_bad_retry_policies_are_refused(make: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        make()  # type: ignore[operator]


# -- settings --------------------------------------------------------------------


def test_every_setting_has_doc_default_and_unit() -> None:
    durations = ("interval", "ttl", "timeout", "grace", "cooldown", "lag", "latency")
    for spec, value in Settings():
        assert spec.doc and value == spec.default
        if spec.kind is float:
            assert spec.unit in ("s", "%", "×"), spec.name
        if any(word in spec.name for word in durations):
            assert spec.kind is float and spec.unit == "s", spec.name  # seconds, everywhere


def test_invalid_settings_name_every_bad_field_and_change_nothing() -> None:
    base = Settings(result_ttl=600)
    with pytest.raises(SettingsError) as info:
        base.replace(result_tll=5, lease_ttl=-1, max_workers="four", durability="paranoid")
    errors = info.value.errors
    assert set(errors) == {"result_tll", "lease_ttl", "max_workers", "durability"}
    assert "did you mean 'result_ttl'" in errors["result_tll"]
    assert "from 0.5 to 86400 s" in errors["lease_ttl"]
    assert "normal, full" in errors["durability"]
    assert base.result_ttl == 600


def test_cross_field_rule_renew_below_ttl() -> None:
    with pytest.raises(SettingsError, match="shorter than lease_ttl"):
        Settings(lease_ttl=5, lease_renew_interval=5)


def test_settings_from_env_and_toml(tmp_path: Path) -> None:
    env = {"TASKDECK_LEASE_TTL": "12.5", "TASKDECK_MAX_WORKERS": "32", "OTHER": "x"}
    assert Settings.from_env(env).lease_ttl == 12.5
    assert Settings.from_env(env).max_workers == 32
    with pytest.raises(SettingsError, match="whole number"):
        Settings.from_env({"TASKDECK_MAX_WORKERS": "many"})
    toml = tmp_path / "taskdeck.toml"
    toml.write_text("[taskdeck]\nresult_ttl = 60\ndurability = 'full'\n")
    loaded = Settings.from_toml(toml)
    assert (loaded.result_ttl, loaded.durability) == (60.0, "full")


def test_settings_are_immutable() -> None:
    with pytest.raises(AttributeError, match="update_settings"):
        Settings().lease_ttl = 3  # type: ignore[misc]


# -- handler registration --------------------------------------------------------


async def _resize(job_id: str, width: int, height: int = 1) -> dict[str, str]:
    return {"job_id": job_id}


def test_unknown_task_option_suggests_the_closest() -> None:
    with pytest.raises(TypeError, match="'retires'; did you mean 'retries'"):
        build_handler(_resize, {"retires": 3})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 10, "soft_timeout": 20}, "soft_timeout (20 s) must be less than timeout"),
        ({"timeout": -1}, "above 0"),
        ({"timeout": float("nan")}, "above 0"),
        ({"executor": "threads"}, "did you mean 'thread'"),
        ({"retries": -2}, "from 0 to 1000"),
        ({"priority": 12}, "0 (lowest) to 9"),
        ({"queue": "bad queue"}, "not allowed"),
    ],
)
def test_invalid_task_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(
        (ValueError, TypeError), match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        build_handler(_resize, options)


def test_sync_function_cannot_use_the_async_executor() -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="use executor='thread'"):
        build_handler(plain, {"executor": "async"})
    assert build_handler(plain, {}).executor == "thread"


def test_payload_is_checked_against_the_signature() -> None:
    handler = build_handler(_resize, {"name": "images.resize"})
    assert handler.check_payload({"job_id": "a", "width": 2}) == {"job_id": "a", "width": 2}
    with pytest.raises(TypeError) as info:
        handler.check_payload({"job_id": "a", "widht": 3})
    text = str(info.value)
    assert "images.resize(job_id: str, width: int, height: int = 1)" in text
    assert "missing 'width'" in text and "'widht'; did you mean 'width'" in text
    with pytest.raises(TypeError, match="must be a JSON object"):
        handler.check_payload(["a", 1])


def test_stored_timeline_is_json_lines() -> None:
    from engine.model import parse_timeline, timeline_line

    line = timeline_line(1.5, "running", 2, 'node"1', "a\nnote")
    assert json.loads(line) == {
        "at": 1.5,
        "state": "running",
        "attempt": 2,
        "by": 'node"1',
        "note": "a\nnote",
    }
    entries = parse_timeline(line, created_at=1.0)
    assert [e.state for e in entries] == [TaskState.QUEUED, TaskState.RUNNING]


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [spec.name for spec in Settings.specs() if f"| `{spec.name}` |" not in readme]
    assert not missing, f"README settings table lacks: {missing}"


def test_settings_are_a_copyable_frozen_dataclass() -> None:
    settings = Settings(lease_ttl=20, queue_weights="bulk=1, default=3")
    assert dataclasses.is_dataclass(settings)
    assert copy.deepcopy(settings) == settings
    assert copy.copy(settings) == settings
    assert dataclasses.asdict(settings)["lease_ttl"] == 20.0
    changed = dataclasses.replace(settings, max_workers=8)
    assert (changed.max_workers, changed.lease_ttl, settings.max_workers) == (8, 20.0, 256)
    with pytest.raises(SettingsError, match="max_workers: must be from 1 to 4096"):
        dataclasses.replace(settings, max_workers=0)
    with pytest.raises(dataclasses.FrozenInstanceError, match="update_settings"):
        settings.lease_ttl = 3  # type: ignore[misc]
    assert {settings, copy.deepcopy(settings)} == {settings}


def test_each_setting_is_declared_once_as_a_field() -> None:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert [spec.name for spec in Settings.specs()] == list(fields)
    for spec in Settings.specs():
        assert spec.default == fields[spec.name].default
        assert spec.doc and spec.kind in (int, float, bool, str, LimitMap)
        if spec.kind in (int, float):
            assert spec.low is not None and spec.high is not None
