"""The outgoing Coze quota: at most N requests a second (bursts of B), waiting briefly for a slot.

Coze limits API calls per plan (its 4013 / HTTP 429). A client that knows its plan's QPS keeps
under it here instead: each request (every attempt, retries included) first takes a slot; with
none free it waits up to ``max_wait`` seconds in line, then fails with
:class:`~kai_bridge.errors.CozeQuotaError` without sending anything, so a burst of callers
neither draws Coze's rate limit nor queues without end.

Built on ``aiolimiter`` (a leaky bucket for asyncio: capacity ``burst``, drained at ``per_second``,
which admits what a token bucket of that size and rate admits; waiters are served in order).
Chosen for its fit: one key, async waiting with fair order, cancellation-safe, tiny, maintained.
This class knows no settings: the composition root passes the numbers in.

Visibility: a call that has to wait means the traffic is at the quota, which is what the
operator wants to know before Coze starts refusing. Waits, time waited and refusals are
counted (in all and by the call's API group, :mod:`kai_bridge.coze.groups`), ``waiting`` says
how many are in line now, and a WARNING is logged when calls queue, at most once per
``warn_every`` seconds (with how many waited since the previous one), so a saturated quota
does not flood the log.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable

import anyio
from aiolimiter import AsyncLimiter

from kai_bridge.errors import CozeQuotaError

__all__ = ["RequestQuota"]

log = logging.getLogger(__name__)


class RequestQuota:
    """``per_second`` requests a second with bursts of ``burst``; a caller waits at most ``max_wait``."""

    def __init__(self, *, per_second: float, burst: int | None = None, max_wait: float = 2.0,
                 warn_every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not (per_second > 0 and math.isfinite(per_second)):
            raise ValueError("per_second must be a positive number (no quota: do not build one)")
        size = burst if burst is not None else max(1, math.ceil(per_second))
        if size < 1:
            raise ValueError("burst must be at least 1")
        if not (max_wait >= 0 and math.isfinite(max_wait)):
            raise ValueError("max_wait must be a number of seconds >= 0")
        self.per_second = per_second
        self.burst = size
        self.max_wait = max_wait
        self._limiter = AsyncLimiter(size, size / per_second)
        self._clock = clock
        self._warn_every = warn_every
        self._warned_at: float | None = None
        self._since_warning = [0, 0]  # waits, refusals since the last warning
        self.refused = 0
        self.waited = 0
        self.waiting = 0  # calls in line now
        self.wait_seconds = 0.0  # time spent in line, in all (admitted and refused)
        self.waited_by_group: Counter[str] = Counter()
        self.refused_by_group: Counter[str] = Counter()

    @classmethod
    def configured(cls, *, per_second: float, burst: int | None, max_wait: float) -> RequestQuota | None:
        """A quota, or None when ``per_second`` is 0 (no quota configured)."""
        return cls(per_second=per_second, burst=burst, max_wait=max_wait) if per_second > 0 else None

    def describe(self) -> str:
        return f"{self.per_second:g} requests/s, bursts of {self.burst}"

    async def acquire(self, *, group: str = "other") -> None:
        """Take a slot, waiting up to ``max_wait``; raises CozeQuotaError (nothing sent) when none came.

        ``group`` is the call's API group, for the counts (:func:`kai_bridge.coze.groups.api_group`).
        """
        if self._limiter.has_capacity():
            await self._limiter.acquire()
            return
        self.waited += 1
        self.waited_by_group[group] += 1
        self._since_warning[0] += 1
        self.waiting += 1
        self._maybe_warn()
        began = self._clock()
        admitted = False
        try:
            with anyio.move_on_after(self.max_wait):
                await self._limiter.acquire()
                admitted = True
        finally:
            self.waiting -= 1
            self.wait_seconds += max(0.0, self._clock() - began)
        if admitted:
            return
        self.refused += 1
        self.refused_by_group[group] += 1
        self._since_warning[1] += 1
        retry_after = 1.0 / self.per_second
        raise CozeQuotaError(
            f"the outgoing Coze quota ({self.describe()}) had no free slot within {self.max_wait:g} s, so the "
            f"call was not sent (to stay clear of Coze's rate limit, 4013); try again in {retry_after:.1f} s, "
            "or raise the quota if your Coze plan allows more",
            retry_after=retry_after,
        )

    def _maybe_warn(self) -> None:
        """Log that calls queue, unless that was said less than ``warn_every`` seconds ago."""
        now, previous = self._clock(), self._warned_at
        if previous is not None and now - previous < self._warn_every:
            return
        waited, refused = self._since_warning
        self._warned_at, self._since_warning = now, [0, 0]
        log.warning(
            "the outgoing Coze quota (%s) is full: calls are waiting for a slot (%d waited and %d were refused "
            "unsent %s; %d and %d in all). Traffic is at the quota: above it Coze would refuse calls with 4013. "
            "Raise coze_quota_per_second if your Coze plan allows more", self.describe(), waited, refused,
            "since start" if previous is None else f"in the last {now - previous:.0f} s",
            self.waited, self.refused,
        )

    def snapshot(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "per_second": self.per_second,
            "burst": self.burst,
            "max_wait": self.max_wait,
            "waited": self.waited,
            "refused": self.refused,
            "waiting": self.waiting,
            "wait_seconds": round(self.wait_seconds, 3),
            "waited_by_group": dict(self.waited_by_group),
            "refused_by_group": dict(self.refused_by_group),
        }
