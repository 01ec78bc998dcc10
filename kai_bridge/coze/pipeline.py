"""The one path every Coze request takes; the resource methods in :mod:`.client` sit on top.

    circuit breaker ─► token (cached; single flight) ─► HTTP ─► envelope / error mapping
          ▲                                                              │
          └──── retry (jittered backoff) when the error is transient ◄───┘
                and repeating the call is safe; one re-auth on 401/4100

A call is repeated only when that cannot do something twice upstream: reads, cancel and
the token exchange may always be retried; a chat create, a stream or submit_tool_outputs
only when Coze provably did not start it (a connect error, where no byte was sent, or a
rate-limit refusal). Streams are read to their end after ``done`` (bounded) so that their
connection goes back to the pool.

Each attempt is reported to the attached :class:`~kai_bridge.coze.observer.CozeObserver`
(the pipeline's ``context`` name is its endpoint) and its logid noted on the log scope; a
call that finally fails is logged once, with its code and logid: at ERROR when Coze is down
or refuses the credential, at WARNING when Coze refused the request itself, at DEBUG when
the open breaker refused it (the breaker logs its own opening).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import httpx

from kai_bridge._version import __version__
from kai_bridge.coze.auth import TokenProvider
from kai_bridge.coze.breaker import CircuitBreaker
from kai_bridge.coze.envelope import Envelope, logid_of, parse_envelope
from kai_bridge.coze.events import chat_event_from_sse
from kai_bridge.coze.groups import api_group
from kai_bridge.coze.models import ChatEvent, ChatEventType
from kai_bridge.coze.observer import CozeObserver, CozeOutcome, outcome_code
from kai_bridge.coze.quota import RequestQuota
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.coze.streaming import SSEDecoder
from kai_bridge.errors import (
    CircuitOpenError,
    CozeAPIError,
    CozeAuthError,
    CozeError,
    CozeRateLimitError,
    CozeServerError,
    CozeTransportError,
)
from kai_bridge.logs import note_log_fields

__all__ = ["USER_AGENT", "CozePipeline", "build_http_client", "drop_none"]

log = logging.getLogger(__name__)

USER_AGENT = f"kai-bridge/{__version__} python/{sys.version_info.major}.{sys.version_info.minor}"

_T = TypeVar("_T")

# Errors that prove the request never reached Coze (no byte of it was sent), so even a
# non-idempotent call (chat create) may be sent again.
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

_STREAM_END: Final = frozenset(
    {
        ChatEventType.DONE,
        ChatEventType.ERROR,
        ChatEventType.CHAT_COMPLETED,
        ChatEventType.CHAT_FAILED,
        ChatEventType.CHAT_REQUIRES_ACTION,
    }
)
# After done, Coze ends the body at once; anything longer or slower is not worth waiting for.
_DRAIN_MAX_BYTES: Final = 64 * 1024
_DRAIN_TIMEOUT: Final = 0.5


def build_http_client(
    *,
    timeout: float = 30.0,
    connect_timeout: float = 5.0,
    max_connections: int = 100,
    max_keepalive: int = 20,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The one HTTP client for Coze (the seed guide's pool: 100 connections, 30 s)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive, keepalive_expiry=30.0
        ),
        headers={"User-Agent": USER_AGENT},
        transport=transport,
    )


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class CozePipeline:
    """Breaker, token, HTTP, envelope and retry for one Coze base URL (see the module docstring)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        auth: TokenProvider,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        quota: RequestQuota | None = None,
    ) -> None:
        self.quota = quota  # every request (each attempt) first waits for a slot of the outgoing quota
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self._sleep = sleep
        self._rand = rand
        #: Hears every attempt (metrics, traces); attached by the composition root.
        self.observer: CozeObserver | None = None
        self.counters: dict[str, int] = {
            "requests": 0,
            "retries": 0,
            "reauths": 0,
            "errors": 0,
            "streams": 0,
            "streams_cut": 0,
            "chat_creates_checked": 0,  # a chat create failed after sending: was it started?
            "chat_creates_resumed": 0,  # ... it was: followed instead of sent again
            "sends_followed": 0,  # a repeated send (send_key) found its earlier chat and followed it
        }

    # ---- policy ----------------------------------------------------------------------------
    def _headers(self, token: str, *, stream: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if stream:
            headers["Accept"] = "text/event-stream"
        return headers

    def _transport_error(self, exc: httpx.RequestError, context: str) -> CozeTransportError:
        # RequestError = transport failures (connect, timeouts, protocol) plus decoding errors.
        detail = str(exc)
        kind = type(exc).__name__
        return CozeTransportError(
            f"{context}: no answer from Coze at {self.base_url} ({kind}{': ' + detail if detail else ''})"
        )

    def _may_retry(self, exc: CozeError, *, idempotent: bool) -> bool:
        if isinstance(exc, CozeRateLimitError):
            return True  # refused before any work was done: safe whatever the call
        if isinstance(exc, CozeServerError):
            return idempotent
        if isinstance(exc, CozeTransportError):
            return idempotent or isinstance(exc.__cause__, _NOTHING_SENT)
        return False

    def _wants_reauth(self, exc: CozeAuthError, *, already: bool) -> bool:
        return (
            not already
            and self.auth.can_refresh
            and (exc.code == 4100 or (exc.code is None and exc.http_status == 401))
        )

    async def backoff(self, exc: CozeError, *, retry: int, context: str) -> None:
        """Wait before retry number ``retry`` (0-based) of a call that failed with ``exc``."""
        retry_after = exc.retry_after if isinstance(exc, CozeRateLimitError) else None
        delay = self.retry.delay(retry=retry, retry_after=retry_after, rand=self._rand)
        self.counters["retries"] += 1
        log.warning("%s: %s; retry %d/%d in %.2fs", context, type(exc).__name__, retry + 1,
                    self.retry.max_retries, delay)
        await self._sleep(delay)

    async def _authed(
        self, send: Callable[[str], Awaitable[_T]], *, idempotent: bool, context: str, retries: int | None = None
    ) -> _T:
        """Run ``send(token)`` behind the breaker: one re-mint on 401/4100, backoff where a repeat is safe.

        ``retries`` caps the repeats below the policy's ``max_retries`` (0: one try only).
        """
        budget = self.retry.max_retries if retries is None else min(retries, self.retry.max_retries)
        retry = 0
        reauthed = False
        while True:
            if self.quota is not None:
                await self.quota.acquire(group=api_group(context))  # CozeQuotaError: nothing was sent, so neither retried nor a failure
            token: str | None = None
            self.counters["requests"] += 1
            observer = self.observer
            done = observer.request_started(endpoint=context) if observer is not None else None
            generation: int | None = None
            try:
                generation = self.breaker.before_call()
                token = await self.auth.get_token()
                result = await send(token)
            except CozeAuthError as exc:
                if generation is not None:
                    self.breaker.record_outcome(generation, exc)
                _report(done, exc)
                if token is not None and self._wants_reauth(exc, already=reauthed):
                    reauthed = True
                    self.counters["reauths"] += 1
                    self.auth.invalidate(token)
                    log.info("%s: Coze refused the access token; retrying once with a new one", context)
                    continue
                self.counters["errors"] += 1
                _log_failure(exc, context)
                raise
            except CozeError as exc:
                # token is None: the failure came from the token provider, which already retried.
                retrying = token is not None and retry < budget and self._may_retry(exc, idempotent=idempotent)
                if generation is not None:  # None: the open breaker refused it, so no verdict
                    # A call counts once, by its last attempt: counting each attempt opened the
                    # breaker now and then on a Coze failing one request in five.
                    self.breaker.record_outcome(generation, exc, retrying=retrying)
                _report(done, exc)
                if not retrying:
                    self.counters["errors"] += 1
                    _log_failure(exc, context)
                    raise
                await self.backoff(exc, retry=retry, context=context)
                retry += 1
            except BaseException as exc:
                if generation is not None:
                    self.breaker.release(generation)
                _report(done, exc)
                raise
            else:
                self.breaker.record_success(generation)
                logid = _logid_of_result(result)
                if logid:
                    note_log_fields(logid=logid)
                if done is not None:
                    done(CozeOutcome(code=outcome_code(None), logid=logid, error=None))
                return result

    # ---- JSON calls ------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool,
        context: str,
        retries: int | None = None,
    ) -> Envelope:
        """One JSON request through the whole pipeline; the parsed envelope, or a CozeError."""
        url = self.base_url + path

        async def send(token: str) -> Envelope:
            try:
                response = await self.http.request(
                    method, url, params=drop_none(params or {}), json=body, headers=self._headers(token)
                )
            except httpx.RequestError as exc:
                raise self._transport_error(exc, context) from exc
            return parse_envelope(response, context=context)

        return await self._authed(send, idempotent=idempotent, context=context, retries=retries)

    # ---- streams ---------------------------------------------------------------------------
    async def _open_stream(self, *, path: str, params: Mapping[str, Any], body: Any, context: str) -> httpx.Response:
        url = self.base_url + path

        async def send(token: str) -> httpx.Response:
            request = self.http.build_request(
                "POST", url, params=drop_none(params), json=body, headers=self._headers(token, stream=True)
            )
            try:
                response = await self.http.send(request, stream=True)
            except httpx.RequestError as exc:
                raise self._transport_error(exc, context) from exc
            ctype = response.headers.get("content-type", "")
            if response.is_success and "event-stream" in ctype:
                return response
            try:
                await response.aread()
            except httpx.RequestError as exc:
                raise self._transport_error(exc, context) from exc
            finally:
                await response.aclose()
            parse_envelope(response, context=context)
            raise CozeAPIError(
                f"{context}: expected an event stream, Coze answered {ctype or 'no content type'}",
                http_status=response.status_code,
                logid=logid_of(response),
            )

        # A stream that got an answer may have started a chat: only refusals before any work
        # (429) or connect errors are repeated, hence idempotent=False.
        return await self._authed(send, idempotent=False, context=context)

    async def stream_events(
        self, *, path: str, params: Mapping[str, Any], body: Any, context: str
    ) -> AsyncGenerator[ChatEvent, None]:
        """The chat events of one SSE response, until ``done`` (CozeTransportError if it is cut)."""
        response = await self._open_stream(path=path, params=params, body=body, context=context)
        generation = self.breaker.generation  # a cut counts only if the breaker has not moved on since
        self.counters["streams"] += 1
        logid = logid_of(response)
        count = 0
        ended = False  # saw done, error or a terminal chat event
        decoder = SSEDecoder()
        chunks = response.aiter_bytes()
        try:
            while True:
                try:
                    chunk = await anext(chunks, None)
                except httpx.RequestError as exc:
                    if ended:
                        break  # the answer is whole; only the trailing done was lost
                    self.counters["streams_cut"] += 1
                    self.breaker.record_failure(generation)
                    cut = CozeTransportError(
                        f"{context}: the Coze stream was cut after {count} events ({type(exc).__name__})"
                    )
                    log.error("Coze stream %s cut: logid=%s: %s", context, logid or "-", cut)
                    raise cut from exc
                for sse in decoder.close() if chunk is None else decoder.feed(chunk):
                    event = chat_event_from_sse(sse, logid=logid)
                    count += 1
                    ended = ended or event.event in _STREAM_END
                    if event.event is ChatEventType.DONE:
                        # Read the body's end before handing over done (the reader may stop
                        # there): a response read to its end returns its connection to the
                        # pool, so the next chat skips a TCP (and TLS) handshake.
                        if chunk is not None:
                            await _finish_body(chunks)
                        yield event
                        return
                    yield event
                if chunk is None:
                    break
        finally:
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                await closer()
            await response.aclose()
        if not ended:
            self.counters["streams_cut"] += 1
            short = CozeTransportError(f"{context}: the Coze stream ended after {count} events before the chat finished")
            log.error("Coze stream %s cut: logid=%s: %s", context, logid or "-", short)
            raise short

    def diagnostics(self) -> dict[str, Any]:
        """State for /diagnostics/coze: no secrets (no token, key, JWT or PAT)."""
        return {
            "base_url": self.base_url,
            "auth": self.auth.diagnostics(),
            "breaker": self.breaker.snapshot(),
            "counters": dict(self.counters),
            "retry": {
                "max_retries": self.retry.max_retries,
                "backoff_base": self.retry.backoff_base,
                "backoff_max": self.retry.backoff_max,
            },
        }


