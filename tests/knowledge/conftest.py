from __future__ import annotations

import pytest

from kai_bridge.knowledge import KnowledgeBase


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    """The shipped base, loaded once: it is immutable, so tests can share it."""
    return KnowledgeBase.load()
