"""JWT OAuth token exchange and Bearer checks, as Coze does them (as far as they are known).

The token endpoint verifies an RS256 JWT against the public key registered under its ``kid``,
checks ``iss``/``aud``/``iat``/``exp``, allows each ``jti`` once, and answers the flat OAuth
shape. Every other route accepts an issued, unexpired ``czs_`` token or a configured PAT.
Public keys are parsed once at start-up so a verification costs one RSA signature check.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kai_bridge.sandbox.config import SandboxConfig, public_key_kid
from kai_bridge.sandbox.wire import ApiError

__all__ = ["JWT_BEARER_GRANT", "AuthService", "Grant", "OAuthError", "Principal"]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_DURATION_SECONDS = 86399
DEFAULT_DURATION_SECONDS = 900
TOKEN_PREFIX = "czs_"  # noqa: S105 - a public prefix, not a secret
_PURGE_EVERY = 1024

AUTH_INVALID_MSG = "authentication is invalid"
TOKEN_INCORRECT_MSG = (
    "The token you entered is incorrect. Please double-check and try again. "  # noqa: S105
    "(sandbox: send an access token issued by this sandbox or a configured PAT)"
)


class OAuthError(Exception):
    """An OAuth-style failure of the token endpoint: flat ``{error_code, error_message, error}``."""

    def __init__(self, error_code: str, message: str, *, status: int) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "error_message": self.message, "error": self.error_code}


def _invalid_jwt(reason: str) -> OAuthError:
    return OAuthError("invalid_client", f"invalid jwt: {reason}", status=401)


def _invalid_request(reason: str) -> OAuthError:
    return OAuthError("invalid_request", f"invalid request: {reason}", status=400)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an issued token (``app_id`` set) or a PAT (``app_id`` None)."""

    kind: str  # "oauth" | "pat"
    app_id: str | None
    session_name: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """An answered exchange: the flat OAuth body, and the kid of the JWT it was granted for (public)."""

    body: dict[str, Any]
    kid: str


@dataclass(frozen=True, slots=True)
class _IssuedToken:
    app_id: str
    expires_at: int
    session_name: str | None


@dataclass(frozen=True, slots=True)
class _RegisteredKey:
    app_id: str
    key: rsa.RSAPublicKey