def _logid_of_result(result: object) -> str | None:
    if isinstance(result, Envelope):
        return result.logid
    if isinstance(result, httpx.Response):
        return logid_of(result)
    return None


def _report(done: Callable[[CozeOutcome], None] | None, error: BaseException) -> None:
    logid = getattr(error, "logid", None)
    if isinstance(logid, str) and logid:
        note_log_fields(logid=logid)
    else:
        logid = None
    if done is not None:
        done(CozeOutcome(code=outcome_code(error), logid=logid, error=error))


def _log_failure(exc: CozeError, context: str) -> None:
    """One line for a call that failed for good (after any retries), with its code and logid."""
    if isinstance(exc, CircuitOpenError):
        level = logging.DEBUG  # fast failures: the breaker's opening was logged once, at ERROR
    elif isinstance(exc, CozeServerError | CozeTransportError | CozeAuthError):
        level = logging.ERROR
    else:
        level = logging.WARNING  # Coze is up and refused this request (bad input, not found, rate limit)
    logid = getattr(exc, "logid", None)
    log.log(level, "Coze call %s failed: code=%s logid=%s: %s", context, outcome_code(exc), logid or "-", exc)


async def _finish_body(chunks: AsyncIterator[bytes]) -> None:
    """Consume what is left of a stream after done; give up (the connection is then dropped)
    after ``_DRAIN_MAX_BYTES`` or ``_DRAIN_TIMEOUT`` seconds, or on a transport error."""
    seen = 0
    with contextlib.suppress(httpx.HTTPError, asyncio.TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT):
            async for chunk in chunks:
                seen += len(chunk)
                if seen > _DRAIN_MAX_BYTES:
                    return
