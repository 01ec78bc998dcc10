"""Coffee knowledge that ships with the package: bilingual articles, CQI figures, an embedded index.

``KnowledgeBase.load()`` builds everything from the packaged files (no network, no files
outside the package); ``KnowledgeBase.query`` answers in Chinese or English with sources.
``KnowledgeService`` adds the optional Coze bot backend.
"""

from kai_bridge.knowledge.base import KnowledgeBase
from kai_bridge.knowledge.corpus import Article
from kai_bridge.knowledge.models import (
    AltitudeRange,
    CqiFigure,
    CqiFigureBrief,
    KnowledgeAnswer,
    KnowledgeBrief,
    NamedCount,
    Passage,
    PassageBrief,
)
from kai_bridge.knowledge.service import Backend, CozeAsker, KnowledgeService

__all__ = [
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
