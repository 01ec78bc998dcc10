"""The official SDK, cozepy 0.20, unchanged, against a sandbox on a real socket.

cozepy is synchronous, so each flow runs in a worker thread while the test's event loop serves
the sandbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio.to_thread
import pytest
from cozepy import (
    Chat,
    ChatEvent,
    ChatEventType,
    ChatStatus,
    Coze,
    CozeAPIError,
    JWTAuth,
    JWTOAuthApp,
    Message,
    MessageType,
    Stream,
    SyncHTTPClient,
    TokenAuth,
    ToolOutput,
    User,
)

from kai_bridge.keys import KeyPair
from kai_bridge.sandbox import COFFEE_BOT_ID, PLUGIN_BOT_ID, TOOL_NAME, SandboxHandle
from tests.sandbox.support import APP_ID, PAT

T = TypeVar("T")

pytestmark = pytest.mark.e2e


async def in_thread(fn: Callable[[], T]) -> T:
    with anyio.fail_after(30):
        return await anyio.to_thread.run_sync(fn)


def coze_with(token: str, base_url: str, http: SyncHTTPClient) -> Coze:
    return Coze(auth=TokenAuth(token), base_url=base_url, http_client=http)


@pytest.fixture
def http() -> Iterator[SyncHTTPClient]:
    client = SyncHTTPClient()  # type: ignore[no-untyped-call]
    yield client
    client.close()


@pytest.fixture
def oauth_app(sandbox: SandboxHandle, key_pair: KeyPair) -> Iterator[JWTOAuthApp]:
    app = JWTOAuthApp(APP_ID, key_pair.private_pem.decode(), key_pair.kid, sandbox.base_url)
    yield app
    close_oauth_app(app)


def close_oauth_app(app: JWTOAuthApp) -> None:
    """cozepy's OAuth apps open their own httpx client and never close it; close it for them."""
    client = app._requester._sync_client
    if client is not None:
        client.close()


async def test_jwt_oauth_app_gets_an_access_token_with_an_absolute_expiry(
    sandbox: SandboxHandle, oauth_app: JWTOAuthApp
) -> None:
    token = await in_thread(lambda: oauth_app.get_access_token(ttl=900))

    assert token.access_token.startswith("czs_")
    assert token.token_type == "Bearer"
    assert token.expires_in > 1_600_000_000  # an epoch, not a duration
    assert sandbox.state.tokens_issued == 1


async def test_chat_stream_deltas_add_up_to_the_completed_answer(
    sandbox: SandboxHandle, oauth_app: JWTOAuthApp, http: SyncHTTPClient
) -> None:
    app = oauth_app

    def flow() -> tuple[list[str], list[str], list[tuple[str, str]], list[str]]:
        coze = coze_with(app.get_access_token().access_token, sandbox.base_url, http)
        events: list[str] = []
        deltas: list[str] = []
        completed: list[tuple[str, str]] = []
        delta_ids: list[str] = []
        for event in coze.chat.stream(
            bot_id=COFFEE_BOT_ID,
            user_id="user-1",
            additional_messages=[Message.build_user_question_text("How do I brew pour-over coffee?")],
        ):
            events.append(str(event.event.value))
            if event.event == ChatEventType.CONVERSATION_MESSAGE_DELTA:
                assert event.message is not None
                deltas.append(event.message.content)
                delta_ids.append(str(event.message.id))
            elif event.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED:
                assert event.message is not None
                completed.append((str(event.message.type.value), event.message.content))
        return events, deltas, completed, delta_ids

    events, deltas, completed, delta_ids = await in_thread(flow)

    assert events[:2] == ["conversation.chat.created", "conversation.chat.in_progress"]
    assert events[-1] == "conversation.chat.completed"
    assert len(deltas) > 3, "the answer must arrive as several incremental chunks"
    assert len(set(delta_ids)) == 1, "all deltas belong to one message"
    answers = [content for kind, content in completed if kind == "answer"]
    assert answers == ["".join(deltas)]
    assert "pour-over" in answers[0]
    verbose = [json.loads(content) for kind, content in completed if kind == "verbose"]
    assert verbose == [{"msg_type": "generate_answer_finish", "data": "", "from_module": None, "from_unit": None}]


async def test_create_and_poll_reaches_completed_and_lists_the_answer(
    sandbox: SandboxHandle, http: SyncHTTPClient
) -> None:
    coze = coze_with(PAT, sandbox.base_url, http)

    result = await in_thread(
        lambda: coze.chat.create_and_poll(
            bot_id=COFFEE_BOT_ID,
            user_id="user-1",
            additional_messages=[Message.build_user_question_text("咖啡因含量是多少？")],
        )
    )

    assert result.chat.status == ChatStatus.COMPLETED
    assert result.chat.usage is not None
    assert result.chat.usage.token_count > 0
    assert result.messages is not None
    answers = [m.content for m in result.messages if m.type == MessageType.ANSWER]
    assert len(answers) == 1
    assert "咖啡因" in answers[0]