class AuthService:
    """Holds the registered keys, the used ``jti`` set, issued tokens and PATs."""

    def __init__(self, *, config: SandboxConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._keys: dict[str, _RegisteredKey] = {}
        for app_id, pem in config.apps:
            raw = pem.encode() if isinstance(pem, str) else pem
            key = serialization.load_pem_public_key(raw)
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError(f"the public key registered for app {app_id} is not an RSA key")
            self._keys[public_key_kid(raw)] = _RegisteredKey(app_id=app_id, key=key)
        self._pats = tuple(p.encode() for p in config.pats)
        self._used_jtis: dict[str, float] = {}
        self._tokens: dict[str, _IssuedToken] = {}
        self._inserts = 0

    @property
    def kids(self) -> dict[str, str]:
        """``kid -> app_id`` of every registered key (public information)."""
        return {kid: reg.app_id for kid, reg in self._keys.items()}

    # --- token endpoint -------------------------------------------------------------------

    def exchange(self, *, authorization: str | None, body: Any, host: str) -> Grant:
        """Validate the grant body and the JWT; return the flat token response or raise OAuthError.

        With ``token_max_seconds`` configured a token lives at most that long, whatever was asked
        (a drill knob: tokens that expire within seconds show a key rotation draining)."""
        if not isinstance(body, Mapping):
            raise _invalid_request("the body must be a JSON object")
        grant_type = body.get("grant_type")
        if grant_type != JWT_BEARER_GRANT:
            raise OAuthError("unsupported_grant_type", f"not supported grant type: {grant_type}", status=400)
        duration = body.get("duration_seconds", DEFAULT_DURATION_SECONDS)
        if duration is None:
            duration = DEFAULT_DURATION_SECONDS
        if isinstance(duration, bool) or not isinstance(duration, int):
            raise _invalid_request("duration_seconds must be an integer number of seconds")
        if not 1 <= duration <= MAX_DURATION_SECONDS:
            raise _invalid_request(f"duration_seconds must be between 1 and {MAX_DURATION_SECONDS}")
        scope = body.get("scope")
        if scope is not None and not isinstance(scope, Mapping):
            raise _invalid_request("scope must be an object or null")

        token = _bearer(authorization)
        if not token:
            raise _invalid_jwt("missing JWT: send it as 'Authorization: Bearer <jwt>'")
        app_id, session_name, kid = self._verify_jwt(token, host=host)
        if self._config.token_max_seconds is not None:
            duration = min(duration, self._config.token_max_seconds)

        now = int(self._clock())
        access_token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = now + duration
        self._tokens[access_token] = _IssuedToken(app_id, expires_at, session_name)
        self._note_insert()
        return Grant(body={"access_token": access_token, "expires_in": expires_at, "token_type": "Bearer"}, kid=kid)

    def _verify_jwt(self, token: str, *, host: str) -> tuple[str, str | None, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _invalid_jwt("the token is not a well-formed JWT") from exc
        if header.get("alg") != "RS256":
            raise _invalid_jwt("alg must be RS256")
        kid = header.get("kid")
        registered = self._keys.get(kid) if isinstance(kid, str) else None
        if registered is None or not isinstance(kid, str):
            # The real service's wording, typo included.
            raise _invalid_jwt("kid not been registred")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                registered.key,
                algorithms=["RS256"],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise _invalid_jwt(
                "signature verification failed (was it signed with the private key of this kid?)"
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise _invalid_jwt("the token could not be decoded") from exc
        self._check_claims(claims, app_id=registered.app_id, host=host)
        session = claims.get("session_name")
        return registered.app_id, session if isinstance(session, str) else None, kid

    def _check_claims(self, claims: Mapping[str, Any], *, app_id: str, host: str) -> None:
        skew = self._config.clock_skew_seconds
        now = self._clock()
        if claims.get("iss") != app_id:
            raise _invalid_jwt("iss must be the id of the OAuth app that owns this kid")
        expected_aud = self._config.audience or host
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if expected_aud not in auds:
            raise _invalid_jwt(f"aud must be {expected_aud!r}")
        iat, exp = _number(claims.get("iat")), _number(claims.get("exp"))
        if iat is None or exp is None:
            raise _invalid_jwt("iat and exp are required numeric claims")
        if iat > now + skew:
            raise _invalid_jwt("iat is in the future (check the clock)")
        if exp <= iat:
            raise _invalid_jwt("exp must be later than iat")
        if exp - iat > self._config.max_jwt_lifetime_seconds:
            raise _invalid_jwt(f"exp - iat must be at most {self._config.max_jwt_lifetime_seconds} seconds")
        if exp + skew <= now:
            raise _invalid_jwt("the JWT has expired (exp is in the past)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _invalid_jwt("jti is required")
        used_until = self._used_jtis.get(jti)
        if used_until is not None and used_until > now:
            raise _invalid_jwt("jti has already been used (a JWT can be used only once)")
        self._used_jtis[jti] = exp + skew
        self._note_insert()

    def _note_insert(self) -> None:
        self._inserts += 1
        if self._inserts % _PURGE_EVERY == 0:
            now = self._clock()
            self._used_jtis = {j: t for j, t in self._used_jtis.items() if t > now}
            self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}

    # --- API routes -----------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller of an API route, or ApiError 4100 (401) / 4101 (403)."""
        token = _bearer(authorization)
        if not token:
            raise ApiError(4100, AUTH_INVALID_MSG)
        issued = self._tokens.get(token)
        if issued is not None:
            if issued.expires_at <= self._clock():
                raise ApiError(4100, f"{AUTH_INVALID_MSG}: the access token has expired")
            return Principal(kind="oauth", app_id=issued.app_id, session_name=issued.session_name)
        raw = token.encode()
        for pat in self._pats:
            if hmac.compare_digest(raw, pat):
                return Principal(kind="pat", app_id=None)
        if token.startswith(TOKEN_PREFIX):
            # Shaped like one of ours but unknown (e.g. issued before a restart): re-authenticate.
            raise ApiError(4100, f"{AUTH_INVALID_MSG}: unknown or revoked access token")
        raise ApiError(4101, TOKEN_INCORRECT_MSG)

    def check_admin(self, authorization: str | None) -> None:
        expected = self._config.admin_token
        if expected is None:
            return
        token = _bearer(authorization)
        if not token or not hmac.compare_digest(token.encode(), expected.encode()):
            raise ApiError(4100, f"{AUTH_INVALID_MSG}: the admin routes need 'Authorization: Bearer <admin token>'")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        return ""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return value.strip()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
