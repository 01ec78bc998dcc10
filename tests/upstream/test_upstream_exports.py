"""The upstream package's public surface is deliberate: this pins it."""

from __future__ import annotations

import kai_bridge.upstream


def test_the_upstream_package_exports_exactly_its_public_names() -> None:
    assert kai_bridge.upstream.__all__ == ["UpstreamManager", "UpstreamState"]
