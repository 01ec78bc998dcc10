"""Per-client rate limits for the HTTP doors (``/mcp`` and the Coze plugin face): token buckets.

Each client (its bearer identity, its Coze connector user, else its address: the door decides)
has a bucket of ``burst`` tokens refilled at ``per_minute / 60`` a second; a request takes one
token or is refused with the seconds until the next one (``Retry-After``). Buckets live in
memory, per process (per replica), and at most ``max_clients`` of them: the least recently
seen client is forgotten first (an idle bucket is full again anyway).

Written here rather than taken from a library: a door needs, in one synchronous step, "admit or
tell me how long to wait" for an arbitrary key, with an injectable clock for tests and bounded
memory. ``aiolimiter`` (used for the outgoing Coze quota) waits instead of answering and has no
keys; ``limits`` has keys and reset times but no token bucket (fixed and moving windows only);
``pyrate-limiter`` 4 has a token bucket (GCRA) and keys, but its non-blocking ``try_acquire``
answers only True/False (the wait is a second ``waiting()`` call on the bucket), one bucket per
key comes from a factory that never forgets idle keys, and every call takes a threading lock.
The bucket below is those few lines, and costs about a microsecond a request.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "RateLimit",
    "RateLimitMiddleware",
    "TokenBuckets",
    "bearer_identity",
    "client_address",
    "mcp_client_key",
    "retry_after_header",
]

DEFAULT_MAX_CLIENTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``per_minute`` requests a minute per client with bursts of ``burst``; 0 per minute: no limit."""

    door: str
    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_minute >= 0 and math.isfinite(self.per_minute)):
            raise ValueError("per_minute must be a finite number >= 0 (0 turns the limit off)")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def describe(self) -> str:
        rate = f"{self.per_minute:g}"
        return f"{rate} requests per minute (burst {self.burst}) per client on the {self.door}"

    def message(self, *, retry_after: float) -> str:
        """What a refused client reads: the limit it hit and when to try again."""
        return f"rate limit exceeded: {self.describe()}; retry in {retry_after_header(retry_after)} s"


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1 (``Retry-After`` takes an integer)."""
    return str(max(1, math.ceil(seconds)))


class TokenBuckets:
    """One token bucket per client key (see the module docstring)."""

    __slots__ = ("_buckets", "_burst", "_clock", "_max_clients", "_rate", "limit")

    def __init__(
        self,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.limit = limit
        self._rate = limit.per_minute / 60.0  # tokens per second
        self._burst = float(limit.burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last refill time]

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when admitted, else the seconds until a token is back."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [self._burst, now]
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self._rate


def client_address(scope: Scope) -> str:
    """``addr:<host>`` of the peer (``addr:unknown`` when the server does not say)."""
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


def bearer_identity(credential: bytes | str) -> str:
    """A stable, secret-free name for a bearer credential: ``bearer:`` + 12 hex of its SHA-256."""
    raw = credential.encode() if isinstance(credential, str) else credential
    return "bearer:" + hashlib.sha256(raw).hexdigest()[:12]


def mcp_client_key(scope: Scope) -> str:
    """The MCP door's client: its bearer identity when it sent one, else its address."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credential = value.partition(b" ")
            if scheme.lower() == b"bearer" and credential.strip():
                return bearer_identity(credential.strip())
            break
    return client_address(scope)


class RateLimitMiddleware:
    """Pure ASGI: HTTP requests over their client's bucket get 429 with ``Retry-After`` and a JSON body.

    Put it inside the authentication middleware, so only accepted credentials name a client.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        buckets: TokenBuckets,
        key: Callable[[Scope], str] = mcp_client_key,
    ) -> None:
        self.app = app
        self._buckets = buckets
        self._key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wait = self._buckets.take(self._key(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        limit = self._buckets.limit
        body = json.dumps({"error": "rate_limited", "error_description": limit.message(retry_after=wait)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", retry_after_header(wait).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
