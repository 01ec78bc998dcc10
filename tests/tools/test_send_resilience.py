"""A chat is never sent twice, and sends into one conversation queue instead of colliding (4016)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kai_bridge.coze import CozeClient
from kai_bridge.sandbox import FaultRule, SandboxHandle
from kai_bridge.store import Store
from kai_bridge.tools import NullToolContext
from tests.bridge import open_bridge, running_sandbox

QUESTION = "What is a flat white?"


@pytest.mark.parametrize(
    ("after_effect", "resumed"),
    [
        pytest.param(False, 0, id="refused-before-starting: sent again"),
        pytest.param(True, 1, id="failed-after-starting: followed, not sent again"),
    ],
)
async def test_a_chat_create_that_failed_with_a_5xx_runs_exactly_once(
    tmp_path: Path, after_effect: bool, resumed: int
) -> None:
    async with running_sandbox() as (handle, coze), open_bridge(sandbox=handle, db_path=tmp_path / "kb.db") as bridge:
        conversation = await bridge.conversations.create_conversation(user_id="ana")
        handle.faults.add(FaultRule(route="chat.create", error_rate=1.0, error_after_effect=after_effect, times=1))
        with anyio.fail_after(30):
            result = await bridge.conversations.send_message(user_id="ana", message=QUESTION)
        page = await coze.list_messages(conversation_id=conversation.conversation_id, limit=50)
        record = await bridge.store.get_chat(chat_id=result.chat_id)
    questions = [m for m in page.items if m.role == "user"]
    assert result.conversation_id == conversation.conversation_id
    assert "flat white" in result.answer.lower() or "馥芮白" in result.answer
    assert len(questions) == 1  # the question reached Coze once: one chat, not two
    assert handle.state.chats_created == 1
    assert handle.state.faults_injected["error"] == 1
    assert bridge.coze.counters["chat_creates_checked"] == 1
    assert bridge.coze.counters["chat_creates_resumed"] == resumed
    assert record is not None
    assert record.status == "completed"


async def test_a_new_users_conversation_exists_before_the_chat_so_a_failed_create_can_be_checked(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db") as bridge:
        handle.faults.add(FaultRule(route="chat.create", error_rate=1.0, error_after_effect=True, times=1))
        with anyio.fail_after(30):
            result = await bridge.conversations.send_message(user_id="newcomer", message=QUESTION)
        current = await bridge.store.get_conversation(user_id="newcomer", bot_id=result.bot_id)
    assert current == result.conversation_id
    assert bridge.coze.counters["chat_creates_resumed"] == 1


async def test_messages_sent_at_once_into_one_conversation_are_answered_one_after_another(tmp_path: Path) -> None:
    # Paced answers: each chat runs long enough for the others to arrive while it does.
    async with running_sandbox(stream_chunk_delay=0.005) as (handle, coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db"
    ) as bridge:
        questions = [f"Question {i}: what is espresso?" for i in range(5)]
        answers: dict[str, str] = {}

        async def send(question: str) -> None:
            result = await bridge.conversations.send_message(user_id="kim", message=question)
            answers[question] = result.conversation_id

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for question in questions:
                    tg.start_soon(send, question)
        conversation_ids = set(answers.values())
        [conversation_id] = conversation_ids  # one conversation for the user, not one per racing send
        page = await coze.list_messages(conversation_id=conversation_id, order="asc", limit=50)
    asked = [m.content for m in page.items if m.role == "user"]
    assert sorted(asked) == sorted(questions)
    assert asked == questions  # the queue is first come, first served
    assert handle.state.chats_created == 5


async def test_two_replicas_sharing_a_store_take_turns_on_one_conversation(tmp_path: Path) -> None:
    # Two runtimes on one database: only the store's lease keeps their chats apart (no 4016).
    db = tmp_path / "shared.db"
    async with running_sandbox(stream_chunk_delay=0.005) as (handle, coze), open_bridge(
        sandbox=handle, db_path=db
    ) as first, open_bridge(sandbox=handle, db_path=db) as second:
        conversation = await first.conversations.create_conversation(user_id="lee")
        results: list[str] = []

        async def send(bridge_index: int, n: int) -> None:
            bridge = (first, second)[bridge_index]
            result = await bridge.conversations.send_message(
                user_id="lee", message=f"replica {bridge_index} question {n}: what is a cortado?",
                conversation_id=conversation.conversation_id,
            )
            results.append(result.chat_id)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(send, 0, n)
                    tg.start_soon(send, 1, n)
        page = await coze.list_messages(conversation_id=conversation.conversation_id, limit=50)
    assert len(set(results)) == 6
    assert len([m for m in page.items if m.role == "user"]) == 6
    assert handle.state.chats_created == 6


class _LeaseRecordingStore:
    """The real store; remembers the ttl of every conversation lease taken."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.ttls: list[float] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def acquire_lease(self, *, name: str, owner: str, ttl: float) -> bool:
        self.ttls.append(ttl)
        return await self._inner.acquire_lease(name=name, owner=owner, ttl=ttl)


@pytest.mark.parametrize(("overrides", "expected"), [({}, 30.0), ({"conversation_lease": 4.5}, 4.5)])
async def test_the_conversation_lease_lives_as_long_as_the_setting_says(
    tmp_path: Path, overrides: dict[str, float], expected: float
) -> None:
    # How long a crashed replica blocks its conversations is the lease's ttl: the setting must reach it.
    holder: dict[str, _LeaseRecordingStore] = {}

    def wrap(store: Store) -> Store:
        holder["store"] = _LeaseRecordingStore(store)
        return holder["store"]  # type: ignore[return-value]

    async with running_sandbox(stream_chunk_delay=0.0) as (handle, _coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db", wrap_store=wrap, settings_overrides=overrides
    ) as bridge:
        await bridge.conversations.send_message(user_id="lee", message=QUESTION)
    assert holder["store"].ttls  # the send took the lease
    assert set(holder["store"].ttls) == {expected}


async def test_send_message_called_again_with_the_same_idempotency_key_starts_no_second_chat(tmp_path: Path) -> None:
    # What a webhook route does when the dispatcher that first ran it died mid-chat.
    async with running_sandbox(stream_chunk_delay=0.0) as (handle, _coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db"
    ) as bridge:
        ctx = NullToolContext(caller_id="webhook-route-announce", idempotency_key="event:1:route:announce")
        first = await bridge.registry.call("send_message", {"message": QUESTION}, ctx=ctx)
        again = await bridge.registry.call("send_message", {"message": QUESTION}, ctx=ctx)
        other = await bridge.registry.call("send_message", {"message": QUESTION}, ctx=NullToolContext(
            caller_id="webhook-route-announce", idempotency_key="event:2:route:announce"))
    assert again["chat_id"] == first["chat_id"]
    assert again["answer"] == first["answer"]
    assert other["chat_id"] != first["chat_id"]
    assert handle.state.chats_created == 2
