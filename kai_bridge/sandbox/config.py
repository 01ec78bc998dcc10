"""Configuration of the Coze-compatible sandbox: registered JWT apps, PATs, faults, pacing.

Frozen so one config can be shared by an app, its handle and the tests that built it. Secrets
(PATs, the admin token) are kept out of ``repr`` so a logged config never leaks them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:  # not at run time: a local `kai-bridge call` loads this module without the HTTP stack
    from kai_bridge.sandbox.plugins import PluginSource

__all__ = [
    "COFFEE_BOT_ID",
    "DEFAULT_WORKSPACE_ID",
    "PLUGIN_BOT_ID",
    "FaultRule",
    "RegisteredApp",
    "SandboxConfig",
    "public_key_kid",
]

# Stable, Coze-shaped (19-digit) ids so configs, docs and tests can name the bots directly.
COFFEE_BOT_ID = "7390000000000000001"
PLUGIN_BOT_ID = "7390000000000000002"
DEFAULT_WORKSPACE_ID = "7390000000000000100"


class RegisteredApp(NamedTuple):
    """A JWT OAuth app: its id (the JWT ``iss``) and one registered RSA public key (PEM)."""

    app_id: str
    public_key_pem: str | bytes


def public_key_kid(public_key_pem: str | bytes) -> str:
    """The key fingerprint Coze uses as ``kid``: SHA-256 hex of the DER SubjectPublicKeyInfo.

    Computed here on purpose (not imported from the client side) so the sandbox checks the
    client's recipe instead of sharing it.
    """
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the registered public key is not an RSA key; Coze JWT OAuth needs RS256")
    der = key.public_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return hashlib.sha256(der).hexdigest()


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Faults injected on the routes that ``route`` matches.

    ``route`` is a route name (``chat.create``), a glob over route names (``chat.*``), a path
    glob starting with ``/`` (``/v3/chat*``) or ``*`` for every API route. One random draw per
    request picks at most one of drop / rate limit / error (in that order of precedence);
    latency is added first in any case. ``times`` limits the rule to the next N matching
    requests, which makes "fail once, then succeed" tests deterministic. With
    ``error_after_effect`` an injected error replaces the answer *after* the route did its work
    (a gateway timing out while Coze goes on with the chat it started): a client that repeats
    such a call blindly does the work twice.
    """

    route: str = "*"
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    drop_rate: float = 0.0
    cut_stream_after_events: int | None = None
    fail_chat_rate: float = 0.0
    error_after_effect: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        if not self.route:
            raise ValueError("route must not be empty (use '*' for every route)")
        for name in ("error_rate", "rate_limit_rate", "drop_rate", "fail_chat_rate"):
            _check_rate(name, getattr(self, name))
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if not 500 <= self.error_status <= 599:
            raise ValueError("error_status must be a 5xx status")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.cut_stream_after_events is not None and self.cut_stream_after_events < 0:
            raise ValueError("cut_stream_after_events must be >= 0")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 when given")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from the admin route's JSON; ``route_pattern``/``route_name`` alias ``route``."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = "route" if key in ("route_pattern", "route_name") else key
            if name not in known:
                raise ValueError(f"unknown fault field {key!r}; known fields: {', '.join(sorted(known))}")
            if value is not None:
                values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything a sandbox instance needs; all fields have offline-friendly defaults.

    - ``apps``: JWT OAuth apps as ``(app_id, public_key_pem)`` pairs; the kid of each is the
      key's fingerprint (:func:`public_key_kid`).
    - ``pats``: personal access tokens accepted as Bearer tokens.
    - ``audience``: the JWT ``aud`` to require; ``None`` accepts the request's own ``Host``.
    - ``admin_enabled`` / ``admin_token``: the ``/_sandbox/*`` routes (off by default; when a
      token is set it must be sent as ``Authorization: Bearer <admin_token>``).
    - ``stream_chunk_delay``: seconds between streamed answer chunks (0 for tests).
    - ``seed``: seeds the fault dice so fault tests are deterministic.
    - ``callback_timeout`` / ``callback_retry_delays``: how long a callback app's URL has to
      answer (Coze: 3 s), and the pauses before each re-send of a delivery that failed.
    - ``plugins``: cloud plugins (OpenAPI files) imported at start, each with a bot that calls it;
      ``plugin_timeout``: how long a plugin call may take.
    - ``token_max_seconds``: issued access tokens live at most this long (None: as long as asked,
      up to Coze's 86399 s); drills use a few seconds to watch tokens expire and be refreshed.

    Several keys may be registered for one app id (a key rotation: the old and the new public
    key side by side); each is known by its own kid.
    """

    apps: Sequence[tuple[str, str | bytes]] = ()
    pats: Sequence[str] = field(default=(), repr=False)
    audience: str | None = None
    workspace_id: str = DEFAULT_WORKSPACE_ID
    admin_enabled: bool = False
    admin_token: str | None = field(default=None, repr=False)
    faults: Sequence[FaultRule] = ()
    stream_chunk_delay: float = 0.0
    stream_chunk_words: int = 2
    seed: int | None = None
    clock_skew_seconds: int = 60
    max_jwt_lifetime_seconds: int = 86400
    max_conversations: int = 10_000
    max_body_bytes: int = 4 * 1024 * 1024
    follow_up: bool = True
    callback_timeout: float = 3.0
    callback_retry_delays: Sequence[float] = (1.0, 5.0, 30.0)
    plugins: Sequence[PluginSource] = ()
    plugin_timeout: float = 60.0
    token_max_seconds: int | None = None

    def __post_init__(self) -> None:
        # Normalise to tuples so the frozen config is really immutable and hashable-ish.
        object.__setattr__(self, "apps", tuple(RegisteredApp(a[0], a[1]) for a in self.apps))
        object.__setattr__(self, "pats", tuple(self.pats))
        object.__setattr__(self, "faults", tuple(self.faults))
        object.__setattr__(self, "callback_retry_delays", tuple(float(d) for d in self.callback_retry_delays))
        if self.callback_timeout <= 0:
            raise ValueError("callback_timeout must be > 0")
        if any(d < 0 for d in self.callback_retry_delays):
            raise ValueError("callback_retry_delays must be >= 0")
        object.__setattr__(self, "plugins", tuple(self.plugins))
        if self.plugin_timeout <= 0:
            raise ValueError("plugin_timeout must be > 0")
        if self.token_max_seconds is not None and self.token_max_seconds < 1:
            raise ValueError("token_max_seconds must be at least 1 when given")
        if self.stream_chunk_delay < 0:
            raise ValueError("stream_chunk_delay must be >= 0")
        if self.stream_chunk_words < 1:
            raise ValueError("stream_chunk_words must be >= 1")
        if self.max_conversations < 1:
            raise ValueError("max_conversations must be >= 1")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        for app_id, _pem in self.apps:
            if not app_id:
                raise ValueError("a registered app needs a non-empty app id")
