"""Who may post to the webhook door: Coze's signed callbacks, or a sender holding the Bearer token.

Coze signs a callback with ``X-Coze-Signature`` = lowercase hex SHA-1 of ``X-Coze-Timestamp``
(milliseconds) + ``X-Coze-Nonce`` + the callback app's verify token + the raw body, and sends
no ``Authorization`` header. Other senders (the seed guide's step 5.2, KAI-side systems,
scripts) send ``Authorization: Bearer <webhook_token>``. Both comparisons run in constant time.

A signed request is refused when its timestamp is outside the tolerance window, or when its
nonce was already seen inside the window with a different body; an identical re-send (Coze
re-sends on a timeout) passes here and is recognised as a duplicate by the inbox. The nonce
memory is this process's (bounded, entries expire with the window): a signature already binds
nonce and body to the verify token, so the check is a second line, not the only one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Credential", "NonceCache", "Refusal", "Verifier", "coze_signature"]

Source = Literal["coze", "token"]

SIGNATURE_HEADER: Final = "x-coze-signature"
TIMESTAMP_HEADER: Final = "x-coze-timestamp"
NONCE_HEADER: Final = "x-coze-nonce"
_MAX_NONCE: Final = 256
_MAX_TIMESTAMP_DIGITS: Final = 16


def coze_signature(*, timestamp: str, nonce: str, token: str, body: bytes) -> str:
    """Coze's callback signature: lowercase hex SHA-1 of timestamp + nonce + verify token + raw body.

    Header values are taken as the bytes the sender put on the wire (HTTP header text is
    Latin-1 to Starlette), the token as UTF-8.
    """
    digest = hashlib.sha1(usedforsecurity=False)  # Coze's algorithm; SHA-1 is what it sends
    digest.update(timestamp.encode("latin-1", "replace"))
    digest.update(nonce.encode("latin-1", "replace"))
    digest.update(token.encode("utf-8"))
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Credential:
    """A request that proved who sent it: ``coze`` (valid signature) or ``token`` (Bearer)."""

    source: Source


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request that did not: ``reason`` is safe to send back (it never echoes a secret)."""

    reason: str


class NonceCache:
    """Nonces seen inside the window, with a digest of their body; bounded, oldest dropped first."""

    def __init__(self, *, window: float, max_entries: int = 100_000) -> None:
        self._window = window
        self._max = max_entries
        self._seen: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def admit(self, nonce: str, body_digest: bytes, *, now: float) -> bool:
        """False if ``nonce`` was seen inside the window with another body; otherwise remember it."""
        while self._seen:
            oldest, (_, expires) = next(iter(self._seen.items()))
            if expires > now and len(self._seen) < self._max:
                break
            del self._seen[oldest]
        known = self._seen.get(nonce)
        if known is not None and known[1] > now:
            return hmac.compare_digest(known[0], body_digest)
        self._seen.pop(nonce, None)  # re-inserted at the end: the order stays the order of expiry
        self._seen[nonce] = (body_digest, now + self._window)
        return True

    def __len__(self) -> int:
        return len(self._seen)


class Verifier:
    """Checks a request's credentials against the configured verify token and/or Bearer token."""

    def __init__(
        self,
        *,
        verify_token: str | None,
        bearer_token: str | None,
        tolerance: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verify_token = verify_token or None
        self._bearer = (bearer_token or "").encode("utf-8") or None
        self._tolerance = tolerance
        self._clock = clock
        self._nonces = NonceCache(window=2 * tolerance)

    @property
    def configured(self) -> bool:
        """Whether any way in is configured (without one the door answers 503, never open)."""
        return self._verify_token is not None or self._bearer is not None

    @property
    def modes(self) -> list[str]:
        """The ways in that are on (for diagnostics): ``coze-signature`` and/or ``bearer``."""
        return [name for name, on in (("coze-signature", self._verify_token), ("bearer", self._bearer)) if on]

    def check(self, headers: Mapping[str, str], body: bytes) -> Credential | Refusal:
        """The credential ``headers`` prove for ``body``, or why they prove none.

        ``headers`` must be case-insensitive (Starlette's) or use lower-case names.
        """
        signature = headers.get(SIGNATURE_HEADER)
        authorization = headers.get("authorization")
        signed = self._check_signature(signature, headers, body) if signature is not None else None
        if isinstance(signed, Credential):
            return signed
        # Coze never sends a Bearer token and Bearer senders do not sign, but a request with
        # both gets in on whichever is valid; the signature's reason wins when neither is.
        bearer = self._check_bearer(authorization) if authorization is not None else None
        if isinstance(bearer, Credential):
            return bearer
        if signed is not None:
            return signed
        if bearer is not None:
            return bearer
        return Refusal(
            "no credentials: Coze callbacks carry X-Coze-Signature, X-Coze-Timestamp and X-Coze-Nonce; "
            "other senders send Authorization: Bearer <webhook_token>"
        )

    def _check_signature(self, signature: str, headers: Mapping[str, str], body: bytes) -> Credential | Refusal:
        token = self._verify_token
        if token is None:
            return Refusal("this request is signed (X-Coze-Signature) but webhook_verify_token is not set here")
        timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        nonce = headers.get(NONCE_HEADER, "")
        if not timestamp.isdigit() or not timestamp.isascii() or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
            return Refusal("X-Coze-Timestamp must be the Unix time in milliseconds (digits only)")
        if not nonce or len(nonce) > _MAX_NONCE:
            return Refusal(f"X-Coze-Nonce must be 1 to {_MAX_NONCE} characters")
        now = self._clock()
        skew = abs(now - int(timestamp) / 1000.0)
        if skew > self._tolerance:
            return Refusal(
                f"X-Coze-Timestamp is {skew:.0f} s away from this server's clock (accepted: "
                f"{self._tolerance:g} s; webhook_timestamp_tolerance): a stale re-play, or a clock to fix"
            )
        expected = coze_signature(timestamp=timestamp, nonce=nonce, token=token, body=body).encode("ascii")
        presented = signature.strip().lower().encode("latin-1", "replace")
        if not hmac.compare_digest(expected, presented):
            return Refusal(
                "X-Coze-Signature does not match: is webhook_verify_token the verify token of this callback app?"
            )
        if not self._nonces.admit(nonce, hashlib.sha256(body).digest(), now=now):
            return Refusal("X-Coze-Nonce was already used with a different body inside the tolerance window")
        return Credential("coze")

    def _check_bearer(self, authorization: str) -> Credential | Refusal:
        expected = self._bearer
        if expected is None:
            return Refusal("an Authorization header was sent but webhook_token is not set here")
        scheme, _, credential = authorization.strip().partition(" ")
        presented = credential.strip().encode("latin-1", "replace")
        # compare_digest: the time taken does not reveal how much of the token matched.
        if scheme.lower() == "bearer" and hmac.compare_digest(presented, expected):
            return Credential("token")
        return Refusal("invalid bearer token" if scheme.lower() == "bearer" else "use Authorization: Bearer <token>")
