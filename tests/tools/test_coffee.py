"""The coffee_knowledge_query tool over the shipped knowledge base."""

from __future__ import annotations

from typing import Literal

import pytest

from kai_bridge.errors import ToolInputError
from kai_bridge.knowledge import KnowledgeAnswer, KnowledgeBrief
from kai_bridge.tools import ToolRegistry
from kai_bridge.tools.coffee import coffee_knowledge_tool
from tests.bridge import knowledge_base, knowledge_service
from tests.knowledge.support import answer_cases, fact_text


class CountingKnowledge:
    """The real service, counting how often it is asked."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.calls = 0
        self._inner = knowledge_service()

    async def query(self, query: str, *, top_k: int, language: Literal["zh", "en"] | None) -> KnowledgeAnswer:
        self.calls += 1
        return await self._inner.query(query, top_k=top_k, language=language)


def _registry(knowledge: object) -> ToolRegistry:
    registry = ToolRegistry()
    registry.add(coffee_knowledge_tool(knowledge))  # type: ignore[arg-type]
    return registry


async def test_answers_in_the_language_of_the_question_with_the_passages_it_came_from() -> None:
    registry = _registry(knowledge_service())
    zh = await registry.call("coffee_knowledge_query", {"query": "埃塞俄比亚咖啡有什么特点"})
    en = await registry.call("coffee_knowledge_query", {"query": "what is a washed process", "top_k": 1})
    assert zh["language"] == "zh"
    assert en["language"] == "en"
    assert len(en["passages"]) == 1
    assert en["passages"][0]["article_id"]
    assert en["passages"][0]["snippet"]
    KnowledgeBrief.model_validate(zh)


async def test_the_tool_returns_each_passage_and_cqi_figure_as_their_headline() -> None:
    knowledge = knowledge_service()
    full = await knowledge.query("what is a washed process", top_k=3, language=None)
    result = await _registry(knowledge).call("coffee_knowledge_query", {"query": "what is a washed process"})
    assert full.figures, "the washed-process question should carry CQI figures"
    figure = full.figures[0]
    assert result["figures"][0] == {
        "key": figure.key,
        "label": figure.label,
        "source": figure.source,
        "samples": figure.samples,
        "total_cup_points_mean": figure.total_cup_points_mean,
        "total_cup_points_median": figure.total_cup_points_median,
        "summary": figure.summary,
    }
    assert result["answer"] == full.answer
    assert result["passages"] == [
        {"article_id": p.article_id, "title": p.title, "snippet": p.snippet} for p in full.passages
    ]
    # What the brief leaves out is the caller's own question or said again elsewhere.
    assert "query" not in result
    assert "sources" not in result
    assert [p["article_id"] for p in result["passages"]] == [s for s in full.sources if not s.startswith("cqi")]
    assert [s for s in full.sources if s.startswith("cqi")] == [
        f"cqi:{f.key}" if f.kind == "country" else f"cqi-process:{f.key}" for f in full.figures
    ]


async def test_the_sync_knowledge_base_works_as_well_as_the_async_service() -> None:
    registry = _registry(knowledge_base())
    result = await registry.call("coffee_knowledge_query", {"query": "espresso", "language": "zh"})
    assert result["language"] == "zh"


async def test_local_answers_are_cached_per_query_top_k_and_language() -> None:
    knowledge = CountingKnowledge("local")
    registry = _registry(knowledge)
    first = await registry.call("coffee_knowledge_query", {"query": "espresso"})
    again = await registry.call("coffee_knowledge_query", {"query": "  espresso "})
    await registry.call("coffee_knowledge_query", {"query": "espresso", "top_k": 1})
    await registry.call("coffee_knowledge_query", {"query": "espresso", "language": "zh"})
    assert first == again
    assert knowledge.calls == 3


async def test_a_coze_backend_is_asked_every_time() -> None:
    knowledge = CountingKnowledge("coze")
    registry = _registry(knowledge)
    await registry.call("coffee_knowledge_query", {"query": "espresso"})
    await registry.call("coffee_knowledge_query", {"query": "espresso"})
    assert knowledge.calls == 2


async def test_the_cache_is_bounded() -> None:
    knowledge = CountingKnowledge("local")
    registry = ToolRegistry()
    registry.add(coffee_knowledge_tool(knowledge, cache_size=2))
    for query in ("espresso", "latte", "mocha", "espresso"):
        await registry.call("coffee_knowledge_query", {"query": query})
    assert knowledge.calls == 4  # espresso was evicted by latte and mocha


@pytest.mark.parametrize("query", ["", "   ", "x" * 501])
async def test_blank_or_oversized_questions_are_refused(query: str) -> None:
    with pytest.raises(ToolInputError, match="'query'"):
        await _registry(knowledge_service()).call("coffee_knowledge_query", {"query": query})


async def test_the_tool_result_carries_the_fact_as_the_base_does() -> None:
    # What a client reads (the structured result) says what KnowledgeBase.query says.
    registry = _registry(knowledge_service())
    for case in answer_cases("tuning")[:40]:
        result = await registry.call("coffee_knowledge_query", {"query": case.query, "language": case.lang})
        direct = knowledge_base().query(case.query, language=case.lang)
        assert result["answer"] == direct.answer
        assert [p["article_id"] for p in result["passages"]] == [p.article_id for p in direct.passages]
        assert not fact_text(result["answer"]).rstrip().endswith(":")
