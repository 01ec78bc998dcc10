from __future__ import annotations

import kai_bridge.knowledge as knowledge


def test_public_names_are_pinned() -> None:
    assert knowledge.__all__ == [
        "AltitudeRange",
        "Article",
        "Backend",
        "CozeAsker",
        "CqiFigure",
        "CqiFigureBrief",
        "KnowledgeAnswer",
        "KnowledgeBase",
        "KnowledgeBrief",
        "KnowledgeService",
        "NamedCount",
        "Passage",
        "PassageBrief",
    ]
    for name in knowledge.__all__:
        assert getattr(knowledge, name) is not None
