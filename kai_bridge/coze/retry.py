"""When and how long to wait before trying a Coze call again.

Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"):
the n-th retry waits ``uniform(0, min(cap, base * 2**n))``, which spreads a crowd of clients
instead of letting them retry in lockstep. A server's ``Retry-After`` wins over the
computed delay, capped so that one odd header cannot park a request for an hour.

Which errors are worth a retry is decided here too (:func:`is_retryable`): rate limits,
Coze-side failures and transport errors. Whether the *call* may be repeated safely is the
caller's knowledge (``idempotent``), passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from kai_bridge.errors import CozeRateLimitError, CozeServerError, CozeTransportError

__all__ = ["RetryPolicy", "is_retryable"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt (0 disables retrying). The default is the
    service's (``Settings.coze_max_retries``), so a client built without wiring retries alike."""

    max_retries: int = 5
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    retry_after_max: float = 30.0

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(max_retries=0)

    def delay(
        self,
        *,
        retry: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.retry_after_max))
        ceiling = min(self.backoff_max, self.backoff_base * (2.0 ** min(retry, 32)))
        return rand() * ceiling


def is_retryable(exc: BaseException) -> bool:
    """Errors that may go away by themselves: 429/4013, 5xx/5000, and transport failures."""
    return isinstance(exc, CozeRateLimitError | CozeServerError | CozeTransportError)
