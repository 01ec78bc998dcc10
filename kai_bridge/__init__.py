"""kai-bridge: an MCP server that bridges KAI tools and Coze agents.

The public surface is small on purpose: the version, the settings loader and the error
tree. Everything else is reached through the ``kai-bridge`` command or the composition
root in :mod:`kai_bridge.runtime`.
"""

from __future__ import annotations

from kai_bridge.config import Settings, load_settings
from kai_bridge.errors import KaiBridgeError

__all__ = ["KaiBridgeError", "Settings", "__version__", "load_settings"]

__version__ = "0.1.0"
