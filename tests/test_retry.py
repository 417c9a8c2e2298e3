"""Retry decisions: what is retried, for reads and for writes, and the budget."""

from __future__ import annotations

import pytest

from isales_async import RetryBudget, RetryPolicy
from isales_async._retry import Failure

POLICY = RetryPolicy(attempts=4, initial_delay=1.0, max_delay=8.0, deadline=30.0)
READ_RETRIED = {
    Failure.NOT_SENT,
    Failure.LOST,
    Failure.RATE_LIMITED,
    Failure.UNAVAILABLE,
    Failure.BAD_GATEWAY,
    Failure.GATEWAY_TIMEOUT,
}
WRITE_RETRIED = {Failure.NOT_SENT, Failure.RATE_LIMITED, Failure.UNAVAILABLE}
WRITE_UNKNOWN = {Failure.LOST, Failure.BAD_GATEWAY, Failure.GATEWAY_TIMEOUT, Failure.SERVER_ERROR, Failure.BAD_BODY}


@pytest.mark.parametrize("failure", list(Failure))
def test_reads_retry_exactly_the_idempotent_failures(failure: Failure) -> None:
    decision = POLICY.decide(attempt=1, failure=failure, write=False, elapsed=0.0)
    assert decision.retry is (failure in READ_RETRIED)
    assert not decision.unknown


@pytest.mark.parametrize("failure", list(Failure))
def test_writes_retry_only_when_provably_unprocessed(failure: Failure) -> None:
    decision = POLICY.decide(attempt=1, failure=failure, write=True, elapsed=0.0)
    assert decision.retry is (failure in WRITE_RETRIED)
    assert decision.unknown is (failure in WRITE_UNKNOWN)


def test_attempts_are_bounded() -> None:
    assert POLICY.decide(attempt=3, failure=Failure.LOST, write=False, elapsed=0).retry
    assert not POLICY.decide(attempt=4, failure=Failure.LOST, write=False, elapsed=0).retry


def test_full_jitter_backoff_doubles_up_to_the_cap() -> None:
    assert [POLICY.backoff(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert POLICY.backoff(3, rand=lambda: 0.0) == 0.0


def test_retry_after_is_honoured_and_bounded() -> None:
    decision = POLICY.decide(
        attempt=1, failure=Failure.RATE_LIMITED, write=False, elapsed=0, retry_after=5.0, rand=lambda: 0.5
    )
    assert decision.delay == 5.0
    assert not POLICY.decide(attempt=1, failure=Failure.RATE_LIMITED, write=False, elapsed=0, retry_after=500.0).retry


def test_deadline_stops_a_wait_that_would_overrun_it() -> None:
    assert not POLICY.decide(attempt=1, failure=Failure.LOST, write=False, elapsed=29.5, rand=lambda: 1.0).retry
    assert POLICY.decide(attempt=1, failure=Failure.LOST, write=False, elapsed=28.5, rand=lambda: 1.0).retry


def test_budget_caps_retries_once_spent_then_refills_with_traffic() -> None:
    budget = RetryBudget(ratio=0.5, capacity=2.0)
    assert budget.withdraw() and budget.withdraw()
    assert not budget.withdraw()
    budget.deposit()
    assert not budget.withdraw()
    budget.deposit()
    assert budget.withdraw()
