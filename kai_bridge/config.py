"""Settings: read once at the edge, validated, frozen.

Sources, lowest to highest precedence: defaults, an optional TOML file (``--config`` or
``KAI_BRIDGE_CONFIG``), environment variables ``KAI_BRIDGE_<FIELD>`` (upper case), and
explicit overrides (CLI flags). Nothing else in the package reads the environment.

State and logs go to per-user folders unless ``data_dir`` / ``log_dir`` say otherwise
(``platformdirs``: on Linux ``$XDG_DATA_HOME/kai-bridge`` and ``$XDG_STATE_HOME/kai-bridge/log``,
by default ``~/.local/share/kai-bridge`` and ``~/.local/state/kai-bridge/log``), so a one-shot
command leaves nothing behind in the folder it runs from. A container sets both explicitly.

Two variables of OpenTelemetry's own are read too, because that is where operators set them:
``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_SERVICE_NAME`` fill ``otel_exporter_otlp_endpoint``
and ``otel_service_name`` (their ``KAI_BRIDGE_`` names win when both are set). Other ``OTEL_``
variables are not ours: they are neither read nor refused here (the OpenTelemetry SDK, when
installed and tracing is on, reads its own, e.g. the exporter's headers).

Errors are :class:`~kai_bridge.errors.ConfigError` with one line per problem, naming the
setting and never echoing a secret value.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from kai_bridge.errors import ConfigError
from kai_bridge.keys import fingerprint, load_private_key
from kai_bridge.urls import parse_authority_pattern, parse_origin_pattern, redact_url

__all__ = [
    "APP_NAME",
    "ENV_PREFIX",
    "OTEL_ENV",
    "Settings",
    "UpstreamConfig",
    "WebhookRoute",
    "check_host_resolves",
    "load_settings",
]

ENV_PREFIX = "KAI_BRIDGE_"
APP_NAME = "kai-bridge"
#: OpenTelemetry's standard variables read into settings (a KAI_BRIDGE_ variable of the field wins).
OTEL_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": "otel_exporter_otlp_endpoint", "OTEL_SERVICE_NAME": "otel_service_name"}
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _user_data_dir() -> Path:
    import platformdirs

    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def _user_log_dir() -> Path:
    import platformdirs

    return platformdirs.user_log_path(APP_NAME, appauthor=False)


def check_host_resolves(host: str, *, name: str) -> None:
    """ConfigError unless ``host`` is an address or a name this machine resolves (before any bind)."""
    try:
        socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(
            f"{name} {host!r} does not resolve ({reason}): use an address such as 127.0.0.1 (this machine only) "
            "or 0.0.0.0 (every interface), or a host name this machine can resolve"
        ) from None


def _check_http_url(value: str, *, name: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an http(s) URL such as https://api.coze.cn, got {redact_url(value)!r}")
    return value.rstrip("/")


def _check_base_url(value: str, *, name: str) -> str:
    """An http(s) base URL with nothing that could be a credential: no userinfo, query or fragment."""
    checked = _check_http_url(value, name=name)
    parts = urlsplit(checked)
    found = [
        label
        for label, present in (
            ("a user name or password", "@" in parts.netloc),
            ("a query string", bool(parts.query) or checked.endswith("?")),
            ("a fragment", bool(parts.fragment) or "#" in checked),
        )
        if present
    ]
    if found:
        raise ValueError(
            f"{name} must be a plain base URL such as https://api.coze.cn, but it has {' and '.join(found)} "
            f"in '{redact_url(checked)}': remove it; credentials go in coze_pat or the JWT settings "
            "(coze_app_id, coze_kid, coze_private_key_path)"
        )
    return checked


def _check_token(value: SecretStr | None, *, min_length: int = 0) -> SecretStr | None:
    """A bearer-style token: None when empty; refused with whitespace in it or too short.

    The messages never echo the value and start with short words: the error line is prefixed
    with the setting's name, and ``name: <long word>`` would itself be masked by the log scrubber.
    """
    if value is None or value.get_secret_value() == "":
        return None
    token = value.get_secret_value()
    if not token.strip():
        raise ValueError("the value is only whitespace: set a real token (e.g. `openssl rand -hex 32`) or leave it unset")
    if token != token.strip():
        raise ValueError(
            "the value starts or ends with whitespace (a stray space or newline?): remove it, "
            "clients send the token without it and would all be refused"
        )
    if any(char.isspace() or not char.isprintable() for char in token):
        raise ValueError("the value contains whitespace or control characters: a token is one word (e.g. hex)")
    if len(token) < min_length:
        raise ValueError(
            f"the value is too short: use at least {min_length} random characters (e.g. `openssl rand -hex 32`)"
        )
    return value


class UpstreamConfig(BaseModel):
    """One upstream KAI MCP server whose tools are proxied under ``<name>.``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    api_key: SecretStr | None = None
    timeout: float = Field(default=30.0, gt=0, le=3600)
    required: bool = False  # true: the bridge is not ready (/ready 503) while this upstream is down

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_token(value)

    @model_validator(mode="after")
    def _one_transport(self) -> UpstreamConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"upstream {self.name!r} needs exactly one of 'command' (stdio) or 'url' (HTTP)")
        if self.command is not None and not self.command:
            raise ValueError(f"upstream {self.name!r}: 'command' must not be empty")
        if self.url is not None:
            _check_http_url(self.url, name=f"upstream {self.name!r} url")
        return self


