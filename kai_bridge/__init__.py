"""kai-bridge: an MCP server that bridges KAI tools and Coze agents.

The public surface is small on purpose: the version, the settings loader and the error
tree. Everything else is reached through the ``kai-bridge`` command or the composition
root in :mod:`kai_bridge.runtime`.

``__version__`` is written once, in ``kai_bridge/_version.py`` (pyproject.toml reads it from
there; modules deep in the package import it from there without loading this package's names). The other names are imported on first use, so ``import kai_bridge`` (and with it
``kai-bridge --help``) does not pay for pydantic and the settings model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kai_bridge.config import Settings, load_settings
    from kai_bridge.errors import KaiBridgeError

__all__ = ["KaiBridgeError", "Settings", "__version__", "load_settings"]

from kai_bridge._version import __version__

_LAZY = {"Settings": "kai_bridge.config", "load_settings": "kai_bridge.config", "KaiBridgeError": "kai_bridge.errors"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kai_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
