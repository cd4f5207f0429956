"""The retry-or-fail decision after a failed attempt: plain calls, no engine."""

from __future__ import annotations

import dataclasses
import random

import pytest

from engine.errors import (
    HardTimeout,
    PayloadDecodeError,
    RemoteError,
    ResultNotSerializable,
    WorkerProcessLost,
)
from engine.model import TaskState
from engine.retry import RetryDecision, RetryPolicy, decide, retryable

FIXED_2S = RetryPolicy.fixed(2.0)


class Flaky(ConnectionError):
    pass


def remote(type_name: str, mro: list[str], *, not_serializable: bool = False) -> RemoteError:
    return RemoteError(f"Traceback …\n{type_name}: boom\n", type_name, mro, not_serializable)


# -- retry ---------------------------------------------------------------------


def test_a_retryable_error_is_scheduled_after_the_policy_delay() -> None:
    decision = decide(ValueError("bad"), 1, 3, FIXED_2S)
    assert decision == RetryDecision(
        TaskState.SCHEDULED, 2.0, "ValueError; retry 1/3 in 2.00 s", "ValueError"
    )
    assert decision.retry


def test_a_zero_delay_retry_is_queued_at_once() -> None:
    decision = decide(ValueError("bad"), 2, 3, RetryPolicy.fixed(0))
    assert decision.state == TaskState.QUEUED and decision.delay == 0.0 and decision.retry
    assert decision.note == "ValueError; retry 2/3 in 0.00 s"


def test_the_delay_follows_the_retry_number() -> None:
    policy = RetryPolicy.exponential(1.0, factor=2.0, jitter=False)
    assert [decide(OSError(), n, 5, policy).delay for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_jitter_draws_from_the_given_random_source() -> None:
    policy = RetryPolicy.exponential(4.0, jitter=True)
    decision = decide(OSError(), 1, 3, policy, random.Random(7))
    assert decision.delay == policy.delay(1, random.Random(7))
    assert 0.0 <= decision.delay <= 4.0


# -- exhaustion ----------------------------------------------------------------


def test_the_last_attempt_fails_the_task() -> None:
    decision = decide(ValueError("bad"), 4, 3, FIXED_2S)
    assert decision == RetryDecision(TaskState.FAILED, 0.0, "ValueError; attempt 4/4", "ValueError")
    assert not decision.retry


def test_no_retries_means_the_first_failure_is_final() -> None:
    decision = decide(ValueError("bad"), 1, 0, FIXED_2S)
    assert decision.state == TaskState.FAILED and decision.note == "ValueError; attempt 1/1"


# -- errors that are never retried, and retry_on -------------------------------


@pytest.mark.parametrize(
    "exc",
    [PayloadDecodeError("cannot read the stored payload"), ResultNotSerializable("a set")],
)
def test_an_unreadable_payload_or_a_result_that_is_not_json_is_never_retried(
    exc: BaseException,
) -> None:
    decision = decide(exc, 1, 5, FIXED_2S)
    kind = type(exc).__name__
    assert decision == RetryDecision(TaskState.FAILED, 0.0, f"{kind}; not retryable", kind)


def test_not_retryable_is_the_reason_even_on_the_last_attempt() -> None:
    assert decide(PayloadDecodeError("x"), 3, 2, FIXED_2S).note == (
        "PayloadDecodeError; not retryable"
    )


def test_retry_on_retries_only_the_listed_types_and_their_subclasses() -> None:
    policy = RetryPolicy.fixed(1.0, retry_on=(ConnectionError,))
    assert decide(Flaky("again"), 1, 3, policy).retry
    refused = decide(KeyError("k"), 1, 3, policy)
    assert refused.state == TaskState.FAILED and refused.note == "KeyError; not retryable"


def test_without_retry_on_any_error_is_retried() -> None:
    assert retryable(SystemExit(3), FIXED_2S)
    assert decide(KeyError("k"), 1, 1, FIXED_2S).retry


# -- timeouts and lost worker processes ----------------------------------------


def test_a_hard_timeout_is_retried_like_any_error_and_matches_timeout_error() -> None:
    exc = HardTimeout("attempt 1 exceeded the hard timeout of 0.5 s")
    decision = decide(exc, 1, 2, RetryPolicy.fixed(1.0, retry_on=(TimeoutError,)))
    assert decision.retry and decision.kind == "HardTimeout"
    assert decision.note == "HardTimeout; retry 1/2 in 1.00 s"
    assert not decide(exc, 1, 2, RetryPolicy.fixed(1.0, retry_on=(ValueError,))).retry


def test_a_lost_worker_process_is_retried() -> None:
    decision = decide(WorkerProcessLost("the worker process exited with code 3"), 1, 1, FIXED_2S)
    assert decision.retry and decision.kind == "WorkerProcessLost"


# -- errors raised in a worker process -----------------------------------------


def test_a_remote_error_is_known_by_its_own_type_name() -> None:
    decision = decide(remote("KeyError", ["builtins.KeyError"]), 1, 1, FIXED_2S)
    assert decision.retry and decision.note == "KeyError; retry 1/1 in 2.00 s"


def test_a_remote_error_matches_retry_on_by_module_and_qualname() -> None:
    policy = RetryPolicy.fixed(0, retry_on=(Flaky,))
    flaky_mro = [f"{__name__}.Flaky", "builtins.ConnectionError", "builtins.Exception"]
    assert decide(remote("Flaky", flaky_mro), 1, 3, policy).state == TaskState.QUEUED
    other = decide(remote("ConnectionError", ["builtins.ConnectionError"]), 1, 3, policy)
    assert other.state == TaskState.FAILED and other.note == "ConnectionError; not retryable"


def test_a_remote_result_that_is_not_json_is_never_retried() -> None:
    exc = remote("ResultNotSerializable", [], not_serializable=True)
    decision = decide(exc, 1, 3, FIXED_2S)
    assert decision.state == TaskState.FAILED
    assert decision.note == "ResultNotSerializable; not retryable"


def test_the_decision_is_a_frozen_value() -> None:
    decision = decide(ValueError(), 1, 1, FIXED_2S)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.delay = 0.0  # type: ignore[misc]