class WebhookRoute(BaseModel):
    """An event route: webhook events of ``event_type`` (matching ``match``) call registry ``tool``.

    ``event_type`` is an exact type or a glob (``bot.*``, ``*``). ``match`` maps a field path
    (``event.bot_id``, ``data.conversation_id``) to the value it must have. ``arguments`` are
    the tool's arguments: literal JSON, where a string ``"${path}"`` is replaced by the value at
    that path and ``${path}`` inside a longer string by its text (README "Event routes").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    event_type: str = Field(min_length=1, max_length=128)
    match: dict[str, JsonValue] = Field(default_factory=dict)
    tool: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    arguments: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """The route's name, or ``<event_type>-><tool>`` when it has none."""
        return self.name or f"{self.event_type}->{self.tool}"


class Settings(BaseModel):
    """Every setting kai-bridge reads. Field ``x`` comes from env ``KAI_BRIDGE_X`` or TOML key ``x``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- state, logs (default: per-user folders, see the module docstring) ---
    data_dir: Path = Field(default_factory=_user_data_dir)
    log_dir: Path = Field(default_factory=_user_log_dir)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    debug: bool = False
    log_files: bool = True  # false: log to stderr only (containers, read-only file systems); log_dir unused

    # --- Coze ---
    coze_api_base: str = ""  # empty: no Coze configured -> the embedded sandbox is used
    coze_app_id: str | None = None
    coze_kid: str | None = None
    coze_private_key: SecretStr | None = None
    coze_private_key_path: Path | None = None
    coze_pat: SecretStr | None = None
    coze_bot_id: str | None = None
    coze_workspace_id: str | None = None
    coze_session_name: str | None = None
    coze_jwt_aud: str | None = None  # default: the API base's host[:port], as cozepy does
    coze_token_ttl: int = Field(default=900, ge=60, le=86399)
    coze_token_refresh_margin: float = Field(default=120.0, ge=0)
    coze_timeout: float = Field(default=30.0, gt=0)
    coze_connect_timeout: float = Field(default=5.0, gt=0)
    coze_max_connections: int = Field(default=100, ge=1)
    coze_max_keepalive: int = Field(default=20, ge=0)
    coze_max_retries: int = Field(default=3, ge=0, le=10)
    coze_backoff_base: float = Field(default=0.2, ge=0)
    coze_backoff_max: float = Field(default=5.0, ge=0)
    coze_breaker_failures: int = Field(default=5, ge=1)
    coze_breaker_reset: float = Field(default=1.0, gt=0)
    coze_poll_interval: float = Field(default=1.0, gt=0)
    coze_chat_timeout: float = Field(default=120.0, gt=0)
    # Outgoing quota (0 = none): calls wait up to coze_quota_max_wait for a slot, then fail unsent.
    coze_quota_per_second: float = Field(default=0.0, ge=0)
    coze_quota_burst: int | None = Field(default=None, ge=1)  # default: the per-second rate, at least 1
    coze_quota_max_wait: float = Field(default=2.0, ge=0, le=60)

    # --- HTTP server (/mcp + sidecar) ---
    server_host: str = "127.0.0.1"
    server_port: int = Field(default=8080, ge=0, le=65535)
    server_request_timeout: float = Field(default=30.0, gt=0, le=3600)  # a request must arrive whole within
    server_keep_alive_timeout: float = Field(default=5.0, ge=1, le=3600)  # idle keep-alive connections
    server_max_connections: int = Field(default=1000, ge=1)  # beyond it new requests get 503
    mcp_path: str = "/mcp"
    mcp_auth_token: SecretStr | None = None
    # More bearer tokens for /mcp, one per client: each gives its holder an identity of its own
    # (its own conversations, its own rate-limit bucket); mcp_auth_token is then optional.
    mcp_client_tokens: list[SecretStr] = Field(default_factory=list)
    # false (default): a caller's user_id names a conversation slot inside the caller's own
    # space; true: user_id is global, any caller may use (and read) any user's conversation.
    conversations_shared_user_ids: bool = False
    # seconds a conversation's one-chat-at-a-time lease lives unrenewed (renewed every third of it while a chat
    # runs): how long a crashed replica's conversations stay blocked before another replica may send
    conversation_lease: float = Field(default=30.0, ge=1, le=3600)
    mcp_allowed_hosts: list[str] = Field(default_factory=list)
    mcp_allowed_origins: list[str] = Field(default_factory=list)
    mcp_stateless: bool = False
    mcp_json_response: bool = False
    # Stateful /mcp sessions: at most this many open at once (503 past it); closed after this many
    # seconds without a request in flight or an open GET stream (clients then start a new one).
    mcp_max_sessions: int = Field(default=256, ge=1, le=100_000)
    mcp_session_idle_timeout: float = Field(default=600.0, gt=0, le=86_400)
    # Bearer token for the operator routes that show configuration (/diagnostics/*); required
    # there when serving beyond loopback (without it they answer 403).
    admin_token: SecretStr | None = None
    stdio_sidecar: bool = True
    stdio_sidecar_port: int = Field(default=8081, ge=0, le=65535)
    # Per-client token buckets on /mcp (0 = no limit); a client is its bearer identity, else its address.
    mcp_rate_limit_per_minute: float = Field(default=600.0, ge=0)
    mcp_rate_limit_burst: int = Field(default=100, ge=1)

    # --- Coze plugin face (/plugin/...) ---
    plugin_token: SecretStr | None = None  # Coze "Service" auth; none: the face works on loopback only
    plugin_token_header: str = "Authorization"  # noqa: S105  # a header name; "Authorization" takes "Bearer <token>"
    plugin_token_query: str = ""  # also accept ?<name>=<token> (off by default: URLs end up in proxy logs)
    plugin_public_url: str = ""  # the https URL Coze reaches this server at, for /plugin/openapi.yaml
    plugin_tools: list[str] = Field(default_factory=list)  # tools the face serves; empty: all
    plugin_wait: float = Field(default=15.0, gt=0, le=600)  # longest a plugin call is kept open
    plugin_rate_limit_per_minute: float = Field(default=60.0, ge=0)  # the seed's rate_limit block
    plugin_rate_limit_burst: int = Field(default=10, ge=1)

    # --- embedded / standalone sandbox ---
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=0, ge=0, le=65535)
    sandbox_admin: bool = False
    # Seconds between the streamed answer chunks of the embedded sandbox: Coze streams a reply
    # over seconds, and so does the sandbox by default (benchmarks and fast tests set 0).
    sandbox_stream_delay: float = Field(default=0.03, ge=0, le=5)

    # --- store ---
    store_url: str = ""  # empty: SQLite at <data_dir>/kai-bridge.db; or postgresql://...
    store_pool_min: int = Field(default=1, ge=0, le=1000)  # PostgreSQL connections kept open per process
    store_pool_max: int = Field(default=10, ge=1, le=1000)
    store_pool_timeout: float = Field(default=10.0, gt=0)  # wait for a free connection, then a store error
    store_statement_timeout: float = Field(default=10.0, ge=0)  # per statement, 0 = the server's default

    # --- tools ---
    knowledge_backend: Literal["local", "coze", "auto"] = "local"
    knowledge_bot_id: str | None = None
    tool_timeout: float = Field(default=30.0, gt=0)
    requires_action_max_rounds: int = Field(default=5, ge=1, le=50)
    upstreams: list[UpstreamConfig] = Field(default_factory=list)

    # --- observability ---
    health_check_interval: float = Field(default=15.0, ge=0)  # seconds between background checks; 0 = off
    otel_exporter_otlp_endpoint: str = ""  # OTLP/HTTP base URL (e.g. http://127.0.0.1:4318): traces on
    otel_service_name: str = "kai-bridge"

    # --- webhook door (POST /webhook/coze) ---
    webhook_verify_token: SecretStr | None = None  # the Coze callback app's verify token: signed callbacks
    webhook_token: SecretStr | None = None  # Authorization: Bearer <token> (the seed guide's senders)
    webhook_timestamp_tolerance: float = Field(default=300.0, gt=0, le=86400)
    webhook_max_attempts: int = Field(default=5, ge=1, le=100)
    webhook_backoff_base: float = Field(default=2.0, gt=0, le=3600)
    webhook_backoff_max: float = Field(default=300.0, gt=0, le=86400)
    webhook_lease: float = Field(default=60.0, ge=1, le=86400)
    webhook_dispatch: bool = True  # false: this process only stores events; another one dispatches them
    webhook_audit_status: Literal["none", "reviewing", "approved", "rejected"] = "none"
    webhook_audit_reason: str = Field(default="", max_length=1024)
    webhook_routes: list[WebhookRoute] = Field(default_factory=list)

    @field_validator("coze_api_base")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        return _check_base_url(value, name="coze_api_base") if value else value

    @field_validator("mcp_client_tokens")
    @classmethod
    def _client_tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        tokens = [checked for token in value if (checked := _check_token(token, min_length=16)) is not None]
        if len({t.get_secret_value() for t in tokens}) != len(tokens):
            raise ValueError("two entries are the same token: give each client a token of its own")
        return tokens

    @field_validator("mcp_auth_token", "coze_pat")
    @classmethod
    def _tokens(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_token(value)

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_token(value, min_length=16)

    @field_validator("mcp_allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                parse_authority_pattern(entry)
            except ValueError as exc:
                raise ValueError(
                    f"mcp_allowed_hosts entry {entry!r} is not host, host:port or host:* ({exc}), "
                    "e.g. mcp.example.com:443 or mcp.example.com:*"
                ) from None
        return value

    @field_validator("mcp_allowed_origins")
    @classmethod
    def _allowed_origins(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                parse_origin_pattern(entry)
            except ValueError as exc:
                raise ValueError(
                    f"mcp_allowed_origins entry {entry!r} is not scheme://host[:port] or scheme://host:* ({exc}), "
                    "e.g. https://app.example.com"
                ) from None
        return value

    @field_validator("coze_kid")
    @classmethod
    def _kid_format(cls, value: str | None) -> str | None:
        kid = (value or "").strip()
        if not kid:
            return None
        if not _HEX64.match(kid):
            shown = kid if len(kid) <= 80 else kid[:77] + "..."
            raise ValueError(
                f"coze_kid is not a 64-hex fingerprint (got {shown!r}): use the public key fingerprint shown in "
                "the Coze console, or the one 'kai-bridge keygen' printed (64 characters 0-9a-f)"
            )
        return kid

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(f"the OTLP endpoint must be an http(s) URL such as http://127.0.0.1:4318, got {value!r}")
        return value.rstrip("/")

    @field_validator("mcp_path")
    @classmethod
    def _mcp_path(cls, value: str) -> str:
        if not value.startswith("/") or (value.endswith("/") and value != "/"):
            raise ValueError("mcp_path must start with '/' and not end with '/', e.g. /mcp")
        return value

    @field_validator("webhook_verify_token", "webhook_token")
    @classmethod
    def _webhook_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_token(value)

    @field_validator("webhook_routes")
    @classmethod
    def _unique_routes(cls, value: list[WebhookRoute]) -> list[WebhookRoute]:
        labels = [route.label for route in value]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"webhook_routes: two routes are called {', '.join(repeated)}: give each a unique name")
        return value

    @field_validator("plugin_token")
    @classmethod
    def _plugin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        token = value.get_secret_value()
        if any(ch.isspace() for ch in token):
            raise ValueError("plugin_token must not contain whitespace (Coze sends the token verbatim)")
        if len(token) < 16:
            raise ValueError("plugin_token is too short: use at least 16 random characters (e.g. openssl rand -hex 32)")
        return value

    @field_validator("plugin_token_header")
    @classmethod
    def _plugin_token_header(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}", value):
            raise ValueError(f"plugin_token_header must be an HTTP header name such as Authorization or X-Api-Key, got {value!r}")
        return value

    @field_validator("plugin_token_query")
    @classmethod
    def _plugin_token_query(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
            raise ValueError(f"plugin_token_query must be empty or a parameter name of A-Z a-z 0-9 _ . -, got {value!r}")
        return value

    @field_validator("plugin_public_url")
    @classmethod
    def _plugin_public_url(cls, value: str) -> str:
        return _check_http_url(value, name="plugin_public_url") if value else value

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("store_url must be empty (SQLite in data_dir), sqlite:///path or postgresql://...")
        return value

    @model_validator(mode="after")
    def _coze_credentials(self) -> Settings:
        if self.coze_app_id and self.coze_pat:
            raise ValueError("set either coze_app_id (JWT OAuth) or coze_pat (personal access token), not both")
        if self.coze_app_id:
            if not self.coze_kid:
                raise ValueError(
                    "coze_kid is missing: set it to the public key fingerprint shown in the Coze console "
                    "(or printed by 'kai-bridge keygen')"
                )
            if self.coze_private_key is None and self.coze_private_key_path is None:
                raise ValueError("coze_app_id is set but no private key: set coze_private_key_path (or coze_private_key)")
            if self.coze_private_key is not None and self.coze_private_key_path is not None:
                raise ValueError("set coze_private_key or coze_private_key_path, not both")
        if (self.coze_app_id or self.coze_pat) and not self.coze_api_base:
            raise ValueError(
                "Coze credentials are set but coze_api_base is empty: use https://api.coze.cn (China) "
                "or https://api.coze.com (international); tokens of one region fail on the other"
            )
        return self

    # ---- derived -------------------------------------------------------------------------
    @property
    def uses_sandbox(self) -> bool:
        """No Coze credentials at all: kai-bridge runs its embedded sandbox as the upstream."""
        return not (self.coze_app_id or self.coze_pat)

    @property
    def auth_mode(self) -> Literal["jwt", "pat", "sandbox"]:
        if self.coze_app_id:
            return "jwt"
        if self.coze_pat:
            return "pat"
        return "sandbox"

    def private_key_pem(self) -> bytes:
        """The PEM bytes of the JWT private key, read now (raises ConfigError if unreadable)."""
        if self.coze_private_key is not None:
            return self.coze_private_key.get_secret_value().replace("\\n", "\n").encode()
        if self.coze_private_key_path is None:
            raise ConfigError("no Coze private key configured (coze_private_key_path)")
        try:
            return self.coze_private_key_path.expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"coze_private_key_path: cannot read {self.coze_private_key_path} ({exc.strerror or exc})"
            ) from exc

    def effective_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.data_dir / 'kai-bridge.db').as_posix()}"

    def validate_runtime(self) -> None:
        """Checks that need the file system: the key is readable, parseable and matches the kid."""
        if self.coze_app_id:
            source = "coze_private_key" if self.coze_private_key is not None else str(self.coze_private_key_path)
            key = load_private_key(self.private_key_pem(), source=source)
            kid = self.coze_kid or ""
            actual = fingerprint(key.public_key())
            if kid.lower() != actual:
                raise ConfigError(
                    f"coze_kid does not match the private key: the key's public fingerprint is {actual}. "
                    "Use the kid of this key pair (Coze console: the public key's fingerprint)"
                )


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _env_value(name: str, raw: str) -> Any:
    """Turn an environment string into what the field expects (lists as JSON or comma-separated)."""
    field = Settings.model_fields[name]
    annotation = str(field.annotation)
    if name in ("upstreams", "webhook_routes"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a JSON list of objects: {exc.msg}") from exc
    if annotation.startswith("list["):
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                return json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} is not valid JSON: {exc.msg}") from exc
        return [item.strip() for item in stripped.split(",") if item.strip()]
    if field.annotation is bool:
        lowered = raw.strip().lower()
        if lowered not in _BOOL:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be true or false, got {raw!r}")
        return _BOOL[lowered]
    return raw


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "invalid kai-bridge settings:\n" + "\n".join(lines)


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    check_files: bool = True,
) -> Settings:
    """Build the frozen settings from a TOML file, the environment and explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (Path(env[f"{ENV_PREFIX}CONFIG"]) if env.get(f"{ENV_PREFIX}CONFIG") else None)
    if path is not None:
        try:
            with path.expanduser().open("rb") as fh:
                values.update(tomllib.load(fh))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    for key, name in OTEL_ENV.items():
        if env.get(key):
            values[name] = env[key]
    unknown = []
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == f"{ENV_PREFIX}CONFIG":
            continue
        name = key.removeprefix(ENV_PREFIX).lower()
        if name not in Settings.model_fields:
            unknown.append(key)
            continue
        values[name] = _env_value(name, raw)
    if unknown:
        raise ConfigError(
            "unknown kai-bridge environment variable(s): " + ", ".join(sorted(unknown))
            + " (see README 'Configuration' for the names)"
        )
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
    if check_files:
        settings.validate_runtime()
    return settings