async def test_conversation_create_and_message_list_pages_through_everything(
    sandbox: SandboxHandle, http: SyncHTTPClient
) -> None:
    coze = coze_with(PAT, sandbox.base_url, http)

    def flow() -> tuple[list[str], list[str], list[int]]:
        conv = coze.conversations.create(
            bot_id=COFFEE_BOT_ID,
            messages=[Message.build_user_question_text(f"question {i}") for i in range(5)],
        )
        for i in range(5, 7):
            coze.conversations.messages.create(
                conversation_id=conv.id, content=f"question {i}", content_type="text", role="user"
            )
        pages = coze.conversations.messages.list(conversation_id=conv.id, limit=2)
        page_sizes = [len(page.items) for page in pages.iter_pages()]
        contents = [m.content for m in coze.conversations.messages.list(conversation_id=conv.id, limit=2)]
        ascending = [m.content for m in coze.conversations.messages.list(conversation_id=conv.id, order="asc", limit=3)]
        return contents, ascending, page_sizes

    contents, ascending, page_sizes = await in_thread(flow)

    assert contents == [f"question {i}" for i in reversed(range(7))]
    assert ascending == [f"question {i}" for i in range(7)]
    assert page_sizes == [2, 2, 2, 1]


async def test_conversations_list_and_retrieve_and_clear(sandbox: SandboxHandle, http: SyncHTTPClient) -> None:
    coze = coze_with(PAT, sandbox.base_url, http)

    def flow() -> tuple[list[str], str, str, str]:
        first = coze.conversations.create(bot_id=COFFEE_BOT_ID)
        second = coze.conversations.create(bot_id=COFFEE_BOT_ID, meta_data={"k": "v"})
        listed = [c.id for c in coze.conversations.list(bot_id=COFFEE_BOT_ID, page_size=1)]
        again = coze.conversations.retrieve(conversation_id=second.id)
        section = coze.conversations.clear(conversation_id=first.id)
        return listed, again.meta_data["k"], section.conversation_id, first.id

    listed, meta_value, cleared_conv, first_id = await in_thread(flow)

    assert len(listed) == 2  # paged one by one through both
    assert meta_value == "v"
    assert cleared_conv == first_id


async def test_bots_list_and_retrieve_through_both_api_versions(sandbox: SandboxHandle, http: SyncHTTPClient) -> None:
    coze = coze_with(PAT, sandbox.base_url, http)

    def flow() -> tuple[list[str], list[str], list[str]]:
        v2 = [b.bot_id for b in coze.bots.list(space_id=sandbox.workspace_id, use_api_version=2).items]
        v1 = [b.bot_id for b in coze.bots.list(space_id=sandbox.workspace_id).items]
        plugin = coze.bots.retrieve(bot_id=PLUGIN_BOT_ID, use_api_version=2)
        assert plugin.plugin_info_list is not None
        tools = [api.name for p in plugin.plugin_info_list for api in p.api_info_list]
        return v2, v1, tools

    v2, v1, tools = await in_thread(flow)

    assert v2 == [COFFEE_BOT_ID, PLUGIN_BOT_ID]
    assert v1 == v2
    assert tools == [TOOL_NAME]


async def test_plugin_bot_streams_requires_action_then_answers_from_the_submitted_output(
    sandbox: SandboxHandle, http: SyncHTTPClient
) -> None:
    coze = coze_with(PAT, sandbox.base_url, http)

    def flow() -> tuple[list[str], dict[str, str], list[str], list[tuple[str, str]], list[str]]:
        first_events: list[str] = []
        chat = None
        for event in coze.chat.stream(
            bot_id=PLUGIN_BOT_ID,
            user_id="user-2",
            additional_messages=[Message.build_user_question_text("What is a washed process?")],
        ):
            first_events.append(str(event.event.value))
            if event.event == ChatEventType.CONVERSATION_CHAT_REQUIRES_ACTION:
                chat = event.chat
        assert chat is not None
        assert chat.required_action is not None
        assert chat.required_action.submit_tool_outputs is not None
        call = chat.required_action.submit_tool_outputs.tool_calls[0]
        assert call.function is not None
        call_info = {"name": call.function.name, "arguments": call.function.arguments, "type": str(call.type.value)}
        output = json.dumps({"answer": "Washed coffee has its fruit removed before drying.", "sources": []})
        second_events: list[str] = []
        completed: list[tuple[str, str]] = []
        deltas: list[str] = []
        stream = coze.chat.submit_tool_outputs(
            conversation_id=chat.conversation_id,
            chat_id=chat.id,
            tool_outputs=[ToolOutput(tool_call_id=call.id, output=output)],
            stream=True,
        )
        assert isinstance(stream, Stream)
        for event in stream:
            assert isinstance(event, ChatEvent)
            second_events.append(str(event.event.value))
            if event.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED:
                assert event.message is not None
                completed.append((str(event.message.type.value), event.message.content))
            elif event.event == ChatEventType.CONVERSATION_MESSAGE_DELTA:
                assert event.message is not None
                deltas.append(event.message.content)
        assert "".join(deltas) == "Washed coffee has its fruit removed before drying."
        return first_events, call_info, second_events, completed, deltas

    first_events, call_info, second_events, completed, _deltas = await in_thread(flow)

    assert first_events == [
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.message.completed",
        "conversation.chat.requires_action",
    ]
    assert call_info["name"] == TOOL_NAME
    assert call_info["type"] == "function"
    assert json.loads(call_info["arguments"]) == {"query": "What is a washed process?"}
    assert second_events[0] == "conversation.chat.in_progress"
    assert second_events[-1] == "conversation.chat.completed"
    assert completed[0][0] == "tool_response"
    assert ("answer", "Washed coffee has its fruit removed before drying.") in completed


