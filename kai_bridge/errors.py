"""The one exception tree of kai-bridge.

Every error the package raises on purpose derives from :class:`KaiBridgeError`. Messages are
written to be shown to a person or a model as they are: they never contain a secret (key,
token, JWT) and always say what to do next where that is known.

    KaiBridgeError
    ├── ConfigError                      settings that cannot work (bad key, missing kid, ...)
    ├── CozeError                        anything that went wrong talking to Coze
    │   ├── CozeTransportError           connection refused/reset, timeout, stream cut
    │   ├── CircuitOpenError             the breaker is open: upstream recently dead, failing fast
    │   ├── CozeQuotaError               our own outgoing quota is used up: the call was not sent
    │   └── CozeAPIError                 Coze answered with an error (carries code, msg, logid)
    │       ├── CozeAuthError            401 / 4100 / 4101 / token endpoint errors
    │       ├── CozeBadRequestError      4000 and other 4xx caller mistakes
    │       ├── CozeNotFoundError        4200 / 404
    │       ├── CozeConflictError        4016: the conversation already has a running chat
    │       ├── CozeRateLimitError       429 / 4013 (carries retry_after)
    │       └── CozeServerError          5xx / 5000
    ├── ChatError                        a chat that ran but did not end well
    │   ├── ChatFailedError              status failed / error event (carries last_error)
    │   ├── ChatTimeoutError             did not finish in time (was cancelled)
    │   └── ChatCanceledError            canceled by the caller
    ├── ToolError                        a tool call that cannot be done
    │   ├── ToolNotFoundError
    │   ├── ToolInputError               arguments do not match the input schema
    │   └── UpstreamToolError            an upstream KAI MCP server failed or timed out
    ├── KnowledgeError                   the knowledge base could not be loaded/queried
    └── StoreError                       the state store failed
"""

from __future__ import annotations

__all__ = [
    "ChatCanceledError",
    "ChatError",
    "ChatFailedError",
    "ChatTimeoutError",
    "CircuitOpenError",
    "ConfigError",
    "CozeAPIError",
    "CozeAuthError",
    "CozeBadRequestError",
    "CozeConflictError",
    "CozeError",
    "CozeNotFoundError",
    "CozeQuotaError",
    "CozeRateLimitError",
    "CozeServerError",
    "CozeTransportError",
    "KaiBridgeError",
    "KnowledgeError",
    "StoreError",
    "ToolError",
    "ToolInputError",
    "ToolNotFoundError",
    "UpstreamToolError",
]


class KaiBridgeError(Exception):
    """Root of every error kai-bridge raises on purpose. ``str(err)`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(KaiBridgeError):
    """The settings cannot work; the message names the setting and the fix."""


class CozeError(KaiBridgeError):
    """Something went wrong talking to the Coze API."""


class CozeTransportError(CozeError):
    """The request did not get an answer: connection error, timeout, or a stream cut mid-way."""


class CircuitOpenError(CozeError):
    """The circuit breaker is open: the upstream failed repeatedly, calls fail fast until a probe passes."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CozeQuotaError(CozeError):
    """The configured outgoing Coze quota had no slot within the wait: the call was not sent at all."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CozeAPIError(CozeError):
    """Coze answered with an error. ``code``/``msg`` are Coze's, ``logid`` is for Coze support."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        msg: str = "",
        logid: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.msg = msg
        self.logid = logid
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.logid:
            parts.append(f"logid={self.logid}")
        return " ".join(parts) if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"


class CozeAuthError(CozeAPIError):
    """Authentication failed (401, codes 4100/4101, or an OAuth error from the token endpoint)."""


class CozeBadRequestError(CozeAPIError):
    """The request was refused as invalid (4000 and other caller mistakes)."""


class CozeNotFoundError(CozeAPIError):
    """The resource does not exist (4200 / 404)."""


class CozeConflictError(CozeAPIError):
    """The conversation already has a chat in progress (4016)."""


class CozeRateLimitError(CozeAPIError):
    """Rate limited (429 / 4013). ``retry_after`` is in seconds when the server said."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        msg: str = "",
        logid: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, msg=msg, logid=logid, http_status=http_status)
        self.retry_after = retry_after


class CozeServerError(CozeAPIError):
    """Coze failed on its side (5xx / 5000); safe calls are retried."""


class ChatError(KaiBridgeError):
    """A chat ran but did not complete."""

    def __init__(
        self,
        message: str,
        *,
        chat_id: str | None = None,
        conversation_id: str | None = None,
        code: int | None = None,
        logid: str | None = None,
    ) -> None:
        super().__init__(message)
        self.chat_id = chat_id
        self.conversation_id = conversation_id
        self.code = code
        self.logid = logid


class ChatFailedError(ChatError):
    """The chat ended in status ``failed`` or the stream sent an ``error`` event."""


class ChatTimeoutError(ChatError):
    """The chat did not finish within the allowed time."""


class ChatCanceledError(ChatError):
    """The chat was canceled."""


class ToolError(KaiBridgeError):
    """A tool call could not be done; the message is for the model that called it."""


class ToolNotFoundError(ToolError):
    """No tool of that name is registered."""


class ToolInputError(ToolError):
    """The arguments do not match the tool's input schema."""


class UpstreamToolError(ToolError):
    """An upstream KAI MCP server failed, timed out or is not connected."""


class KnowledgeError(KaiBridgeError):
    """The knowledge base could not be loaded or queried."""


class StoreError(KaiBridgeError):
    """The state store failed."""
