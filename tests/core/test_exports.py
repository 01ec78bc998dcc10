"""The package's public surface is small and deliberate: pin it."""

from __future__ import annotations

import kai_bridge
import kai_bridge.errors


def test_top_level_exports_are_pinned() -> None:
    assert kai_bridge.__all__ == ["KaiBridgeError", "Settings", "__version__", "load_settings"]
    for name in kai_bridge.__all__:
        assert hasattr(kai_bridge, name)


def test_every_error_derives_from_the_one_root() -> None:
    for name in kai_bridge.errors.__all__:
        cls = getattr(kai_bridge.errors, name)
        assert issubclass(cls, kai_bridge.errors.KaiBridgeError), name
    assert kai_bridge.errors.__all__ == sorted(kai_bridge.errors.__all__)
