"""Counters a sandbox keeps about itself, readable in-process and through ``GET /_sandbox/state``.

Tests use them to prove behaviour that is otherwise invisible to a client (for example that a
cached JWT token led to exactly one token exchange for several API calls).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SandboxState"]


@dataclass(slots=True)
class SandboxState:
    """Live counters; mutated only from the event loop that serves the sandbox."""

    token_exchanges: int = 0
    tokens_issued: int = 0
    token_failures: Counter[str] = field(default_factory=Counter)
    token_kids: Counter[str] = field(default_factory=Counter)  # tokens issued, by the kid that signed the JWT
    last_token_kid: str | None = None  # the kid of the JWT behind the most recent token issued
    requests: Counter[str] = field(default_factory=Counter)
    auth_failures: int = 0
    api_errors: Counter[str] = field(default_factory=Counter)  # error answers of the API routes, by Coze code
    chats_created: int = 0
    chats_completed: int = 0
    chats_failed: int = 0
    tool_outputs_submitted: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)
    callback_attempts: int = 0
    callbacks_delivered: int = 0
    callbacks_failed: int = 0

    @property
    def requests_total(self) -> int:
        return sum(self.requests.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            "token_exchanges": self.token_exchanges,
            "tokens_issued": self.tokens_issued,
            "token_failures": dict(self.token_failures),
            "token_kids": dict(self.token_kids),
            "last_token_kid": self.last_token_kid,
            "requests_total": self.requests_total,
            "requests": dict(self.requests),
            "auth_failures": self.auth_failures,
            "api_errors": dict(self.api_errors),
            "chats_created": self.chats_created,
            "chats_completed": self.chats_completed,
            "chats_failed": self.chats_failed,
            "tool_outputs_submitted": self.tool_outputs_submitted,
            "faults_injected": dict(self.faults_injected),
            "callback_attempts": self.callback_attempts,
            "callbacks_delivered": self.callbacks_delivered,
            "callbacks_failed": self.callbacks_failed,
        }
