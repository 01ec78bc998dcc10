"""``coffee_knowledge_query``: the coffee knowledge base as a tool (a thin door over ``query``)."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Annotated, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kai_bridge.knowledge.models import KnowledgeAnswer, KnowledgeBrief
from kai_bridge.tools.registry import Tool, ToolAnnotations, ToolContext, typed_tool

__all__ = ["COFFEE_KNOWLEDGE_QUERY", "CoffeeQuery", "KnowledgeQuery", "coffee_knowledge_tool"]

COFFEE_KNOWLEDGE_QUERY: Final = "coffee_knowledge_query"


class KnowledgeQuery(Protocol):
    """Anything that answers a coffee question: the local base (sync) or the service (async)."""

    def query(
        self, query: str, *, top_k: int, language: Literal["zh", "en"] | None
    ) -> KnowledgeAnswer | Awaitable[KnowledgeAnswer]: ...


class CoffeeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"\S")] = Field(
        description="the coffee question, in Chinese or English, e.g. '埃塞俄比亚咖啡有什么特点' or 'what is a washed process'"
    )
    top_k: int = Field(default=3, ge=1, le=10, description="how many source articles to use (1-10)")
    language: Literal["zh", "en"] | None = Field(
        default=None, description="answer language; detected from the question when omitted"
    )


def coffee_knowledge_tool(knowledge: KnowledgeQuery, *, cache_size: int = 256) -> Tool:
    """The tool over ``knowledge.query``.

    The tool returns :meth:`KnowledgeAnswer.brief` (passages and figures cut to what an agent
    uses: a lean result is cheaper for every client to validate, see :mod:`models`). With the local backend (the
    embedded base, immutable once loaded) answers are pure functions of (query, top_k,
    language), so the last ``cache_size`` are kept; a Coze backend is asked every time.
    """
    cacheable = cache_size > 0 and getattr(knowledge, "backend", "local") == "local"
    cache: OrderedDict[tuple[str, int, str | None], KnowledgeBrief] = OrderedDict()

    async def run(params: CoffeeQuery, ctx: ToolContext) -> KnowledgeBrief:
        key = (params.query.strip(), params.top_k, params.language)
        if cacheable and (hit := cache.get(key)) is not None:
            cache.move_to_end(key)
            return hit
        answer = knowledge.query(params.query, top_k=params.top_k, language=params.language)
        result = (await answer if inspect.isawaitable(answer) else answer).brief()
        if cacheable:
            cache[key] = result
            if len(cache) > cache_size:
                cache.popitem(last=False)
        return result

    return typed_tool(
        name=COFFEE_KNOWLEDGE_QUERY,
        title="Coffee knowledge",
        description=(
            "Answer a coffee question from curated knowledge (Chinese and English): origins and regions, "
            "species and varieties, processing, roasting, grinding, brewing, extraction, espresso, milk drinks, "
            "storage, cupping, history, health, plus Coffee Quality Institute review statistics per country and "
            "process. Returns a short answer, the passages it came from (article id, title, snippet; best first) "
            "and CQI figures. found=false means the base has nothing on the question."
        ),
        input_model=CoffeeQuery,
        output_model=KnowledgeBrief,
        annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False),
        func=run,
    )
