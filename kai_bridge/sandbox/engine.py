"""Runs chats: the event sequence of a Coze chat v3, for stream and non-stream alike.

Every run is a background task, so a chat progresses (and leaves ``in_progress``) even when
nobody streams it or the stream's client goes away. A stream is just a listener: the run puts
framed SSE events on a queue that the HTTP response drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

import anyio.to_thread

from kai_bridge.sandbox.answers import Answerer, is_chinese
from kai_bridge.sandbox.bots import BOTS, PLUGIN_API_ID, PLUGIN_ID, TOOL_NAME
from kai_bridge.sandbox.config import SandboxConfig
from kai_bridge.sandbox.plugins import ImportedPlugin, PluginCatalog, answer_from_plugin_output
from kai_bridge.sandbox.state import SandboxState
from kai_bridge.sandbox.store import Chat, Conversation, Message, Store
from kai_bridge.sandbox.wire import sse_frame

__all__ = ["ChatEngine", "answer_from_tool_output", "split_chunks"]

logger = logging.getLogger(__name__)

DONE = "done"
_TOKEN = re.compile(r"\S+\s*|\s+")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_COUNTABLE = re.compile(r"[\u3400-\u9fff]|\w+")
_VERBOSE_FINISH = json.dumps(
    {"msg_type": "generate_answer_finish", "data": "", "from_module": None, "from_unit": None},
    separators=(",", ":"),
)

Emit = Callable[[str, Any], None]


def split_chunks(text: str, *, words: int) -> list[str]:
    """Split an answer into small incremental pieces: ``words`` words, or 3 CJK characters."""
    pieces: list[str] = []
    for token in _TOKEN.findall(text):
        if len(token) > 4 and _CJK_RUN.search(token):
            pieces.extend(token[i : i + 3] for i in range(0, len(token), 3))
        else:
            pieces.append(token)
    chunks: list[str] = []
    group: list[str] = []
    for piece in pieces:
        group.append(piece)
        if len(group) >= words or _CJK_RUN.search(piece):
            chunks.append("".join(group))
            group = []
    if group:
        chunks.append("".join(group))
    return chunks or [text]


def answer_from_tool_output(output: str) -> str:
    """The answer a plugin bot gives from a submitted tool output.

    JSON outputs are searched for an ``answer`` (then ``text``/``content``/``result``/``output``)
    string, also one level down and in MCP-style ``content: [{text}]`` lists; anything else is
    used as raw text.
    """
    try:
        data = json.loads(output)
    except (ValueError, RecursionError):
        return output.strip()
    found = _find_text(data, depth=0)
    return found if found is not None else output.strip()


def _find_text(data: Any, *, depth: int) -> str | None:
    if isinstance(data, str):
        return data.strip() or None
    if depth > 2:
        return None
    if isinstance(data, dict):
        for key in ("answer", "text", "content", "result", "output", "structuredContent"):
            if key in data:
                found = _find_text(data[key], depth=depth + 1)
                if found:
                    return found
        return None
    if isinstance(data, list):
        texts = [t for t in (_find_text(item, depth=depth + 1) for item in data) if t]
        return "\n".join(texts) if texts else None
    return None


def _count_tokens(text: str) -> int:
    return len(_COUNTABLE.findall(text))


def _follow_ups(question: str) -> list[str]:
    if is_chinese(question):
        return ["这种咖啡适合用什么方式冲煮？", "怎样保存咖啡豆才能保持新鲜？"]
    return ["Which brewing method suits this coffee best?", "How should I store the beans to keep them fresh?"]


class ChatEngine:
    """Starts chat runs and keeps them referenced until they finish."""

    def __init__(
        self,
        *,
        store: Store,
        state: SandboxState,
        answerer: Answerer,
        config: SandboxConfig,
        plugins: PluginCatalog | None = None,
    ) -> None:
        self._plugins = plugins
        self._store = store
        self._state = state
        self._answerer = answerer
        self._config = config
        self._tasks: set[asyncio.Task[None]] = set()

    # --- public -------------------------------------------------------------------------------

    def start_chat(
        self, chat: Chat, conv: Conversation, *, stream: bool, fail: bool
    ) -> asyncio.Queue[bytes | None] | None:
        """Begin a new chat; returns the queue of SSE frames when streaming."""
        chat.status = "in_progress"
        conv.running_chat_id = chat.id
        queue, emit = self._listener(stream)
        self._spawn(chat, self._run_new(chat, conv, emit, fail=fail), queue)
        return queue

    def resume_with_outputs(
        self, chat: Chat, conv: Conversation, outputs: dict[str, str], *, stream: bool, fail: bool
    ) -> asyncio.Queue[bytes | None] | None:
        """Continue a ``requires_action`` chat with the submitted tool outputs."""
        chat.status = "in_progress"
        chat.required_action = None
        chat.pending_tool_calls = {}
        conv.running_chat_id = chat.id
        queue, emit = self._listener(stream)
        self._spawn(chat, self._run_resume(chat, conv, outputs, emit, fail=fail), queue)
        return queue

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):  # shutting down: a cancelled run needs no report
                await task

    # --- plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _listener(stream: bool) -> tuple[asyncio.Queue[bytes | None] | None, Emit]:
        if not stream:
            return None, lambda _event, _data: None
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def emit(event: str, data: Any) -> None:
            queue.put_nowait(sse_frame(event, data))

        return queue, emit

    def _spawn(self, chat: Chat, coro: Coroutine[Any, Any, None], queue: asyncio.Queue[bytes | None] | None) -> None:
        async def runner() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("sandbox: chat run %s crashed", chat.id)
                self._mark_failed(chat, "sandbox internal error while running the chat")
            finally:
                if chat.status in ("created", "in_progress"):
                    # Cancelled mid-run (shutdown, eviction): never leave a chat looking alive.
                    self._mark_failed(chat, "the chat run was interrupted")
                conv = self._store.conversations.get(chat.conversation_id)
                if conv is not None and conv.running_chat_id == chat.id:
                    conv.running_chat_id = None
                if queue is not None:
                    queue.put_nowait(None)

        task = asyncio.get_running_loop().create_task(runner(), name=f"sandbox-chat-{chat.id}")
        chat.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pause(self) -> None:
        if self._config.stream_chunk_delay > 0:
            await asyncio.sleep(self._config.stream_chunk_delay)

    def _mark_failed(self, chat: Chat, msg: str, *, code: int = 5000) -> None:
        chat.status = "failed"
        chat.failed_at = self._store.now()
        chat.last_error = {"code": code, "msg": msg}
        self._state.chats_failed += 1

    def _save(self, chat: Chat, conv: Conversation, message: Message, *, in_conversation: bool) -> None:
        chat.messages.append(message)
        if in_conversation and chat.auto_save_history:
            conv.add(message)
            conv.updated_at = message.created_at

    # --- runs ---------------------------------------------------------------------------------

    async def _run_new(self, chat: Chat, conv: Conversation, emit: Emit, *, fail: bool) -> None:
        emit("conversation.chat.created", chat.to_json(status="created"))
        emit("conversation.chat.in_progress", chat.to_json())
        cloud = self._plugins.for_bot(chat.bot_id) if self._plugins is not None else None
        if cloud is not None:
            await self._pause()
            await self._call_cloud_plugin(chat, conv, cloud, emit, fail=fail)
            return
        bot = BOTS[chat.bot_id]
        if bot.uses_local_plugin:
            await self._pause()
            await self._request_tool(chat, conv, emit)
            return
        try:
            answer = await anyio.to_thread.run_sync(self._answerer, chat.question)
        except Exception:
            logger.exception("sandbox: the answerer failed for chat %s", chat.id)
            answer = None
        if answer is None:
            self._fail(chat, emit, "the bot could not produce an answer")
            return
        await self._answer(chat, conv, answer, emit, fail=fail)

    async def _run_resume(
        self, chat: Chat, conv: Conversation, outputs: dict[str, str], emit: Emit, *, fail: bool
    ) -> None:
        emit("conversation.chat.in_progress", chat.to_json())
        combined = "\n".join(o for o in outputs.values())
        response = self._store.new_message(
            conv=conv,
            chat_id=chat.id,
            bot_id=chat.bot_id,
            role="assistant",
            type_="tool_response",
            content=combined,
        )
        self._save(chat, conv, response, in_conversation=True)
        emit("conversation.message.completed", response.to_json())
        await self._pause()
        answer = answer_from_tool_output(combined)
        if not answer:
            answer = (
                f"工具 {TOOL_NAME} 没有返回结果。"
                if is_chinese(chat.question)
                else f"The {TOOL_NAME} tool returned no result."
            )
        await self._answer(chat, conv, answer, emit, fail=fail)

    async def _call_cloud_plugin(
        self, chat: Chat, conv: Conversation, plugin: ImportedPlugin, emit: Emit, *, fail: bool
    ) -> None:
        """A cloud plugin bot: call the plugin's tool over HTTP (as Coze's servers do), answer from it."""
        assert self._plugins is not None
        assert plugin.bot_tool is not None
        tool = plugin.tool(plugin.bot_tool)
        arguments = {tool.question_field: chat.question} if tool.question_field else {}
        call = self._store.new_message(
            conv=conv,
            chat_id=chat.id,
            bot_id=chat.bot_id,
            role="assistant",
            type_="function_call",
            content=json.dumps(
                {"name": tool.name, "arguments": arguments, "plugin_id": int(plugin.plugin_id), "plugin_type": 1,
                 "plugin_name": plugin.name, "api_name": tool.name,
                 "thought": f"I should look this up with {tool.name}."},
                ensure_ascii=False, separators=(",", ":"),
            ),
        )
        self._save(chat, conv, call, in_conversation=True)
        emit("conversation.message.completed", call.to_json())
        result = await self._plugins.call(
            plugin, tool, arguments, user_id=chat.user_id, bot_id=chat.bot_id, conversation_id=conv.id
        )
        shown = json.dumps(result.data, ensure_ascii=False) if result.ok else (result.error or "")
        response = self._store.new_message(
            conv=conv, chat_id=chat.id, bot_id=chat.bot_id, role="assistant", type_="tool_response", content=shown
        )
        self._save(chat, conv, response, in_conversation=True)
        emit("conversation.message.completed", response.to_json())
        zh = is_chinese(chat.question)
        if result.ok and result.data is not None:
            answer = answer_from_plugin_output(result.data) or shown
        else:
            answer = (f"插件 {plugin.name} 调用失败：{result.error}" if zh
                      else f"The plugin {plugin.name} failed: {result.error}")
        await self._answer(chat, conv, answer, emit, fail=fail)

    async def _request_tool(self, chat: Chat, conv: Conversation, emit: Emit) -> None:
        call_id = "call_" + self._store.ids.next()
        arguments = json.dumps({"query": chat.question}, ensure_ascii=False)
        content = json.dumps(
            {
                "name": TOOL_NAME,
                "arguments": {"query": chat.question},
                "plugin_id": int(PLUGIN_ID),
                "api_id": int(PLUGIN_API_ID),
                "plugin_type": 2,
                "thought": "I should look this up with the local coffee knowledge tool.",
                "plugin_name": TOOL_NAME,
                "api_name": TOOL_NAME,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        message = self._store.new_message(
            conv=conv,
            chat_id=chat.id,
            bot_id=chat.bot_id,
            role="assistant",
            type_="function_call",
            content=content,
        )
        self._save(chat, conv, message, in_conversation=True)
        emit("conversation.message.completed", message.to_json())
        if chat.status == "canceled":
            emit(DONE, "[DONE]")
            return
        chat.pending_tool_calls = {call_id: TOOL_NAME}
        chat.required_action = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": TOOL_NAME, "arguments": arguments}}
                ]
            },
        }
        chat.status = "requires_action"
        emit("conversation.chat.requires_action", chat.to_json())
        emit(DONE, "[DONE]")

    async def _answer(self, chat: Chat, conv: Conversation, answer: str, emit: Emit, *, fail: bool) -> None:
        message = self._store.new_message(
            conv=conv, chat_id=chat.id, bot_id=chat.bot_id, role="assistant", type_="answer", content=answer
        )
        chunks = split_chunks(answer, words=self._config.stream_chunk_words)
        fail_at = len(chunks) // 2 if fail else -1
        for i, chunk in enumerate(chunks):
            if i == fail_at:
                self._fail(chat, emit, "event interval error (injected by the sandbox fault rules)")
                return
            if chat.status == "canceled":
                emit(DONE, "[DONE]")
                return
            emit("conversation.message.delta", message.delta_json(chunk))
            await self._pause()
        self._save(chat, conv, message, in_conversation=True)
        emit("conversation.message.completed", message.to_json())
        verbose = self._store.new_message(
            conv=conv,
            chat_id=chat.id,
            bot_id=chat.bot_id,
            role="assistant",
            type_="verbose",
            content=_VERBOSE_FINISH,
        )
        self._save(chat, conv, verbose, in_conversation=False)
        emit("conversation.message.completed", verbose.to_json())
        if self._config.follow_up:
            for text in _follow_ups(chat.question):
                follow = self._store.new_message(
                    conv=conv, chat_id=chat.id, bot_id=chat.bot_id, role="assistant", type_="follow_up", content=text
                )
                self._save(chat, conv, follow, in_conversation=False)
                emit("conversation.message.completed", follow.to_json())
        if chat.status == "canceled":
            emit(DONE, "[DONE]")
            return
        input_count = _count_tokens(chat.question)
        output_count = _count_tokens(answer)
        chat.usage = {
            "token_count": input_count + output_count,
            "output_count": output_count,
            "input_count": input_count,
        }
        chat.status = "completed"
        chat.completed_at = self._store.now()
        self._state.chats_completed += 1
        emit("conversation.chat.completed", chat.to_json())
        emit(DONE, "[DONE]")

    def _fail(self, chat: Chat, emit: Emit, msg: str) -> None:
        self._mark_failed(chat, msg)
        emit("conversation.chat.failed", chat.to_json())
        emit(DONE, "[DONE]")
