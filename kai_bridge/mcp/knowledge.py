"""The coffee articles as MCP resources, and a ``coffee_expert`` prompt, for desktop agents.

Tools are the main door; resources let a user attach an article to a conversation by hand
(``coffee://articles/<id>``, both languages in one Markdown text), and the prompt starts a
conversation that uses ``coffee_knowledge_query``. Installed on the server as an extension
(:func:`knowledge_extension`) by ``serve`` and ``stdio``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from kai_bridge.mcp.server import KaiMcpServer, McpExtension
from kai_bridge.tools.coffee import COFFEE_KNOWLEDGE_QUERY

__all__ = ["ARTICLE_URI_PREFIX", "PROMPT_NAME", "ArticleLike", "extensions_for", "knowledge_extension"]

ARTICLE_URI_PREFIX: Final = "coffee://articles/"
PROMPT_NAME: Final = "coffee_expert"
_MIME: Final = "text/markdown"
_MAX_COMPLETIONS: Final = 100

Ctx = ServerRequestContext[Any, Any]


class ArticleLike(Protocol):
    """What a shipped knowledge article offers (``kai_bridge.knowledge.corpus.Article``)."""

    @property
    def id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def title_zh(self) -> str: ...
    @property
    def title_en(self) -> str: ...
    @property
    def body_zh(self) -> str: ...
    @property
    def body_en(self) -> str: ...


def _markdown(article: ArticleLike) -> str:
    return (
        f"# {article.title_en}\n\n{article.body_en.strip()}\n\n"
        f"# {article.title_zh}\n\n{article.body_zh.strip()}\n\n"
        f"(kai-bridge coffee knowledge, article {article.id}, category {article.category})\n"
    )


def knowledge_extension(articles: Sequence[ArticleLike]) -> McpExtension:
    """An extension serving ``articles`` as resources plus the ``coffee_expert`` prompt."""
    by_id = {article.id: article for article in articles}
    resources = [
        types.Resource(
            uri=f"{ARTICLE_URI_PREFIX}{article.id}",
            name=article.id,
            title=article.title_en,
            description=f"{article.title_en} / {article.title_zh} ({article.category})",
            mime_type=_MIME,
        )
        for article in sorted(articles, key=lambda a: a.id)
    ]
    template = types.ResourceTemplate(
        uri_template=f"{ARTICLE_URI_PREFIX}{{id}}",
        name="coffee-article",
        title="Coffee article",
        description="A coffee knowledge article by id (e.g. origin-ethiopia), English and Chinese",
        mime_type=_MIME,
    )
    prompt = types.Prompt(
        name=PROMPT_NAME,
        title="Ask the coffee expert",
        description="Answer a coffee question from kai-bridge's coffee knowledge, citing the sources",
        arguments=[
            types.PromptArgument(name="question", description="the coffee question", required=True),
            types.PromptArgument(name="language", description="zh or en (default: the question's)", required=False),
        ],
    )

    async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=resources)

    async def list_templates(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def read(ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        article = by_id.get(params.uri.removeprefix(ARTICLE_URI_PREFIX)) if params.uri.startswith(
            ARTICLE_URI_PREFIX
        ) else None
        if article is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {params.uri}", {"uri": params.uri})
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, mime_type=_MIME, text=_markdown(article))]
        )

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[prompt])

    async def get_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        if params.name != PROMPT_NAME:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        args = params.arguments or {}
        question = str(args.get("question", "")).strip()
        if not question:
            raise MCPError(types.INVALID_PARAMS, "the coffee_expert prompt needs a 'question' argument")
        language = str(args.get("language", "")).strip()
        wanted = {"zh": " Answer in Chinese.", "en": " Answer in English."}.get(language, "")
        text = (
            f"Use the {COFFEE_KNOWLEDGE_QUERY} tool to look up the facts, then answer the question below from "
            f"its result, naming the article ids (sources) you relied on. If found is false, say the knowledge "
            f"base does not cover it.{wanted}\n\nQuestion: {question}"
        )
        return types.GetPromptResult(
            description=prompt.description,
            messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))],
        )

    async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        ref, argument = params.ref, params.argument
        values: list[str] = []
        if isinstance(ref, types.PromptReference) and ref.name == PROMPT_NAME and argument.name == "language":
            values = [v for v in ("zh", "en") if v.startswith(argument.value)]
        elif isinstance(ref, types.ResourceTemplateReference) and ref.uri == template.uri_template:
            values = sorted(i for i in by_id if i.startswith(argument.value))
        shown = values[:_MAX_COMPLETIONS]
        return types.CompleteResult(
            completion=types.Completion(values=shown, total=len(values), has_more=len(values) > len(shown))
        )

    def install(server: KaiMcpServer) -> None:
        server.add_request_handler("resources/list", types.PaginatedRequestParams, list_resources)
        server.add_request_handler("resources/templates/list", types.PaginatedRequestParams, list_templates)
        server.add_request_handler("resources/read", types.ReadResourceRequestParams, read)
        server.add_request_handler("prompts/list", types.PaginatedRequestParams, list_prompts)
        server.add_request_handler("prompts/get", types.GetPromptRequestParams, get_prompt)
        server.add_request_handler("completion/complete", types.CompleteRequestParams, complete)

    return install


def extensions_for(knowledge: object) -> list[McpExtension]:
    """The production extensions for a knowledge service/base: its articles as resources, the prompt.

    Accepts a ``KnowledgeService`` (``.base``) or a ``KnowledgeBase``; anything without
    articles gets no extension (the tools still work).
    """
    base = getattr(knowledge, "base", knowledge)
    articles = getattr(getattr(base, "index", None), "articles", None)
    return [knowledge_extension(list(articles))] if articles else []
