"""Coze API groups: which of Coze's quotas a request of this client counts against.

Coze limits API calls per plan and per group of APIs. The groups Coze documents a QPS for are
``chat`` (chat v3: create, stream, retrieve, its message list, cancel, tool outputs),
``workflow`` and ``plugin`` (their default numbers per plan are not published: query yours with
``GET /v1/commerce/benefit/benefits/get?benefit_type_list=api_run_qps&resource_id=chat``, and
see docs/coze-protocol in the shared notes). The client's other endpoints are grouped by the
resource they touch (``conversation`` for conversations and their messages, ``bot``, ``user``);
Coze documents no QPS of their own. Each endpoint name is the pipeline's ``context`` (the
client method's name); anything unknown is ``other``, so the label stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["API_GROUPS", "DOCUMENTED_QPS_GROUPS", "GROUP_NAMES", "api_group"]

#: The groups Coze documents an API QPS for (plan-dependent; can be raised by purchase).
DOCUMENTED_QPS_GROUPS: Final = frozenset({"chat", "workflow", "plugin"})

API_GROUPS: Final[Mapping[str, str]] = MappingProxyType({
    "create_chat": "chat",
    "stream_chat": "chat",
    "retrieve_chat": "chat",
    "list_chat_messages": "chat",
    "cancel_chat": "chat",
    "submit_tool_outputs": "chat",
    "submit_tool_outputs_stream": "chat",
    "create_conversation": "conversation",
    "retrieve_conversation": "conversation",
    "list_conversations": "conversation",
    "clear_conversation": "conversation",
    "create_message": "conversation",
    "list_messages": "conversation",
    "list_bots": "bot",
    "retrieve_bot": "bot",
    "get_me": "user",
})

#: Every group a request can be counted in.
GROUP_NAMES: Final = frozenset({*API_GROUPS.values(), *DOCUMENTED_QPS_GROUPS, "other"})


def api_group(endpoint: str) -> str:
    """The API group of a client endpoint (``stream_chat`` -> ``chat``); ``other`` for a name not known here."""
    return API_GROUPS.get(endpoint, "other")