async def test_plugin_bot_non_stream_submit_then_poll_completes(sandbox: SandboxHandle, http: SyncHTTPClient) -> None:
    coze = coze_with(PAT, sandbox.base_url, http)

    def flow() -> tuple[str, str, str, list[str]]:
        paused = coze.chat.create_and_poll(
            bot_id=PLUGIN_BOT_ID,
            user_id="user-3",
            additional_messages=[Message.build_user_question_text("云南咖啡有什么特点？")],
        )
        chat = paused.chat
        assert chat.required_action is not None
        assert chat.required_action.submit_tool_outputs is not None
        call = chat.required_action.submit_tool_outputs.tool_calls[0]
        submitted = coze.chat.submit_tool_outputs(
            conversation_id=chat.conversation_id,
            chat_id=chat.id,
            tool_outputs=[ToolOutput(tool_call_id=call.id, output="云南咖啡常见坚果和焦糖风味。")],
            stream=False,
        )
        assert isinstance(submitted, Chat)
        status_after_submit = str(submitted.status.value)
        final = coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id)
        while final.status == ChatStatus.IN_PROGRESS:
            final = coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id)
        kinds = [
            str(m.type.value) for m in coze.chat.messages.list(conversation_id=chat.conversation_id, chat_id=chat.id)
        ]
        answer = next(
            m.content
            for m in coze.chat.messages.list(conversation_id=chat.conversation_id, chat_id=chat.id)
            if m.type == MessageType.ANSWER
        )
        return str(paused.chat.status.value), status_after_submit, answer, kinds

    paused_status, status_after_submit, answer, kinds = await in_thread(flow)

    assert paused_status == "requires_action"
    assert status_after_submit == "in_progress"
    assert answer == "云南咖啡常见坚果和焦糖风味。"
    assert kinds[:2] == ["function_call", "tool_response"]
    assert "answer" in kinds


async def test_jwt_auth_caches_its_token_across_calls(
    sandbox: SandboxHandle, oauth_app: JWTOAuthApp, http: SyncHTTPClient
) -> None:
    coze = Coze(auth=JWTAuth(oauth_app=oauth_app), base_url=sandbox.base_url, http_client=http)

    def flow() -> int:
        for _ in range(3):
            coze.bots.list(space_id=sandbox.workspace_id, use_api_version=2)
        conv = coze.conversations.create(bot_id=COFFEE_BOT_ID)
        coze.conversations.retrieve(conversation_id=conv.id)
        return 5

    calls = await in_thread(flow)

    assert calls == 5
    assert sandbox.state.token_exchanges == 1
    assert sandbox.state.tokens_issued == 1
    assert sandbox.state.requests["bots.list"] == 3


async def test_users_me_answers_who_the_token_belongs_to_and_refuses_a_wrong_token(
    sandbox: SandboxHandle, oauth_app: JWTOAuthApp, http: SyncHTTPClient
) -> None:
    def flow() -> tuple[User, User, User, CozeAPIError]:
        with_pat = coze_with(PAT, sandbox.base_url, http).users.me()
        with_jwt = Coze(auth=JWTAuth(oauth_app=oauth_app), base_url=sandbox.base_url, http_client=http).users.me()
        again = Coze(auth=JWTAuth(oauth_app=oauth_app), base_url=sandbox.base_url, http_client=http).users.me()
        with pytest.raises(CozeAPIError) as refused:
            coze_with("pat_not_configured_here", sandbox.base_url, http).users.me()
        return with_pat, with_jwt, again, refused.value

    with_pat, with_jwt, again, refused = await in_thread(flow)

    assert re.fullmatch(r"\d{19}", with_pat.user_id)
    assert re.fullmatch(r"\d{19}", with_jwt.user_id)
    assert with_jwt.user_id != with_pat.user_id, "an OAuth app and a PAT are different users"
    assert with_jwt.user_id == again.user_id, "the same app is the same user on every token"
    assert APP_ID in with_jwt.user_name
    assert with_pat.nick_name
    assert with_pat.avatar_url.startswith("https://")
    assert refused.code == 4101
    assert refused.logid
    assert sandbox.state.requests["users.me"] == 4
