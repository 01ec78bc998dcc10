"""Chat v3 routes: create (stream / non-stream), retrieve, message list, cancel, submit_tool_outputs.

Every error is decided before a stream starts, so it always reaches the client as a JSON body
with a 4xx/5xx status (what cozepy, coze-go and coze-js all expect).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.api_bots import find_bot
from kai_bridge.sandbox.api_conversations import find_conversation, parse_message, parse_meta
from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.bots import OWNER_USER_ID
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.faults import FAIL_CHAT_SCOPE_KEY
from kai_bridge.sandbox.routing import RouteSpec, ok, read_json, req_str, sse_response
from kai_bridge.sandbox.store import RUNNING_STATUSES, Chat, Conversation
from kai_bridge.sandbox.wire import ApiError

__all__ = ["chat_routes"]

_CANCELABLE = frozenset({"created", "in_progress", "requires_action"})


def _bool(body: dict[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(4000, f"Invalid parameter: {name} must be a boolean")
    return value


def chat_routes(ctx: SandboxContext) -> list[RouteSpec]:
    store = ctx.store

    def ensure_idle(conv: Conversation) -> None:
        running = conv.running_chat_id
        if running is None:
            return
        chat = store.chats.get(running)
        if chat is not None and chat.status in RUNNING_STATUSES:
            raise ApiError(
                4016,
                f"The conversation {conv.id} already has a chat in progress ({chat.id}); "
                "wait for it to finish or cancel it before starting another",
            )
        conv.running_chat_id = None

    def find_chat(conversation_id: str, chat_id: str) -> tuple[Chat, Conversation]:
        chat = store.chats.get(chat_id)
        if chat is None or chat.conversation_id != conversation_id:
            raise ApiError(4200, f"The chat {chat_id} does not exist in conversation {conversation_id}")
        return chat, find_conversation(ctx, conversation_id)

    async def create(request: Request, _p: Principal | None) -> Response:
        body = await read_json(request)
        bot_id = req_str(body, "bot_id")
        user_id = req_str(body, "user_id")
        bot = find_bot(bot_id, ctx.plugins, deleted=ctx.callbacks.deleted_bots)
        stream = _bool(body, "stream", default=False)
        auto_save = _bool(body, "auto_save_history", default=True)
        if not stream and not auto_save:
            raise ApiError(4000, "Invalid parameter: a non-stream chat needs auto_save_history=true")
        raw_messages = body.get("additional_messages") or []
        if not isinstance(raw_messages, list) or len(raw_messages) > 100:
            raise ApiError(4000, "Invalid parameter: additional_messages must be an array of at most 100 messages")
        parsed = [parse_message(m, where=f"additional_messages[{i}]") for i, m in enumerate(raw_messages)]
        meta = parse_meta(body.get("meta_data"))

        conversation_id = request.query_params.get("conversation_id") or None
        if conversation_id is not None:
            conv = find_conversation(ctx, conversation_id)
            ensure_idle(conv)
        else:
            conv = None

        question = next((p.text for p in reversed(parsed) if p.role == "user"), None)
        if question is None and conv is not None:
            question = next(
                (m.content for m in reversed(conv.messages) if m.role == "user" and m.type == "question"),
                None,
            )
        if question is None or not question.strip():
            raise ApiError(4000, "Invalid parameter: additional_messages must end with the user's question")

        if conv is None:
            conv = store.create_conversation(bot_id=bot.id, creator_id=OWNER_USER_ID)
        chat = store.create_chat(
            conv=conv, bot_id=bot.id, user_id=user_id, meta_data=meta, auto_save_history=auto_save, question=question
        )
        for p in parsed:
            message = store.new_message(
                conv=conv,
                chat_id=chat.id,
                bot_id=bot.id,
                role=p.role,
                type_=p.type,
                content=p.content,
                content_type=p.content_type,
                meta_data=p.meta_data,
            )
            if auto_save:
                conv.add(message)
        ctx.state.chats_created += 1
        fail = bool(request.scope.get(FAIL_CHAT_SCOPE_KEY))
        queue = ctx.engine.start_chat(chat, conv, stream=stream, fail=fail)
        if queue is not None:
            return sse_response(queue)
        return ok(request, chat.to_json())

    async def retrieve(request: Request, _p: Principal | None) -> Response:
        params = request.query_params
        chat, _conv = find_chat(req_str(params, "conversation_id"), req_str(params, "chat_id"))
        return ok(request, chat.to_json())

    async def message_list(request: Request, _p: Principal | None) -> Response:
        params = request.query_params
        chat, _conv = find_chat(req_str(params, "conversation_id"), req_str(params, "chat_id"))
        return ok(request, [m.to_json() for m in chat.messages])

    async def cancel(request: Request, _p: Principal | None) -> Response:
        body = await read_json(request)
        chat, conv = find_chat(req_str(body, "conversation_id"), req_str(body, "chat_id"))
        if chat.status not in _CANCELABLE:
            raise ApiError(4104, f"The chat {chat.id} is {chat.status} and can no longer be canceled")
        chat.status = "canceled"
        chat.required_action = None
        chat.pending_tool_calls = {}
        if conv.running_chat_id == chat.id:
            conv.running_chat_id = None
        return ok(request, chat.to_json())

    async def submit(request: Request, _p: Principal | None) -> Response:
        params = request.query_params
        chat, conv = find_chat(req_str(params, "conversation_id"), req_str(params, "chat_id"))
        body = await read_json(request)
        stream = _bool(body, "stream", default=False)
        raw_outputs = body.get("tool_outputs")
        if not isinstance(raw_outputs, list) or not raw_outputs:
            raise ApiError(4000, "Invalid parameter: tool_outputs must be a non-empty array")
        if not chat.auto_save_history:
            raise ApiError(5000, "Tool outputs can only be submitted for a chat that ran with auto_save_history=true")
        if chat.status != "requires_action":
            raise ApiError(4000, f"The chat {chat.id} is {chat.status}, not waiting for tool outputs")
        outputs: dict[str, str] = {}
        for i, item in enumerate(raw_outputs):
            if not isinstance(item, dict):
                raise ApiError(4000, f"Invalid parameter: tool_outputs[{i}] must be an object")
            call_id = item.get("tool_call_id")
            output = item.get("output")
            if not isinstance(call_id, str) or call_id not in chat.pending_tool_calls:
                raise ApiError(
                    4000,
                    f"Invalid parameter: tool_outputs[{i}].tool_call_id {call_id!r} is not a pending tool call "
                    f"of chat {chat.id}",
                )
            if not isinstance(output, str):
                raise ApiError(4000, f"Invalid parameter: tool_outputs[{i}].output must be a string")
            outputs[call_id] = output
        missing = set(chat.pending_tool_calls) - set(outputs)
        if missing:
            raise ApiError(4000, f"Invalid parameter: missing outputs for tool calls {', '.join(sorted(missing))}")
        ensure_idle(conv)
        ctx.state.tool_outputs_submitted += 1
        fail = bool(request.scope.get(FAIL_CHAT_SCOPE_KEY))
        queue = ctx.engine.resume_with_outputs(chat, conv, outputs, stream=stream, fail=fail)
        if queue is not None:
            return sse_response(queue)
        return ok(request, chat.to_json())

    return [
        RouteSpec("chat.create", "/v3/chat", ["POST"], create),
        RouteSpec("chat.retrieve", "/v3/chat/retrieve", ["GET", "POST"], retrieve),
        RouteSpec("chat.messages", "/v3/chat/message/list", ["GET", "POST"], message_list),
        RouteSpec("chat.cancel", "/v3/chat/cancel", ["POST"], cancel),
        RouteSpec("chat.submit_tool_outputs", "/v3/chat/submit_tool_outputs", ["POST"], submit),
    ]
