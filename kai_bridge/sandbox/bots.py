"""The sandbox's bot catalogue: a direct coffee expert and one that calls a local plugin.

The ids are stable (see :mod:`kai_bridge.sandbox.config`); the JSON views match what cozepy's
``SimpleBot`` (bot lists) and ``Bot`` (bot details) models require.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kai_bridge.sandbox.config import COFFEE_BOT_ID, PLUGIN_BOT_ID

__all__ = [
    "BOTS",
    "OWNER_USER_ID",
    "PLUGIN_API_ID",
    "PLUGIN_ID",
    "TOOL_NAME",
    "BotSpec",
    "bot_detail_json",
    "bot_simple_json",
]

OWNER_USER_ID = "7390000000000000300"
PLUGIN_ID = "7390000000000000201"
PLUGIN_API_ID = "7390000000000000202"
TOOL_NAME = "coffee_knowledge_query"
_PUBLISHED_AT = 1_735_689_600  # 2025-01-01T00:00:00Z
_ICON = "https://lf-coze-web-cdn.coze.cn/obj/coze-web-cn/obric/coze/favicon.1970.png"


@dataclass(frozen=True, slots=True)
class BotSpec:
    id: str
    name: str
    description: str
    prompt: str
    prologue: str
    suggested_questions: tuple[str, ...]
    uses_local_plugin: bool


BOTS: dict[str, BotSpec] = {
    COFFEE_BOT_ID: BotSpec(
        id=COFFEE_BOT_ID,
        name="Coffee Expert",
        description="Answers coffee questions (origins, roasting, brewing, espresso) in Chinese or English.",
        prompt="You are a friendly coffee expert. Answer in the language of the question.",
        prologue="Hi! Ask me anything about coffee. 你好！关于咖啡的问题都可以问我。",
        suggested_questions=("How do I brew pour-over coffee?", "意式浓缩的萃取参数是多少？"),
        uses_local_plugin=False,
    ),
    PLUGIN_BOT_ID: BotSpec(
        id=PLUGIN_BOT_ID,
        name="Coffee Expert (local plugin)",
        description=(
            "Answers coffee questions by calling the local plugin coffee_knowledge_query "
            "(requires_action + submit_tool_outputs)."
        ),
        prompt="Always look facts up with coffee_knowledge_query, then answer from its result.",
        prologue="Ask a coffee question; I will look it up with your local coffee_knowledge_query tool.",
        suggested_questions=("What is a washed process?", "云南咖啡有什么特点？"),
        uses_local_plugin=True,
    ),
}


def bot_simple_json(bot: BotSpec) -> dict[str, Any]:
    """One item of ``GET /v1/bots`` (cozepy ``SimpleBot``)."""
    return {
        "id": bot.id,
        "name": bot.name,
        "description": bot.description,
        "icon_url": _ICON,
        "is_published": True,
        "updated_at": _PUBLISHED_AT,
        "published_at": _PUBLISHED_AT,
        "owner_user_id": OWNER_USER_ID,
    }


def bot_v1_list_json(bot: BotSpec) -> dict[str, Any]:
    """One item of ``GET /v1/space/published_bots_list`` (the older list API)."""
    return {
        "bot_id": bot.id,
        "bot_name": bot.name,
        "description": bot.description,
        "icon_url": _ICON,
        "publish_time": str(_PUBLISHED_AT),
    }


def bot_detail_json(bot: BotSpec) -> dict[str, Any]:
    """``GET /v1/bots/{id}`` and ``GET /v1/bot/get_online_info`` (cozepy ``Bot``)."""
    plugins: list[dict[str, Any]] = []
    if bot.uses_local_plugin:
        plugins.append(
            {
                "plugin_id": PLUGIN_ID,
                "name": TOOL_NAME,
                "description": "Local (端) plugin executed by the API caller: looks up coffee knowledge.",
                "icon_url": _ICON,
                "api_info_list": [
                    {
                        "api_id": PLUGIN_API_ID,
                        "name": TOOL_NAME,
                        "description": 'Query the coffee knowledge base. Input: {"query": string}.',
                    }
                ],
            }
        )
    return {
        "bot_id": bot.id,
        "name": bot.name,
        "description": bot.description,
        "icon_url": _ICON,
        "create_time": _PUBLISHED_AT,
        "update_time": _PUBLISHED_AT,
        "version": "1",
        "bot_mode": 0,
        "prompt_info": {"prompt": bot.prompt},
        "onboarding_info": {"prologue": bot.prologue, "suggested_questions": list(bot.suggested_questions)},
        "plugin_info_list": plugins,
        "model_info": {"model_id": "sandbox-model", "model_name": "Sandbox coffee model"},
        "owner_user_id": OWNER_USER_ID,
    }
