"""The coffee articles as MCP resources and the coffee_expert prompt (in-process, both eras)."""

from __future__ import annotations

import mcp.types as types
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from kai_bridge.mcp import build_mcp_server
from kai_bridge.mcp.knowledge import extensions_for
from kai_bridge.tools import build_registry
from tests.bridge import knowledge_service
from tests.conformance.fixtures import install as install_fixtures

MODES = [pytest.param("legacy", id="2025-11-25"), pytest.param("auto", id="2026-07-28")]


def _server(*, fixtures: bool = False):  # type: ignore[no-untyped-def]
    knowledge = knowledge_service()
    registry = build_registry(knowledge=knowledge, conversations=None)
    extensions = [*extensions_for(knowledge), *([install_fixtures] if fixtures else [])]
    return build_mcp_server(registry, extensions=extensions)


@pytest.mark.parametrize("mode", MODES)
async def test_every_article_is_a_readable_markdown_resource_in_both_languages(mode: str) -> None:
    async with Client(_server(), mode=mode) as client:
        assert client.server_capabilities.resources is not None
        resources = (await client.list_resources()).resources
        read = await client.read_resource("coffee://articles/origin-ethiopia")
    uris = [str(r.uri) for r in resources]
    assert len(uris) == len(knowledge_service().base.article_ids())
    assert "coffee://articles/origin-ethiopia" in uris
    (content,) = read.contents
    assert isinstance(content, types.TextResourceContents)
    assert content.mime_type == "text/markdown"
    assert "Ethiopia" in content.text
    assert "埃塞俄比亚" in content.text


async def test_an_unknown_article_is_an_invalid_params_error() -> None:
    async with Client(_server(), mode="legacy") as client:
        with pytest.raises(MCPError) as info:
            await client.read_resource("coffee://articles/no-such-article")
    assert info.value.error.code == types.INVALID_PARAMS


@pytest.mark.parametrize("mode", MODES)
async def test_the_coffee_expert_prompt_asks_for_the_knowledge_tool(mode: str) -> None:
    async with Client(_server(), mode=mode) as client:
        prompts = (await client.list_prompts()).prompts
        got = await client.get_prompt("coffee_expert", {"question": "Why is Kenya coffee bright?", "language": "en"})
    assert [p.name for p in prompts] == ["coffee_expert"]
    (message,) = got.messages
    assert isinstance(message.content, types.TextContent)
    assert "coffee_knowledge_query" in message.content.text
    assert "Why is Kenya coffee bright?" in message.content.text


async def test_completion_offers_article_ids_and_languages() -> None:
    async with Client(_server(), mode="legacy") as client:
        ids = await client.complete(types.ResourceTemplateReference(type="ref/resource", uri="coffee://articles/{id}"),
                                    {"name": "id", "value": "origin-eth"})
        langs = await client.complete(types.PromptReference(type="ref/prompt", name="coffee_expert"),
                                      {"name": "language", "value": "z"})
    assert ids.completion.values == ["origin-ethiopia"]
    assert langs.completion.values == ["zh"]


async def test_the_conformance_fixtures_join_without_hiding_the_production_features() -> None:
    async with Client(_server(fixtures=True), mode="legacy") as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        article = await client.read_resource("coffee://articles/origin-kenya")
        fixture = await client.read_resource("test://static-text")
    assert "coffee_knowledge_query" in tools
    assert "test_simple_text" in tools
    assert "coffee://articles/origin-kenya" in resources
    assert "test://static-text" in resources
    assert set(prompts) >= {"coffee_expert", "test_simple_prompt"}
    assert article.contents
    assert fixture.contents
