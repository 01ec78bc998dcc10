"""A circuit breaker so that a dead Coze fails fast instead of tying up every caller.

closed ──(N consecutive failures)──► open ──(reset_timeout elapsed)──► half-open
  ▲                                   ▲                                  │ one probe call
  └────────────(probe succeeds)───────┴─────────(probe fails)────────────┘

Only upstream-health failures count (transport errors, 5xx/5000): a 4xx means Coze is up
and answering, so it counts as a success. The pipeline gives one verdict per call, by its last
attempt: an attempt that failed and is retried counts for nothing while the breaker is closed. While open, calls fail in microseconds with
:class:`~kai_bridge.errors.CircuitOpenError` carrying ``retry_after``. In half-open one
caller at a time is let through as the probe; the others keep failing fast until it
settles. A probe that hangs (an upstream that accepts and never answers) does not hold the
door shut: ``reset_timeout`` after it started, the next caller probes too. So once Coze is
back, the first success comes at most ``reset_timeout`` (1 s by default) plus one round trip
later, however the outage looked.
Each open, each close and each probe starts a new *generation*: a failure counts only for a
call admitted in the current one, so a slow failure of a call let in before the last
transition (a hung request timing out after the breaker closed again) cannot reopen a breaker
that has just closed, and a hung probe that times out after a newer probe went out does not
re-arm the open timer over it (with a timeout longer than the reset, that kept a recovered
Coze refused for a timeout plus a reset). A success counts if the call was admitted since
the last opening (any probe of this outage that got through), never one admitted before it.
The breaker is not thread-safe by design: it lives on one event loop, and its decisions
happen between awaits.

Transitions are logged: opening at ERROR (Coze is down for the bridge; it reaches
``error.log``), the probe at INFO, closing again at WARNING. Fast-fail rejections are
counted (``rejected_count``), not logged one by one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from kai_bridge.errors import CircuitOpenError, CozeServerError, CozeTransportError

__all__ = ["BreakerState", "CircuitBreaker", "counts_as_failure"]

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def counts_as_failure(exc: BaseException) -> bool:
    return isinstance(exc, CozeTransportError | CozeServerError)


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "coze",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._clock = clock
        self._name = name
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._probe_started = 0.0
        self._generation = 0
        self._opened_generation = 0
        self.opened_count = 0
        self.rejected_count = 0

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose reset time has passed reports half-open."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset_timeout:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def generation(self) -> int:
        """Bumped on every open, close and probe; see the module docstring for which verdicts count."""
        return self._generation

    def _stale(self, generation: int | None) -> bool:
        return generation is not None and generation != self._generation

    def before_call(self) -> int:
        """Admit a call (its generation) or raise CircuitOpenError. An admitted call must end in a record_* call."""
        if self._state is BreakerState.CLOSED:
            return self._generation
        now = self._clock()
        remaining = self._reset_timeout - (now - self._opened_at)
        if self._state is BreakerState.OPEN and remaining <= 0:
            self._state = BreakerState.HALF_OPEN
            log.info("%s circuit breaker half-open: letting one probe call through", self._name)
        if self._state is BreakerState.HALF_OPEN and (
            not self._probe_in_flight or now - self._probe_started >= self._reset_timeout
        ):
            self._probe_in_flight = True
            self._probe_started = now
            self._generation += 1  # an older probe's failure no longer counts over this one
            return self._generation
        self.rejected_count += 1
        wait = (
            max(remaining, 0.0)
            if self._state is BreakerState.OPEN
            else max(0.0, self._reset_timeout - (now - self._probe_started))
        )
        raise CircuitOpenError(
            f"Coze is unavailable: the last {self._threshold} calls failed, so calls fail fast "
            f"for now; next try in {wait:.1f}s",
            retry_after=wait,
        )

    def record_success(self, generation: int | None = None) -> None:
        """A call went through; one admitted before the last opening (``generation``) does not count."""
        if self._stale(generation) and (
            self._state is BreakerState.CLOSED or generation is None or generation <= self._opened_generation
        ):
            return
        if self._state is not BreakerState.CLOSED:
            self._generation += 1
            log.warning("%s circuit breaker closed: calls go through again (it was open %d time(s) so far)",
                        self._name, self.opened_count)
        self._failures = 0
        self._probe_in_flight = False
        self._state = BreakerState.CLOSED

    def record_failure(self, generation: int | None = None) -> None:
        """A call failed (upstream health); ignored when ``generation`` is older than the current one."""
        if self._stale(generation):
            return
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            if self._state is not BreakerState.OPEN:
                self.opened_count += 1
                why = "the probe call failed" if self._state is BreakerState.HALF_OPEN else (
                    f"{self._failures} consecutive calls failed")
                log.error("%s circuit breaker open: %s; calls fail fast for %.1fs", self._name, why,
                          self._reset_timeout)
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._generation += 1
            self._opened_generation = self._generation
        self._probe_in_flight = False

    def record_outcome(self, generation: int | None, exc: BaseException, *, retrying: bool = False) -> None:
        """The verdict of an admitted call that raised ``exc``, by its type (see :func:`counts_as_failure`).

        ``retrying``: the caller tries again. While closed such an attempt gives no verdict, so a
        call counts once, by its last attempt; a probe's failure (half-open) counts at once.
        """
        if not counts_as_failure(exc):
            self.record_success(generation)  # Coze answered: it is up
        elif retrying and self._state is BreakerState.CLOSED:
            self.release(generation)
        else:
            self.record_failure(generation)

    def release(self, generation: int | None = None) -> None:
        """An admitted call ended with no verdict (cancelled): let another probe through."""
        if not self._stale(generation):
            self._probe_in_flight = False

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Admit, run the block, and record its outcome (by exception type)."""
        generation = self.before_call()
        try:
            yield
        except Exception as exc:
            self.record_outcome(generation, exc)
            raise
        except BaseException:
            self.release(generation)
            raise
        self.record_success(generation)

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "consecutive_failures": self._failures,
            "failure_threshold": self._threshold,
            "reset_timeout": self._reset_timeout,
            "opened_count": self.opened_count,
            "rejected_count": self.rejected_count,
        }
