"""KnowledgeService: local, coze and auto backends.

``RecordingAsker`` is the test double of the ``CozeAsker`` protocol boundary (the real one
talks to a Coze bot and is wired and tested by the composition root); everything else here
is the real base.
"""

from __future__ import annotations

import pytest

from kai_bridge.errors import ConfigError, CozeServerError
from kai_bridge.knowledge import KnowledgeBase, KnowledgeService
from kai_bridge.knowledge.service import MAX_CONTEXT_CHARS, build_context


class RecordingAsker:
    def __init__(self, *, reply: str = "bot reply", error: Exception | None = None) -> None:
        self.reply = reply
        self.error = error
        self.calls: list[tuple[str, str]] = []

    async def ask(self, *, question: str, context: str) -> str:
        self.calls.append((question, context))
        if self.error is not None:
            raise self.error
        return self.reply


async def test_local_backend_answers_from_the_base_and_never_asks(kb: KnowledgeBase) -> None:
    asker = RecordingAsker()
    service = KnowledgeService(base=kb, backend="local", asker=asker)
    answer = await service.query("埃塞俄比亚咖啡特点", top_k=3, language=None)
    assert answer.found
    assert answer.backend == "local"
    assert answer == kb.query("埃塞俄比亚咖啡特点")
    assert asker.calls == []


async def test_coze_backend_hands_retrieved_passages_to_the_bot(kb: KnowledgeBase) -> None:
    asker = RecordingAsker(reply="  埃塞俄比亚咖啡以花香和果酸著称。 ")
    service = KnowledgeService(base=kb, backend="coze", asker=asker)
    answer = await service.query("埃塞俄比亚咖啡特点", top_k=3, language=None)
    assert answer.answer == "埃塞俄比亚咖啡以花香和果酸著称。"
    assert answer.backend == "coze"
    assert answer.passages[0].article_id == "origin-ethiopia"  # passages and figures kept
    assert answer.figures
    assert answer.figures[0].key == "Ethiopia"
    [(question, context)] = asker.calls
    assert question == "埃塞俄比亚咖啡特点"
    assert "[origin-ethiopia]" in context
    assert "n=44" in context


async def test_coze_backend_surfaces_bot_errors(kb: KnowledgeBase) -> None:
    error = CozeServerError("Coze server error", code=5000, msg="upstream down", logid="log-1", http_status=502)
    service = KnowledgeService(base=kb, backend="coze", asker=RecordingAsker(error=error))
    with pytest.raises(CozeServerError):
        await service.query("埃塞俄比亚咖啡特点", top_k=3, language=None)


async def test_auto_backend_keeps_a_good_local_answer(kb: KnowledgeBase) -> None:
    asker = RecordingAsker()
    service = KnowledgeService(base=kb, backend="auto", asker=asker)
    answer = await service.query("Kenyan coffee", top_k=3, language=None)
    assert answer.backend == "local"
    assert answer.found
    assert asker.calls == []


async def test_auto_backend_asks_the_bot_when_the_base_has_nothing(kb: KnowledgeBase) -> None:
    asker = RecordingAsker(reply="I can only help with coffee.")
    service = KnowledgeService(base=kb, backend="auto", asker=asker)
    answer = await service.query("今天北京天气怎么样", top_k=3, language=None)
    assert answer.backend == "coze"
    assert answer.answer == "I can only help with coffee."
    assert not answer.found
    assert answer.passages == []
    assert len(asker.calls) == 1


async def test_auto_backend_falls_back_to_local_when_the_bot_fails(kb: KnowledgeBase) -> None:
    error = CozeServerError("Coze server error", code=5000, msg="upstream down", logid="log-1", http_status=502)
    service = KnowledgeService(base=kb, backend="auto", asker=RecordingAsker(error=error))
    answer = await service.query("今天北京天气怎么样", top_k=3, language=None)
    assert answer.backend == "local"
    assert not answer.found
    assert "产地" in answer.answer  # the helpful "what I cover" answer


async def test_auto_backend_without_a_bot_is_local(kb: KnowledgeBase) -> None:
    service = KnowledgeService(base=kb, backend="auto", asker=None)
    answer = await service.query("今天北京天气怎么样", top_k=3, language=None)
    assert answer.backend == "local"
    assert not answer.found


def test_coze_backend_without_a_bot_is_a_config_error(kb: KnowledgeBase) -> None:
    with pytest.raises(ConfigError, match="knowledge_bot_id"):
        KnowledgeService(base=kb, backend="coze", asker=None)


def test_context_is_capped(kb: KnowledgeBase) -> None:
    answer = kb.query("espresso", top_k=10)
    assert len(build_context(answer)) <= MAX_CONTEXT_CHARS
