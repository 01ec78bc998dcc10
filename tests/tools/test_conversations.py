"""ConversationService and the conversation tools against the sandbox, with SQLite in tmp_path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from kai_bridge.coze import CozeClient
from kai_bridge.errors import ChatCanceledError, KnowledgeError, ToolError, ToolInputError
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import PLUGIN_BOT_ID, SandboxHandle
from kai_bridge.store import ChatRecord, Store
from kai_bridge.tools import NullToolContext, ToolContext
from tests.bridge import open_bridge


async def test_send_message_streams_deltas_whose_concatenation_is_the_answer(bridge: Runtime) -> None:
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    result = await bridge.conversations.send_message(
        user_id="alice", message="What is a washed process?", on_delta=on_delta
    )
    assert len(deltas) > 1
    assert "".join(deltas) == result.answer
    assert "wash" in result.answer.lower()
    assert result.usage is not None
    assert result.usage.token_count > 0
    assert result.rounds == 0


async def test_the_chat_record_holds_the_finished_answer(bridge: Runtime) -> None:
    result = await bridge.conversations.send_message(user_id="alice", message="espresso ratio?")
    fetched = await bridge.conversations.get_chat_result(chat_id=result.chat_id)
    assert fetched.status == "completed"
    assert fetched.answer == result.answer
    assert fetched.conversation_id == result.conversation_id
    assert fetched.usage == result.usage


async def test_a_users_next_message_continues_the_same_conversation(bridge: Runtime) -> None:
    first = await bridge.conversations.send_message(user_id="alice", message="Tell me about Kenya coffee")
    second = await bridge.conversations.send_message(user_id="alice", message="And its processing?")
    other = await bridge.conversations.send_message(user_id="bob", message="Tell me about Kenya coffee")
    assert second.conversation_id == first.conversation_id
    assert other.conversation_id != first.conversation_id
    assert second.chat_id != first.chat_id
    listed = await bridge.conversations.get_conversation_messages(user_id="alice", order="asc", limit=50)
    contents = [m.content for m in listed.messages if m.role == "user"]
    assert contents == ["Tell me about Kenya coffee", "And its processing?"]


async def test_conversation_continuity_survives_a_restart_with_the_same_sqlite_file(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    db = tmp_path / "state" / "kb.db"
    db.parent.mkdir()
    async with open_bridge(sandbox=handle, db_path=db) as first_run:
        before = await first_run.conversations.send_message(user_id="carol", message="What is a flat white?")
    async with open_bridge(sandbox=handle, db_path=db) as second_run:
        after = await second_run.conversations.send_message(user_id="carol", message="And a cortado?")
        old = await second_run.conversations.get_chat_result(chat_id=before.chat_id)
    assert after.conversation_id == before.conversation_id
    assert old.answer == before.answer


async def test_create_conversation_makes_the_new_one_current(bridge: Runtime) -> None:
    first = await bridge.conversations.send_message(user_id="dan", message="hello coffee")
    created = await bridge.conversations.create_conversation(user_id="dan")
    assert created.conversation_id != first.conversation_id
    following = await bridge.conversations.send_message(user_id="dan", message="what is robusta?")
    assert following.conversation_id == created.conversation_id


async def test_an_explicit_conversation_id_is_used_and_becomes_current(bridge: Runtime) -> None:
    created = await bridge.conversations.create_conversation(user_id="someone-else")
    sent = await bridge.conversations.send_message(
        user_id="erin", message="what is arabica?", conversation_id=created.conversation_id
    )
    assert sent.conversation_id == created.conversation_id
    assert await bridge.conversations.current_conversation(user_id="erin") == created.conversation_id


async def test_a_stored_conversation_that_vanished_upstream_is_replaced(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db") as bridge:
        await bridge.store.set_conversation(user_id="frank", bot_id=bridge.conversations.default_bot_id,
                                            conversation_id="7399999999999999999")
        sent = await bridge.conversations.send_message(user_id="frank", message="what is a latte?")
        assert sent.conversation_id != "7399999999999999999"
        assert await bridge.conversations.current_conversation(user_id="frank") == sent.conversation_id


async def test_the_plugin_bots_requires_action_is_resolved_through_the_registry(bridge: Runtime) -> None:
    seen: list[str] = []
    result = await bridge.conversations.send_message(
        user_id="gina", message="埃塞俄比亚咖啡有什么特点", bot_id=PLUGIN_BOT_ID, on_delta=_collect(seen)
    )
    direct = await bridge.registry.call("coffee_knowledge_query", {"query": "埃塞俄比亚咖啡有什么特点"})
    assert result.rounds == 1
    assert result.answer == direct["answer"]
    assert "".join(seen) == result.answer
    messages = await bridge.coze.list_chat_messages(conversation_id=result.conversation_id, chat_id=result.chat_id)
    kinds = [str(m.type) for m in messages]
    assert "function_call" in kinds
    assert "tool_response" in kinds


async def test_an_unknown_plugin_tool_gets_an_error_output_instead_of_a_hang(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", plugin_tools=False) as bridge:
        with anyio.fail_after(20):
            result = await bridge.conversations.send_message(
                user_id="hal", message="what is a ristretto?", bot_id=PLUGIN_BOT_ID
            )
    assert result.rounds == 1
    assert json.loads(result.answer) == {"error": "unknown tool coffee_knowledge_query"}


async def test_a_plugin_tool_that_fails_submits_its_error_text(bridge: Runtime) -> None:
    async def broken(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise KnowledgeError("the coffee index is offline")

    original = bridge.registry.get("coffee_knowledge_query")
    bridge.registry.add(dataclasses.replace(original, handler=broken, input_model=None), replace=True)
    with anyio.fail_after(20):
        result = await bridge.conversations.send_message(user_id="ivy", message="what is a macchiato?",
                                                         bot_id=PLUGIN_BOT_ID)
    assert result.rounds == 1
    assert json.loads(result.answer) == {
        "error": "tool 'coffee_knowledge_query' failed: the coffee index is offline"
    }


async def test_get_chat_result_for_an_unknown_chat_says_so(bridge: Runtime) -> None:
    with pytest.raises(ToolError, match="no chat with id '123'"):
        await bridge.conversations.get_chat_result(chat_id="123")


async def test_messages_of_a_user_without_conversation_is_a_clear_error(bridge: Runtime) -> None:
    with pytest.raises(ToolError, match="has no conversation yet"):
        await bridge.conversations.get_conversation_messages(user_id="nobody")


async def test_the_send_message_tool_reports_the_streamed_answer_as_progress_in_order(bridge: Runtime) -> None:
    progress: list[tuple[float, str | None]] = []
    logs: list[str] = []

    class Recorder(ToolContext):
        caller_id = "session-1"

        async def report_progress(self, p: float, total: float | None = None, message: str | None = None) -> None:
            progress.append((p, message))

        async def log(self, level: str, message: str) -> None:
            logs.append(message)

    result = await bridge.registry.call("send_message", {"message": "What is cold brew?"}, ctx=Recorder())
    text = "".join(message or "" for _, message in progress)
    assert text == result["answer"]
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    assert progress[-1][0] == len(result["answer"])
    assert "".join(logs) == result["answer"]
    # The caller identity came from the context (an MCP session, here), not "default".
    assert await bridge.conversations.current_conversation(user_id="session-1") == result["conversation_id"]


async def test_the_send_message_tool_rejects_a_blank_message_naming_the_field(bridge: Runtime) -> None:
    with pytest.raises(ToolInputError, match="'message'"):
        await bridge.registry.call("send_message", {"message": "   "})
    with pytest.raises(ToolInputError, match="'message'"):
        await bridge.registry.call("send_message", {"message": "x" * 10001})


async def test_a_user_id_names_a_slot_inside_the_callers_own_space(bridge: Runtime) -> None:
    result = await bridge.registry.call(
        "send_message", {"message": "hi", "user_id": "explicit"}, ctx=NullToolContext(caller_id="session-2")
    )
    assert await bridge.conversations.current_conversation(user_id="session-2|explicit") == result["conversation_id"]
    assert await bridge.conversations.current_conversation(user_id="explicit") is None  # not a global "explicit"
    assert await bridge.conversations.current_conversation(user_id="session-2") is None  # nor the caller's own slot


async def test_two_callers_naming_the_same_user_get_two_conversations(bridge: Runtime) -> None:
    ann = await bridge.registry.call("send_message", {"message": "hi", "user_id": "jo"}, ctx=NullToolContext(caller_id="a"))
    bob = await bridge.registry.call("send_message", {"message": "hi", "user_id": "jo"}, ctx=NullToolContext(caller_id="b"))
    assert ann["conversation_id"] != bob["conversation_id"]


@pytest.mark.parametrize(
    ("tool", "arguments", "fragment"),
    [
        pytest.param("get_chat_result", lambda c, m: {"chat_id": m}, "was sent by you", id="read-the-result"),
        pytest.param("cancel_chat", lambda c, m: {"conversation_id": c, "chat_id": m}, "was sent by you", id="cancel"),
        pytest.param("get_conversation_messages", lambda c, m: {"conversation_id": c}, "not one of yours",
                     id="read-the-conversation"),
        pytest.param("send_message", lambda c, m: {"conversation_id": c, "message": "mine now"}, "not one of yours",
                     id="write-into-it"),
    ],
)
async def test_another_callers_chat_and_conversation_are_out_of_reach(
    bridge: Runtime, tool: str, arguments: Any, fragment: str
) -> None:
    owner = await bridge.registry.call("send_message", {"message": "secret plans"}, ctx=NullToolContext(caller_id="a"))
    with pytest.raises(ToolError, match=fragment):
        await bridge.registry.call(tool, arguments(owner["conversation_id"], owner["chat_id"]),
                                   ctx=NullToolContext(caller_id="b"))
    mine = await bridge.registry.call("get_chat_result", {"chat_id": owner["chat_id"]}, ctx=NullToolContext(caller_id="a"))
    assert mine["answer"] == owner["answer"]  # the owner still reaches it


async def test_an_unknown_chat_and_another_callers_chat_get_the_same_answer(bridge: Runtime) -> None:
    owner = await bridge.registry.call("send_message", {"message": "hi"}, ctx=NullToolContext(caller_id="a"))
    errors = []
    for chat_id in (owner["chat_id"], "7499999999999999999"):
        with pytest.raises(ToolError) as info:
            await bridge.registry.call("get_chat_result", {"chat_id": chat_id}, ctx=NullToolContext(caller_id="b"))
        errors.append(str(info.value).replace(chat_id, "<id>"))
    assert errors[0] == errors[1]  # nothing tells b that a's chat exists


async def test_a_caller_id_with_the_separator_cannot_reach_into_another_callers_space(bridge: Runtime) -> None:
    owner = await bridge.registry.call("send_message", {"message": "hi", "user_id": "x"},
                                       ctx=NullToolContext(caller_id="a"))
    with pytest.raises(ToolError, match="was sent by you"):
        await bridge.registry.call("get_chat_result", {"chat_id": owner["chat_id"]},
                                   ctx=NullToolContext(caller_id="a|x"))


async def test_with_shared_user_ids_any_caller_reaches_any_users_conversation(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    overrides = {"conversations_shared_user_ids": True}
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge:
        first = await bridge.registry.call("send_message", {"message": "hi", "user_id": "jo"},
                                           ctx=NullToolContext(caller_id="a"))
        second = await bridge.registry.call("send_message", {"message": "again", "user_id": "jo"},
                                            ctx=NullToolContext(caller_id="b"))
        read = await bridge.registry.call("get_chat_result", {"chat_id": first["chat_id"]},
                                          ctx=NullToolContext(caller_id="b"))
    assert first["conversation_id"] == second["conversation_id"]
    assert read["chat_id"] == first["chat_id"]


@pytest.mark.parametrize(
    "user_id",
    [pytest.param("jo\x00", id="nul"), pytest.param("jo\ud800", id="lone-surrogate"), pytest.param("a\nb", id="newline")],
)
async def test_a_user_id_the_store_cannot_keep_exactly_is_refused(bridge: Runtime, user_id: str) -> None:
    with pytest.raises(ToolInputError, match="user_id"):
        await bridge.registry.call("send_message", {"message": "hi", "user_id": user_id},
                                   ctx=NullToolContext(caller_id="a"))


class _NotifyingStore:
    """The real store, plus an event when a chat is recorded with a given status."""

    def __init__(self, inner: Store, status: str) -> None:
        self._inner = inner
        self._status = status
        self.event = anyio.Event()
        self.records: list[ChatRecord] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def save_chat(self, record: ChatRecord) -> None:
        await self._inner.save_chat(record)
        self.records.append(record)
        if record.status == self._status:
            self.event.set()


async def test_cancelling_send_message_cancels_the_coze_chat_and_records_it(tmp_path: Path) -> None:
    from tests.bridge import running_sandbox

    holder: dict[str, _NotifyingStore] = {}

    def wrap(store: Store) -> Store:
        holder["store"] = _NotifyingStore(store, "canceled")
        return holder["store"]  # type: ignore[return-value]

    async with running_sandbox(stream_chunk_delay=0.05) as (handle, coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db", wrap_store=wrap
    ) as bridge:
        first_delta = anyio.Event()

        async def on_delta(text: str) -> None:
            first_delta.set()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: bridge.conversations.send_message(
                    user_id="jo", message="Tell me everything about espresso extraction", on_delta=on_delta))
                await first_delta.wait()
                tg.cancel_scope.cancel()
            store = holder["store"]
            await store.event.wait()
        record = store.records[-1]
        chat = await coze.retrieve_chat(conversation_id=record.conversation_id, chat_id=record.chat_id)
    assert str(chat.status) == "canceled"
    assert record.status == "canceled"
    assert record.answer  # what had arrived is kept
    assert "caller stopped waiting" in (record.error or "")


def _collect(into: list[str]):  # type: ignore[no-untyped-def]
    async def on_delta(text: str) -> None:
        into.append(text)

    return on_delta


async def test_a_chat_canceled_by_cancel_chat_ends_send_message_as_canceled(tmp_path: Path) -> None:
    from tests.bridge import running_sandbox

    holder: dict[str, _NotifyingStore] = {}

    def wrap(store: Store) -> Store:
        holder["store"] = _NotifyingStore(store, "in_progress")
        return holder["store"]  # type: ignore[return-value]

    outcome: list[BaseException] = []
    async with running_sandbox(stream_chunk_delay=0.05) as (handle, _coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db", wrap_store=wrap
    ) as bridge:

        async def send() -> None:
            try:
                await bridge.conversations.send_message(user_id="kim", message="Explain espresso extraction")
            except ChatCanceledError as exc:
                outcome.append(exc)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                await holder["store"].event.wait()
                running = holder["store"].records[-1]
                canceled = await bridge.conversations.cancel_chat(conversation_id=running.conversation_id,
                                                                  chat_id=running.chat_id)
        final = await bridge.conversations.get_chat_result(chat_id=running.chat_id)
    assert canceled.status == "canceled"
    assert len(outcome) == 1
    assert final.status == "canceled"
    assert "canceled" in (final.error or "")


async def test_the_send_message_tool_sends_no_progress_where_the_door_cannot_report(bridge: Runtime) -> None:
    calls: list[str] = []

    class Mute(ToolContext):
        @property
        def can_report(self) -> bool:
            return False

        async def report_progress(self, p: float, total: float | None = None, message: str | None = None) -> None:
            calls.append(message or "")

    result = await bridge.registry.call("send_message", {"message": "What is a cortado?"}, ctx=Mute())
    assert result["answer"]
    assert calls == []
