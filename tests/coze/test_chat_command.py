"""``kai-bridge chat``'s core (``ask``) in-process, on a runtime over the embedded sandbox.

The shell-level flows (streaming to a terminal, the next ``chat`` continuing the
conversation) are in test_coze_cli.py; here are the cases a subprocess cannot set up
cheaply, such as a bot asking for a tool the registry does not know.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from kai_bridge.cmd.chat import ask, summary
from kai_bridge.config import load_settings
from kai_bridge.runtime import Runtime, open_runtime
from kai_bridge.sandbox import PLUGIN_BOT_ID, TOOL_NAME


class Writes(io.StringIO):
    """A stdout that remembers each write separately."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[str] = []

    def write(self, text: str) -> int:
        self.pieces.append(text)
        return super().write(text)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = load_settings(
        # The embedded sandbox unpaced (stream delay 0): these tests are about the chat, not the pace.
        environ={"KAI_BRIDGE_DATA_DIR": str(tmp_path / "data"), "KAI_BRIDGE_LOG_DIR": str(tmp_path / "logs"),
                 "KAI_BRIDGE_SANDBOX_STREAM_DELAY": "0"},
        check_files=False,
    )
    notes: list[str] = []
    async with open_runtime(settings, announce=notes.append) as opened:
        assert opened.sandbox is not None, "these tests need the embedded sandbox (no credentials)"
        yield opened


async def test_a_plugin_tool_the_registry_does_not_know_ends_in_an_answer_not_a_hang(runtime: Runtime) -> None:
    runtime.registry.remove(TOOL_NAME)
    out = Writes()
    with anyio.fail_after(20):
        result = await ask(runtime, question="埃塞俄比亚咖啡特点", user_id="u-unknown-tool", bot_id=PLUGIN_BOT_ID,
                           out=out)
    assert result.rounds == 1
    assert json.loads(result.answer) == {"error": f"unknown tool {TOOL_NAME}"}
    assert out.getvalue() == result.answer + "\n"


async def test_the_plugin_bot_is_answered_by_the_local_tool_and_streamed_in_pieces(runtime: Runtime) -> None:
    out = Writes()
    with anyio.fail_after(20):
        result = await ask(runtime, question="埃塞俄比亚咖啡特点", user_id="u-stream", bot_id=PLUGIN_BOT_ID, out=out)
    direct = await runtime.registry.call(TOOL_NAME, {"query": "埃塞俄比亚咖啡特点"})
    assert result.answer == direct["answer"]
    assert result.rounds == 1
    assert len(out.pieces) > 2, "the answer must reach stdout as it arrives, not in one piece"
    assert out.getvalue() == result.answer + "\n"
    assert f"chat_id={result.chat_id}" in summary(result)
    assert summary(result).endswith("rounds=1")


async def test_no_stream_prints_the_whole_answer_once_at_the_end(runtime: Runtime) -> None:
    out = Writes()
    with anyio.fail_after(20):
        result = await ask(runtime, question="What is espresso?", user_id="u-no-stream", stream=False, out=out)
    assert "espresso" in result.answer.lower()
    assert out.pieces == [result.answer + "\n"]


async def test_the_next_question_of_the_same_user_continues_the_conversation(runtime: Runtime) -> None:
    with anyio.fail_after(20):
        first = await ask(runtime, question="埃塞俄比亚咖啡特点", user_id="u-follow", bot_id=PLUGIN_BOT_ID,
                          out=io.StringIO())
        second = await ask(runtime, question="那适合怎么冲煮？", user_id="u-follow", bot_id=PLUGIN_BOT_ID,
                           out=io.StringIO())
        other = await ask(runtime, question="那适合怎么冲煮？", user_id="someone-else", bot_id=PLUGIN_BOT_ID,
                          out=io.StringIO())
    assert second.conversation_id == first.conversation_id
    assert second.chat_id != first.chat_id
    assert other.conversation_id != first.conversation_id
