"""What the observability routes and collectors read: the runtime's services, handed over by the root.

The root builds one :class:`Sources` once everything is open; nothing here knows the
settings or the runtime type itself, so this package sits below the root in the layering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from kai_bridge.coze import CozeClient
from kai_bridge.health import Health
from kai_bridge.tools import ToolRegistry

__all__ = ["SANDBOX_WARNING", "Mode", "Sources", "UpstreamView"]

Mode = Literal["live", "sandbox"]

SANDBOX_WARNING: Final = (
    "NOT CONNECTED TO COZE: the embedded sandbox answers as the Coze upstream (no Coze credentials are "
    "configured). Set coze_app_id/coze_kid/coze_private_key_path or coze_pat to use real Coze."
)


class UpstreamView(Protocol):
    """What is read of the upstream manager: one diagnostics dict per upstream KAI server."""

    def diagnostics(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources:
    version: str
    mode: Mode  # live: real Coze; sandbox: the embedded sandbox answers as Coze
    started_at: float  # Unix time the runtime started opening
    health: Health
    coze: CozeClient
    upstreams: UpstreamView  # the UpstreamManager
    registry: ToolRegistry
    store_kind: str  # "sqlite" | "postgresql"

    @property
    def warning(self) -> str | None:
        return SANDBOX_WARNING if self.mode == "sandbox" else None
