"""Upstream KAI MCP servers whose tools kai-bridge proxies under ``<name>.<tool>``."""

from __future__ import annotations

from kai_bridge.upstream.manager import UpstreamManager, UpstreamState

__all__ = ["UpstreamManager", "UpstreamState"]
