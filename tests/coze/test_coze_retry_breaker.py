"""Backoff is full-jitter and capped; the breaker opens, fails fast, probes once, and closes."""

from __future__ import annotations

import pytest

from kai_bridge.coze.breaker import BreakerState, CircuitBreaker
from kai_bridge.coze.retry import RetryPolicy, is_retryable
from kai_bridge.errors import (
    CircuitOpenError,
    CozeAuthError,
    CozeBadRequestError,
    CozeRateLimitError,
    CozeServerError,
    CozeTransportError,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_library_default_retries_as_the_service_default() -> None:
    from kai_bridge.config import Settings

    assert RetryPolicy().max_retries == Settings.model_fields["coze_max_retries"].default


def test_backoff_ceiling_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=0.2, backoff_max=5.0)
    assert [policy.delay(retry=n, rand=lambda: 1.0) for n in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_backoff_is_full_jitter_between_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=100.0)
    assert policy.delay(retry=3, rand=lambda: 0.0) == 0.0
    assert policy.delay(retry=3, rand=lambda: 0.25) == 2.0


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(retry_after_max=30.0)
    assert policy.delay(retry=0, retry_after=7.0) == 7.0
    assert policy.delay(retry=0, retry_after=3600.0) == 30.0


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(CozeRateLimitError("x", code=4013), True, id="rate-limit"),
        pytest.param(CozeServerError("x", code=5000), True, id="server"),
        pytest.param(CozeTransportError("x"), True, id="transport"),
        pytest.param(CozeAuthError("x", code=4100), False, id="auth"),
        pytest.param(CozeBadRequestError("x", code=4000), False, id="bad-request"),
    ],
)
def test_only_transient_errors_are_retryable(exc: Exception, expected: bool) -> None:
    assert is_retryable(exc) is expected


def fail(breaker: CircuitBreaker, exc: Exception) -> None:
    with pytest.raises(type(exc)), breaker.guard():
        raise exc


def test_breaker_opens_after_n_consecutive_failures_and_then_fails_fast() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0, clock=clock)
    for _ in range(2):
        fail(breaker, CozeTransportError("down"))
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, CozeServerError("down", code=5000))
    assert breaker.snapshot()["state"] == "open"
    clock.now += 4.0
    with pytest.raises(CircuitOpenError) as info:  # fails at once: before_call takes no lock and never sleeps
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(6.0)
    assert breaker.snapshot()["rejected_count"] == 1


def test_client_errors_do_not_count_as_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    for _ in range(5):
        fail(breaker, CozeBadRequestError("nope", code=4000))
        fail(breaker, CozeRateLimitError("slow", code=4013))
    assert breaker.state is BreakerState.CLOSED


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    fail(breaker, CozeTransportError("x"))
    with breaker.guard():
        pass
    fail(breaker, CozeTransportError("x"))
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_exactly_one_probe_through_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    fail(breaker, CozeTransportError("x"))
    clock.now += 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # everyone else while the probe is out
    breaker.record_success()
    assert breaker.snapshot()["state"] == "closed"
    breaker.before_call()


def test_a_probe_that_hangs_does_not_keep_the_breaker_shut() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=1.0, clock=clock)
    fail(breaker, CozeTransportError("x"))
    fail(breaker, CozeTransportError("x"))
    clock.now += 1.0
    breaker.before_call()  # the first probe, which never answers
    clock.now += 0.5
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    breaker.before_call()  # a second probe, one reset period after the first began
    breaker.record_success()  # Coze is back: the newer probe closes the breaker
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()  # the hung probe finally fails: one failure of two, not a reopening
    assert breaker.state is BreakerState.CLOSED


def test_the_default_reset_lets_a_probe_through_within_a_second() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)
    fail(breaker, CozeTransportError("x"))
    clock.now += 1.0
    breaker.before_call()


def test_failed_probe_reopens_for_a_full_reset_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    fail(breaker, CozeTransportError("x"))
    clock.now += 5.0
    fail(breaker, CozeTransportError("still down"))
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.9
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    assert breaker.snapshot()["opened_count"] == 2


def test_a_cancelled_probe_frees_the_slot_for_another_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    fail(breaker, CozeTransportError("x"))
    clock.now += 1.0
    with pytest.raises(KeyboardInterrupt), breaker.guard():
        raise KeyboardInterrupt
    breaker.before_call()  # admitted: the slot was released


def test_a_late_failure_of_a_call_admitted_before_the_breaker_closed_does_not_reopen_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    old = breaker.before_call()  # admitted while closed; it hangs
    fail(breaker, CozeTransportError("x"))  # another call fails: open
    clock.now += 1.0
    with breaker.guard():  # the probe succeeds: closed again
        pass
    breaker.record_failure(old)  # the hung call times out now: a verdict of an older generation
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["consecutive_failures"] == 0
    breaker.record_failure(breaker.before_call())  # a call admitted now still counts
    assert breaker.snapshot()["state"] == "open"


def test_a_late_success_of_a_call_admitted_before_the_breaker_opened_does_not_close_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    old = breaker.before_call()
    fail(breaker, CozeTransportError("x"))
    breaker.record_success(old)
    assert breaker.state is BreakerState.OPEN
    breaker.release(old)  # nor does its release free the half-open probe slot of a newer generation
    clock.now += 1.0
    breaker.before_call()  # the probe
    breaker.release(old)
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_a_hung_probe_failing_after_a_newer_probe_went_out_does_not_re_arm_the_open_timer() -> None:
    # Coze hangs longer than the reset: each probe times out after the next one was let through.
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    fail(breaker, CozeTransportError("x"))
    clock.now += 1.0
    first = breaker.before_call()  # a probe that hangs
    clock.now += 1.0
    second = breaker.before_call()  # one reset later the next caller probes too (Coze is back now)
    clock.now += 0.5
    breaker.record_failure(first)  # the first times out: superseded, it does not reopen the breaker
    assert breaker.state is BreakerState.HALF_OPEN
    clock.now += 0.5
    third = breaker.before_call()  # so a probe still goes out one reset after the second
    breaker.record_success(second)  # and any probe of this outage that gets through closes it
    assert breaker.snapshot()["state"] == "closed"
    breaker.record_failure(third)  # a verdict from before the close does not count
    assert breaker.snapshot()["consecutive_failures"] == 0


def test_the_latest_probe_failing_reopens_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    fail(breaker, CozeTransportError("x"))
    clock.now += 1.0
    breaker.record_failure(breaker.before_call())
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot()["opened_count"] == 2
