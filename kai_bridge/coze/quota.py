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
"""

from __future__ import annotations

import math

import anyio
from aiolimiter import AsyncLimiter

from kai_bridge.errors import CozeQuotaError

__all__ = ["RequestQuota"]


class RequestQuota:
    """``per_second`` requests a second with bursts of ``burst``; a caller waits at most ``max_wait``."""

    def __init__(self, *, per_second: float, burst: int | None = None, max_wait: float = 2.0) -> None:
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
        self.refused = 0
        self.waited = 0

    @classmethod
    def configured(cls, *, per_second: float, burst: int | None, max_wait: float) -> RequestQuota | None:
        """A quota, or None when ``per_second`` is 0 (no quota configured)."""
        return cls(per_second=per_second, burst=burst, max_wait=max_wait) if per_second > 0 else None

    def describe(self) -> str:
        return f"{self.per_second:g} requests/s, bursts of {self.burst}"

    async def acquire(self) -> None:
        """Take a slot, waiting up to ``max_wait``; raises CozeQuotaError (nothing sent) when none came."""
        if self._limiter.has_capacity():
            await self._limiter.acquire()
            return
        self.waited += 1
        with anyio.move_on_after(self.max_wait):
            await self._limiter.acquire()
            return
        self.refused += 1
        retry_after = 1.0 / self.per_second
        raise CozeQuotaError(
            f"the outgoing Coze quota ({self.describe()}) had no free slot within {self.max_wait:g} s, so the "
            f"call was not sent (to stay clear of Coze's rate limit, 4013); try again in {retry_after:.1f} s, "
            "or raise the quota if your Coze plan allows more",
            retry_after=retry_after,
        )

    def snapshot(self) -> dict[str, float | int]:
        return {
            "per_second": self.per_second,
            "burst": self.burst,
            "max_wait": self.max_wait,
            "waited": self.waited,
            "refused": self.refused,
        }
