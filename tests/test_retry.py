"""Retry decisions: what is retried, for reads and for writes, Retry-After, the cool-down
and the budget."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_async import ConnectionLostError, HTTPStatusError, RetryBudget, RetryPolicy, ValidationError
from isales_async._retry import CoolDown, Decision, Failure, RetryState

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


def test_retry_after_within_the_cap_is_honoured() -> None:
    decision = POLICY.decide(
        attempt=1, failure=Failure.RATE_LIMITED, write=False, elapsed=0, retry_after=5.0, rand=lambda: 0.5
    )
    assert decision == Decision(True, delay=5.0, reason="429")
    at_cap = RetryPolicy(deadline=None).decide(
        attempt=1, failure=Failure.RATE_LIMITED, write=True, elapsed=0, retry_after=60.0, rand=lambda: 0.5
    )
    assert at_cap == Decision(True, delay=60.0, reason="429")
    no_room = POLICY.decide(attempt=1, failure=Failure.RATE_LIMITED, write=False, elapsed=0, retry_after=31.0)
    assert not no_room.retry  # honoured, but the 30 s deadline has no room for it


def test_the_retry_after_cap_defaults_to_60_seconds() -> None:
    assert RetryPolicy().max_retry_after == 60.0


@pytest.mark.parametrize("retry_after", [60.5, 1e9, math.inf])
def test_a_read_falls_back_to_its_own_backoff_above_the_cap(retry_after: float) -> None:
    policy = RetryPolicy(initial_delay=1.0, deadline=None)
    decision = policy.decide(
        attempt=1, failure=Failure.RATE_LIMITED, write=False, elapsed=0, retry_after=retry_after, rand=lambda: 0.5
    )
    assert decision == Decision(True, delay=0.5, reason="429")


@pytest.mark.parametrize("failure", [Failure.RATE_LIMITED, Failure.UNAVAILABLE])
@pytest.mark.parametrize("retry_after", [60.5, 1e9, math.inf])
def test_a_write_gives_up_above_the_cap(retry_after: float, failure: Failure) -> None:
    decision = RetryPolicy(deadline=None).decide(
        attempt=1, failure=failure, write=True, elapsed=0, retry_after=retry_after
    )
    assert (decision.retry, decision.unknown) == (False, False)
    assert "exceeds the 60s cap" in decision.reason


@pytest.mark.parametrize("retry_after", [math.nan, -5.0])
def test_a_nan_or_negative_retry_after_is_no_hint(retry_after: float) -> None:
    for write in (False, True):
        decision = POLICY.decide(
            attempt=1, failure=Failure.RATE_LIMITED, write=write, elapsed=0, retry_after=retry_after, rand=lambda: 0.5
        )
        assert decision == Decision(True, delay=0.5, reason="429")


def test_the_cool_down_takes_a_pause_within_the_cap_only() -> None:
    cool_down = CoolDown()
    for seconds in (None, 0.0, -1.0, math.nan, math.inf, 60.5):
        assert not cool_down.pause(10.0, seconds, cap=60.0)
        assert cool_down.wait(10.0) == 0.0
    assert cool_down.pause(10.0, 60.0, cap=60.0)
    assert cool_down.wait(10.0) == 60.0
    assert cool_down.wait(40.0) == 30.0
    assert cool_down.wait(70.0) == 0.0
    assert cool_down.wait(1000.0) == 0.0


def test_the_cool_down_keeps_the_longer_of_two_pauses() -> None:
    cool_down = CoolDown()
    assert cool_down.pause(0.0, 30.0, cap=60.0)
    assert cool_down.pause(5.0, 5.0, cap=60.0)  # ends at 10: inside the first, which stands
    assert cool_down.wait(5.0) == 25.0
    assert cool_down.pause(20.0, 20.0, cap=60.0)  # ends at 40: extends it
    assert cool_down.wait(20.0) == 20.0


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=10, allow_nan=False),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        ),
        max_size=20,
    )
)
def test_the_cool_down_never_outlives_the_cap(hints: list[tuple[float, float | None]]) -> None:
    cool_down, now = CoolDown(), 0.0
    for step, seconds in hints:
        now += step
        cool_down.pause(now, seconds, cap=60.0)
        assert 0.0 <= cool_down.wait(now) <= 60.0


def test_the_cool_down_never_outlives_the_cap_by_a_rounding_error() -> None:
    # (now + 60) - now is 60.00000000000001 for this now: the wait must still be 60 at most.
    cool_down, now = CoolDown(), 18.731086049035234
    assert cool_down.pause(now, 60.0, cap=60.0)
    assert cool_down.wait(now) == 60.0
    assert cool_down.wait(now + 59.5) == pytest.approx(0.5)
    assert cool_down.wait(now + 60.0) == 0.0


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("attempts", {"attempts": 0}),
        ("attempts", {"attempts": True}),
        ("attempts", {"attempts": 2.0}),
        ("initial_delay", {"initial_delay": -1}),
        ("max_delay", {"max_delay": math.nan}),
        ("deadline", {"deadline": math.inf}),
        ("deadline", {"deadline": "60"}),
        ("max_retry_after", {"max_retry_after": math.inf}),
        ("max_retry_after", {"max_retry_after": -1.0}),
    ],
)
def test_a_policy_that_cannot_work_is_refused(field: str, options: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        RetryPolicy(**options)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_budget_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValidationError, match="ratio"):
        RetryBudget(ratio=-0.1)
    with pytest.raises(ValidationError, match="capacity"):
        RetryBudget(capacity=math.nan)


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


# -- the retry state: budget and cool-down, fed a clock, synchronously ------------------------

ZERO = lambda: 0.0  # noqa: E731  (no jitter: the backoff is 0 and the hint decides)


def status_error(status: int, retry_after: float | None = None) -> HTTPStatusError:
    return HTTPStatusError(f"HTTP {status}", status=status, endpoint="queryOBSResultCode", retry_after=retry_after)


def test_a_retry_after_within_the_cap_pauses_every_call_until_it_ends() -> None:
    state = RetryState()
    decision = state.after_failure(
        POLICY, status_error(503, 7.0), attempt=1, write=False, now=100.0, elapsed=0.0, rand=ZERO
    )
    assert (decision.retry, decision.delay) == (True, 7.0)
    assert [state.cool_down_wait(now) for now in (100.0, 103.0, 107.0, 110.0)] == [7.0, 4.0, 0.0, 0.0]


@pytest.mark.parametrize("hint", [None, 0.0, POLICY.max_retry_after + 1, math.inf])
def test_a_hint_outside_the_cap_is_no_pause(hint: float | None) -> None:
    state = RetryState()
    state.after_failure(POLICY, status_error(429, hint), attempt=1, write=False, now=5.0, elapsed=0.0, rand=ZERO)
    assert state.cool_down_wait(5.0) == 0.0


def test_only_429_and_503_pause_the_client() -> None:
    state = RetryState()
    for status in (500, 502, 504):
        state.after_failure(POLICY, status_error(status, 9.0), attempt=1, write=False, now=0.0, elapsed=0.0, rand=ZERO)
    assert state.cool_down_wait(0.0) == 0.0


def test_every_retry_costs_a_token_and_every_call_deposits_its_ratio() -> None:
    state = RetryState(RetryBudget(ratio=0.5, capacity=2.0, tokens=1.0))
    lost = ConnectionLostError("reset")
    first = state.after_failure(POLICY, lost, attempt=1, write=False, now=0.0, elapsed=0.0)
    spent = state.after_failure(POLICY, lost, attempt=1, write=False, now=0.0, elapsed=0.0)
    assert (first.retry, spent.retry, spent.reason) == (True, False, "the client's retry budget is spent")
    state.first_attempt()
    state.first_attempt()
    assert state.budget.tokens == 1.0
    assert state.after_failure(POLICY, lost, attempt=1, write=False, now=0.0, elapsed=0.0).retry
    assert state.budget.tokens == 0.0


def test_a_refused_retry_costs_no_token() -> None:
    state = RetryState(RetryBudget(tokens=3.0))
    decision = state.after_failure(POLICY, status_error(500), attempt=1, write=True, now=0.0, elapsed=0.0)
    assert (decision.retry, decision.unknown) == (False, True)
    assert state.budget.tokens == 3.0
