"""Models read Coze's JSON tolerantly: unknown enum values, numeric ids and extra fields pass."""

from __future__ import annotations

import pytest

from kai_bridge.coze.models import (
    Bot,
    Chat,
    ChatStatus,
    ConversationPage,
    EnterMessage,
    Message,
    MessageType,
    RequiredAction,
)


def test_unknown_chat_status_is_kept_instead_of_failing() -> None:
    chat = Chat.model_validate({"id": "1", "conversation_id": "2", "status": "paused_for_lunch"})
    assert chat.status == "paused_for_lunch"
    assert not chat.status.is_known
    assert not chat.status.is_terminal


def test_known_enum_values_are_the_members_themselves() -> None:
    chat = Chat.model_validate({"id": "1", "conversation_id": "2", "status": "completed"})
    assert chat.status is ChatStatus.COMPLETED
    assert chat.status.is_terminal


def test_numeric_ids_become_strings_and_extra_fields_are_ignored() -> None:
    msg = Message.model_validate(
        {"id": 7390000000000000001, "chat_id": 12, "role": "assistant", "content": "hi",
         "content_type": "text", "type": "knowledge_recall_v9", "brand_new_field": {"x": 1}}
    )
    assert msg.id == "7390000000000000001"
    assert msg.chat_id == "12"
    assert msg.type == "knowledge_recall_v9"


def test_enter_message_wire_form_drops_nulls() -> None:
    assert EnterMessage.user("你好").wire() == {
        "role": "user", "content": "你好", "content_type": "text", "type": "question"
    }


def test_required_action_exposes_tool_calls_and_parses_arguments() -> None:
    action = RequiredAction.model_validate(
        {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "coffee_knowledge_query", "arguments": "{\"query\": \"耶加雪菲\"}"}}]}}
    )
    assert [c.function.parsed_arguments() for c in action.tool_calls] == [{"query": "耶加雪菲"}]


def test_tool_call_arguments_that_are_not_an_object_are_refused() -> None:
    action = RequiredAction.model_validate(
        {"submit_tool_outputs": {"tool_calls": [{"id": "c", "function": {"name": "x", "arguments": "[1]"}}]}}
    )
    with pytest.raises(ValueError, match="not a JSON object"):
        action.tool_calls[0].function.parsed_arguments()


@pytest.mark.parametrize("key", ["id", "bot_id"])
def test_bot_id_is_read_from_either_field_name(key: str) -> None:
    assert Bot.model_validate({key: "42", "name": "coffee"}).id == "42"


def test_conversation_page_reads_the_conversations_key() -> None:
    page = ConversationPage.model_validate({"has_more": True, "conversations": [{"id": "1"}]})
    assert page.has_more
    assert [c.id for c in page.items] == ["1"]


def test_message_type_empty_string_is_the_unset_member() -> None:
    assert Message.model_validate({"role": "user", "content": "", "type": ""}).type is MessageType.UNSET
