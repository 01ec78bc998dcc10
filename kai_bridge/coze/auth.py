"""Coze credentials: JWT OAuth (service app) and personal access tokens, behind one interface.

:class:`JWTAuth` signs a one-use RS256 JWT, exchanges it at
``/api/permission/oauth2/token`` for an access token, caches that token, and refreshes it
``refresh_margin`` seconds before it expires. However many tasks need a token at the same
moment, exactly one exchange runs (single flight); its failure reaches every waiter and the
next caller starts a new attempt. :meth:`TokenProvider.invalidate` drops a token the API
refused (401 / 4100) so that the client's one retry gets a fresh one.

Time: the token endpoint answers ``expires_in`` as an absolute Unix time. It is turned into
a remaining lifetime at receipt and tracked on the monotonic ``clock`` (injectable, so
tests jump hours without sleeping); JWT claims use ``wall_clock``.

Key rotation: :meth:`JWTAuth.rotate` hands over a new key pair (a new ``kid``) while the process
runs. The next JWT is signed with it; the access token already in hand (minted with the old
kid) keeps serving until it is refreshed or refused, so nothing waits and nothing fails during
the switch ("drain"). :meth:`PATAuth.rotate` swaps a personal access token the same way.

Secrets (the key, JWTs, tokens) never reach a log line, an error message or a repr.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from kai_bridge.coze.envelope import decode_json, logid_of, oauth_error, parse_envelope
from kai_bridge.coze.retry import RetryPolicy, is_retryable
from kai_bridge.errors import ConfigError, CozeAuthError, CozeRateLimitError, CozeTransportError

__all__ = [
    "GRANT_TYPE_JWT",
    "TOKEN_PATH",
    "JWTAuth",
    "PATAuth",
    "TokenProvider",
]

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/permission/oauth2/token"  # noqa: S105 (a URL path, not a secret)
GRANT_TYPE_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_TOKEN_TTL = 86399  # the endpoint's documented maximum duration_seconds


class TokenProvider(Protocol):
    """What the client needs from a credential: a bearer token, and a way to drop a bad one."""

    @property
    def mode(self) -> Literal["jwt", "pat"]: ...

    @property
    def can_refresh(self) -> bool:
        """True when :meth:`invalidate` followed by :meth:`get_token` can yield a different token."""
        ...

    async def get_token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...

    def diagnostics(self) -> dict[str, Any]: ...


class PATAuth:
    """A personal access token: static, nothing to refresh."""

    def __init__(self, *, token: str) -> None:
        if not token:
            raise ConfigError("the personal access token is empty (coze_pat)")
        self._token = token
        self.rotations = 0

    def holds(self, token: str) -> bool:
        """True when ``token`` is the one in use (compared in constant time)."""
        return secrets.compare_digest(token.encode(), self._token.encode())

    def rotate(self, *, token: str) -> bool:
        """Send ``token`` from the next request on; False (nothing done) when it is the current one."""
        if not token:
            raise ConfigError("the personal access token is empty (coze_pat)")
        if self.holds(token):
            return False
        self._token = token
        self.rotations += 1
        log.info("Coze personal access token replaced; the next request sends the new one")
        return True

    def __repr__(self) -> str:
        return "PATAuth(token=<redacted>)"

    @property
    def mode(self) -> Literal["jwt", "pat"]:
        return "pat"

    @property
    def can_refresh(self) -> bool:
        return False

    async def get_token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        # A refused PAT stays refused; there is nothing to fetch again.
        return None

    def diagnostics(self) -> dict[str, Any]:
        return {"mode": "pat", "rotations": self.rotations}


class _Cached:
    __slots__ = ("expires_at", "kid", "lifetime", "refresh_at", "token")

    def __init__(self, *, token: str, kid: str, expires_at: float, refresh_at: float, lifetime: float) -> None:
        self.token = token
        self.kid = kid  # the key pair whose JWT this token was exchanged for
        self.expires_at = expires_at  # on the monotonic clock
        self.refresh_at = refresh_at
        self.lifetime = lifetime


class JWTAuth:
    """JWT OAuth for a Coze service app: sign, exchange, cache, refresh early, single flight."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        app_id: str,
        kid: str,
        private_key: rsa.RSAPrivateKey,
        aud: str | None = None,
        ttl: int = 900,
        refresh_margin: float = 120.0,
        jwt_lifetime: int = 600,
        session_name: str | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not app_id or not kid:
            raise ConfigError("JWT OAuth needs coze_app_id and coze_kid")
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._kid = kid
        self._key = private_key
        self._aud = aud or urlsplit(self._base_url).netloc
        self._ttl = max(1, min(ttl, MAX_TOKEN_TTL))
        self._margin = max(0.0, refresh_margin)
        self._jwt_lifetime = jwt_lifetime
        self._session_name = session_name
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rand = rand
        self._cached: _Cached | None = None
        self._inflight: asyncio.Future[str] | None = None
        self.exchange_count = 0  # successful exchanges
        self.refresh_count = 0  # successful exchanges that replaced an earlier token (early, expired, refused)
        self.exchange_attempts = 0  # HTTP requests to the token endpoint
        self.last_error: str | None = None
        self.rotations = 0  # key pairs handed over with rotate()
        self._previous_kid: str | None = None

    def __repr__(self) -> str:
        return f"JWTAuth(base_url={self._base_url!r}, app_id={self._app_id!r}, kid={self._kid[:12]!r}...)"

    @property
    def mode(self) -> Literal["jwt", "pat"]:
        return "jwt"

    @property
    def can_refresh(self) -> bool:
        return True

    @property
    def aud(self) -> str:
        return self._aud

    @property
    def app_id(self) -> str:
        return self._app_id

    @property
    def kid(self) -> str:
        """The kid the next JWT is signed with (public: the key's fingerprint)."""
        return self._kid

    @property
    def token_kid(self) -> str | None:
        """The kid behind the access token in hand (None without one)."""
        cached = self._cached
        return None if cached is None else cached.kid

    @property
    def draining(self) -> bool:
        """True while the token in hand was minted with a key that has since been rotated out."""
        cached = self._cached
        return cached is not None and cached.kid != self._kid

    # ---- rotation --------------------------------------------------------------------------
    def rotate(self, *, kid: str, private_key: rsa.RSAPrivateKey) -> bool:
        """Sign every JWT from now on with this key pair; False (nothing done) when ``kid`` is the current one.

        The caller checks that ``kid`` belongs to ``private_key`` (the wiring does, from the
        settings). The token in hand is kept: it was minted with the old kid and serves until
        it is refreshed (early, on expiry, or when Coze refuses it), then the new key signs.
        An exchange already under way finishes with the old key.
        """
        if not kid:
            raise ConfigError("a key rotation needs the new key's kid (coze_kid)")
        if kid == self._kid:
            return False
        self._previous_kid, self._kid, self._key = self._kid, kid, private_key
        self.rotations += 1
        left = self.seconds_left()
        log.debug(
            "Coze JWT key rotated: kid %s... -> %s...; %s", self._previous_kid[:12], kid[:12],
            "the next token exchange signs with the new key" if left is None
            else f"the current token (old key) serves until its refresh, within {left:.0f} s",
        )
        return True

    # ---- JWT -----------------------------------------------------------------------------
    def sign_jwt(self, *, kid: str | None = None, private_key: rsa.RSAPrivateKey | None = None) -> str:
        """A fresh one-use JWT (new ``jti`` each time): Coze rejects a replayed one.

        Signed with the current key pair, or with ``kid`` + ``private_key`` (a candidate key, see
        :meth:`probe`)."""
        iat = int(self._wall_clock())
        claims: dict[str, Any] = {
            "iss": self._app_id,
            "aud": self._aud,
            "iat": iat,
            "exp": iat + self._jwt_lifetime,
            "jti": secrets.token_hex(32),
        }
        if self._session_name:
            claims["session_name"] = self._session_name
        if (kid is None) != (private_key is None):
            raise ValueError("give both kid and private_key, or neither")
        key, header_kid = (self._key, self._kid) if private_key is None or kid is None else (private_key, kid)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": header_kid, "typ": "JWT"})

    # ---- exchange --------------------------------------------------------------------------
    async def probe(self, *, kid: str, private_key: rsa.RSAPrivateKey) -> None:
        """One token exchange signed with a candidate key pair: returns if Coze accepts it, else raises.

        The token it gets is dropped and nothing here changes (the current key, the cached
        token, the counters): it answers "does Coze know this key?" before :meth:`rotate`.
        CozeAuthError when Coze refuses the JWT (kid not registered, wrong key), CozeError
        subclasses when Coze could not be asked. No retry: the caller decides what to do.
        """
        await self._exchange_once(kid=kid, private_key=private_key, counted=False)

    async def _exchange_once(
        self, *, kid: str | None = None, private_key: rsa.RSAPrivateKey | None = None, counted: bool = True
    ) -> tuple[str, float, str]:
        """One HTTP exchange. Returns (token, absolute expiry, the kid that signed) or raises a mapped error."""
        url = self._base_url + TOKEN_PATH
        body = {"grant_type": GRANT_TYPE_JWT, "duration_seconds": self._ttl}
        if counted:
            self.exchange_attempts += 1
        if kid is None or private_key is None:
            kid, signed = self._kid, self.sign_jwt()
        else:
            signed = self.sign_jwt(kid=kid, private_key=private_key)
        try:
            response = await self._http.post(
                url, json=body, headers={"Authorization": f"Bearer {signed}"}
            )
        except httpx.RequestError as exc:
            raise CozeTransportError(
                f"Coze token exchange at {self._base_url} failed: {type(exc).__name__}"
                + (f" ({exc})" if str(exc) else "")
            ) from None
        context = "Coze token exchange"
        payload = decode_json(response, context=context)
        if isinstance(payload, dict) and isinstance(payload.get("access_token"), str) and response.is_success:
            expires_in = payload.get("expires_in")
            if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
                raise CozeAuthError(
                    f"{context}: the answer has no numeric expires_in", logid=logid_of(response, payload)
                )
            return payload["access_token"], float(expires_in), kid
        if isinstance(payload, dict) and ("error_code" in payload or payload.get("error_message")):
            raise oauth_error(payload, response=response, context=context)
        # A {code,msg} envelope or an unexpected shape: let the generic mapper speak.
        parse_envelope(response, context=context)
        raise CozeAuthError(
            f"{context}: the answer carries no access_token",
            http_status=response.status_code,
            logid=logid_of(response, payload),
        )

    async def _exchange(self) -> str:
        """The exchange with retries for transient failures, each attempt with a new JWT."""
        retry = 0
        while True:
            try:
                token, expires_epoch, kid = await self._exchange_once()
            except Exception as exc:
                if not is_retryable(exc) or retry >= self._retry.max_retries:
                    self.last_error = str(exc)
                    raise
                retry_after = exc.retry_after if isinstance(exc, CozeRateLimitError) else None
                delay = self._retry.delay(retry=retry, retry_after=retry_after, rand=self._rand)
                log.warning("Coze token exchange failed (%s); retry %d in %.2fs", type(exc).__name__, retry + 1, delay)
                retry += 1
                await self._sleep(delay)
                continue
            now = self._clock()
            lifetime = max(0.0, expires_epoch - self._wall_clock())
            # Never let the margin eat more than half a token's life, or a short ttl would
            # make every call refresh.
            margin = min(self._margin, lifetime / 2)
            self._cached = _Cached(
                token=token, kid=kid, expires_at=now + lifetime, refresh_at=now + lifetime - margin, lifetime=lifetime
            )
            if self.exchange_count:
                self.refresh_count += 1
            self.exchange_count += 1
            self.last_error = None
            log.debug("Coze access token obtained, valid for %.0fs", lifetime)
            return token

    async def get_token(self) -> str:
        cached = self._cached
        now = self._clock()
        if cached is not None and now < cached.refresh_at:
            return cached.token
        if self._inflight is None:
            # Single flight: the first caller starts the exchange as a task, everyone awaits it.
            task = asyncio.ensure_future(self._exchange())
            self._inflight = task
            task.add_done_callback(self._exchange_done)
        inflight = self._inflight
        try:
            # shield: one impatient (cancelled) caller must not cancel the exchange for all.
            return await asyncio.shield(inflight)
        except Exception:
            if cached is not None and self._clock() < cached.expires_at and cached is self._cached:
                # The early refresh failed but the old token still has life in it: use it.
                log.warning("Coze token refresh failed; using the current token until it expires")
                return cached.token
            raise

    def _exchange_done(self, task: asyncio.Future[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here so an exchange nobody awaits any more is not "never retrieved"

    def invalidate(self, token: str) -> None:
        cached = self._cached
        if cached is not None and secrets.compare_digest(cached.token, token):
            self._cached = None
            log.info("Coze access token refused by the API; a new one will be fetched")

    async def refresh(self) -> str:
        """Force a new token now (the next get_token shares this exchange)."""
        self._cached = None
        return await self.get_token()

    def seconds_left(self) -> float | None:
        cached = self._cached
        return None if cached is None else max(0.0, cached.expires_at - self._clock())

    def token_age(self) -> float | None:
        """Seconds since the current token was obtained (None without one)."""
        cached = self._cached
        return None if cached is None else max(0.0, cached.lifetime - (cached.expires_at - self._clock()))

    def diagnostics(self) -> dict[str, Any]:
        left = self.seconds_left()
        age = self.token_age()
        return {
            "mode": "jwt",
            "app_id": self._app_id,
            "kid": self._kid[:12] + "...",
            "token_kid": None if self._cached is None else self._cached.kid[:12] + "...",
            "previous_kid": None if self._previous_kid is None else self._previous_kid[:12] + "...",
            "key_rotations": self.rotations,
            "draining": self.draining,
            "aud": self._aud,
            "token_ttl": self._ttl,
            "token_cached": self._cached is not None,
            "token_seconds_left": None if left is None else round(left, 1),
            "token_age_seconds": None if age is None else round(age, 1),
            "exchanges": self.exchange_count,
            "refreshes": self.refresh_count,
            "exchange_attempts": self.exchange_attempts,
            "last_error": self.last_error,
        }
