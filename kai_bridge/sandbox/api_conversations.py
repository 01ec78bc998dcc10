"""Conversation and message routes (``/v1/conversation*``, ``/v1/conversations*``)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.api_bots import find_bot
from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.bots import OWNER_USER_ID
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.routing import RouteSpec, int_param, logid_of, ok, opt_str, read_json, req_str
from kai_bridge.sandbox.store import CONNECTOR_API, Conversation, Message
from kai_bridge.sandbox.wire import ApiError, envelope

__all__ = ["ParsedMessage", "conversation_routes", "find_conversation", "parse_message", "parse_meta"]

_CONTENT_TYPES = frozenset({"text", "object_string", "card"})


def find_conversation(ctx: SandboxContext, conversation_id: str) -> Conversation:
    conv = ctx.store.conversations.get(conversation_id)
    if conv is None:
        raise ApiError(4200, f"The conversation {conversation_id} does not exist")
    return conv


def parse_meta(value: Any, *, name: str = "meta_data") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ApiError(4000, f"Invalid parameter: {name} must be a map of string to string")
    if len(value) > 16:
        raise ApiError(4000, f"Invalid parameter: {name} has at most 16 pairs")
    return dict(value)


class ParsedMessage:
    __slots__ = ("content", "content_type", "meta_data", "role", "text", "type")

    def __init__(self, role: str, type_: str, content: str, content_type: str, meta_data: dict[str, str], text: str):
        self.role = role
        self.type = type_
        self.content = content
        self.content_type = content_type
        self.meta_data = meta_data
        self.text = text


def _object_string_text(content: str) -> str:
    try:
        items = json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise ApiError(4000, "Invalid parameter: object_string content must be a JSON array") from exc
    if not isinstance(items, list):
        raise ApiError(4000, "Invalid parameter: object_string content must be a JSON array")
    texts = [
        i["text"] for i in items if isinstance(i, dict) and i.get("type") == "text" and isinstance(i.get("text"), str)
    ]
    return "\n".join(texts)


def parse_message(item: Any, *, where: str) -> ParsedMessage:
    """One EnterMessage; tolerant of cozepy's nulls and empty ``type``."""
    if not isinstance(item, dict):
        raise ApiError(4000, f"Invalid parameter: {where} must be an object")
    role = item.get("role")
    if role not in ("user", "assistant"):
        raise ApiError(4000, f"Invalid parameter: {where}.role must be 'user' or 'assistant'")
    type_ = item.get("type") or ("question" if role == "user" else "answer")
    allowed = {"question"} if role == "user" else {"answer", "function_call", "tool_output", "tool_response"}
    if type_ not in allowed:
        raise ApiError(4000, f"Invalid parameter: {where}.type {type_!r} is not allowed for role {role}")
    content = item.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ApiError(4000, f"Invalid parameter: {where}.content must be a string")
    content_type = item.get("content_type") or "text"
    if content_type not in _CONTENT_TYPES:
        raise ApiError(4000, f"Invalid parameter: {where}.content_type {content_type!r} is not supported")
    text = _object_string_text(content) if content_type == "object_string" else content
    return ParsedMessage(
        role, type_, content, content_type, parse_meta(item.get("meta_data"), name=f"{where}.meta_data"), text
    )


def _message_list_page(
    messages: list[Message], *, order: str, before_id: str | None, after_id: str | None, limit: int
) -> tuple[list[Message], bool]:
    """Coze paging: positions follow the listing order; ``after_id`` pages on, ``before_id`` back."""
    listing = messages if order == "asc" else messages[::-1]
    position = {m.id: i for i, m in enumerate(listing)}

    def pos(cursor: str, name: str) -> int:
        if cursor not in position:
            raise ApiError(4000, f"Invalid parameter: {name} {cursor} is not a message of this conversation")
        return position[cursor]

    start, end = 0, len(listing)
    if after_id is not None:
        start = pos(after_id, "after_id") + 1
    if before_id is not None:
        end = pos(before_id, "before_id")
    if before_id is not None and after_id is None:
        first = max(start, end - limit)
        return listing[first:end], first > start
    page = listing[start : min(end, start + limit)]
    return page, start + limit < end


def conversation_routes(ctx: SandboxContext) -> list[RouteSpec]:
    store = ctx.store

    async def create(request: Request, _p: Principal | None) -> Response:
        body = await read_json(request, required=False)
        bot_id = opt_str(body, "bot_id")
        if bot_id is not None:
            find_bot(bot_id, ctx.plugins, deleted=ctx.callbacks.deleted_bots)
        name = body.get("name") or ""
        if not isinstance(name, str) or len(name) > 100:
            raise ApiError(4000, "Invalid parameter: name must be a string of at most 100 characters")
        raw_messages = body.get("messages") or []
        if not isinstance(raw_messages, list):
            raise ApiError(4000, "Invalid parameter: messages must be an array")
        parsed = [parse_message(m, where=f"messages[{i}]") for i, m in enumerate(raw_messages)]
        conv = store.create_conversation(
            bot_id=bot_id or "",
            creator_id=OWNER_USER_ID,
            name=name,
            meta_data=parse_meta(body.get("meta_data")),
            connector_id=opt_str(body, "connector_id") or CONNECTOR_API,
        )
        for p in parsed:
            conv.add(
                store.new_message(
                    conv=conv,
                    chat_id="",
                    bot_id=bot_id or "",
                    role=p.role,
                    type_=p.type,
                    content=p.content,
                    content_type=p.content_type,
                    meta_data=p.meta_data,
                )
            )
        return ok(request, conv.to_json())

    async def retrieve(request: Request, _p: Principal | None) -> Response:
        conv = find_conversation(ctx, req_str(request.query_params, "conversation_id"))
        return ok(request, conv.to_json())

    async def list_conversations(request: Request, _p: Principal | None) -> Response:
        params = request.query_params
        bot_id = req_str(params, "bot_id")
        find_bot(bot_id, ctx.plugins, deleted=ctx.callbacks.deleted_bots)
        page_num = int_param(params, "page_num", default=1, low=1, high=1_000_000)
        page_size = int_param(params, "page_size", default=50, low=1, high=50)
        sort_order = (params.get("sort_order") or "DESC").upper()
        if sort_order not in ("ASC", "DESC"):
            raise ApiError(4000, "Invalid parameter: sort_order must be ASC or DESC")
        matching = [c for c in store.conversations.values() if c.bot_id == bot_id]
        if sort_order == "DESC":
            matching.reverse()
        start = (page_num - 1) * page_size
        items = matching[start : start + page_size]
        return ok(
            request,
            {"has_more": start + page_size < len(matching), "conversations": [c.to_json() for c in items]},
        )

    async def update(request: Request, _p: Principal | None) -> Response:
        conv = find_conversation(ctx, request.path_params["conversation_id"])
        body = await read_json(request)
        name = body.get("name")
        if not isinstance(name, str) or len(name) > 100:
            raise ApiError(4000, "Invalid parameter: name must be a string of at most 100 characters")
        conv.name = name
        conv.updated_at = store.now()
        return ok(request, conv.to_json())

    async def delete(request: Request, _p: Principal | None) -> Response:
        conv = find_conversation(ctx, request.path_params["conversation_id"])
        store.delete_conversation(conv.id)
        return ok(request, {})

    async def clear(request: Request, _p: Principal | None) -> Response:
        conv = find_conversation(ctx, request.path_params["conversation_id"])
        conv.last_section_id = store.ids.next()
        conv.updated_at = store.now()
        return ok(request, {"id": conv.last_section_id, "conversation_id": conv.id})

    async def message_create(request: Request, _p: Principal | None) -> Response:
        conv = find_conversation(ctx, req_str(request.query_params, "conversation_id"))
        body = await read_json(request)
        parsed = parse_message(body, where="message")
        if not parsed.content:
            raise ApiError(4000, "Invalid parameter: content is required")
        message = store.new_message(
            conv=conv,
            chat_id="",
            bot_id=conv.bot_id,
            role=parsed.role,
            type_=parsed.type,
            content=parsed.content,
            content_type=parsed.content_type,
            meta_data=parsed.meta_data,
        )
        conv.add(message)
        conv.updated_at = message.created_at
        return ok(request, message.to_json())

    async def message_list(request: Request, _p: Principal | None) -> Response:
        conv = find_conversation(ctx, req_str(request.query_params, "conversation_id"))
        body = await read_json(request, required=False)
        order = body.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise ApiError(4000, "Invalid parameter: order must be 'asc' or 'desc'")
        limit = int_param(body, "limit", default=50, low=1, high=50)
        middle = body.get("include_middle_message") is True
        messages = store.visible_messages(conv, chat_id=opt_str(body, "chat_id"), middle=middle)
        page, has_more = _message_list_page(
            messages,
            order=order,
            before_id=opt_str(body, "before_id"),
            after_id=opt_str(body, "after_id"),
            limit=limit,
        )
        return ok(
            request,
            [m.to_json() for m in page],
            first_id=page[0].id if page else "",
            last_id=page[-1].id if page else "",
            has_more=has_more,
        )

    def find_message(request: Request) -> tuple[Conversation, Message]:
        conv = find_conversation(ctx, req_str(request.query_params, "conversation_id"))
        message_id = req_str(request.query_params, "message_id")
        pos = conv.index.get(message_id)
        if pos is None:
            raise ApiError(4200, f"The message {message_id} does not exist in conversation {conv.id}")
        return conv, conv.messages[pos]

    async def message_retrieve(request: Request, _p: Principal | None) -> Response:
        _conv, message = find_message(request)
        return ok(request, message.to_json())

    async def message_modify(request: Request, _p: Principal | None) -> Response:
        _conv, message = find_message(request)
        body = await read_json(request)
        content = body.get("content")
        if content is not None:
            if not isinstance(content, str):
                raise ApiError(4000, "Invalid parameter: content must be a string")
            message.content = content
        content_type = body.get("content_type")
        if content_type is not None:
            if content_type not in _CONTENT_TYPES:
                raise ApiError(4000, f"Invalid parameter: content_type {content_type!r} is not supported")
            message.content_type = content_type
        if body.get("meta_data") is not None:
            message.meta_data = parse_meta(body.get("meta_data"))
        message.updated_at = store.now()
        # The real API answers the modified message under "message", not "data".
        return envelope(None, logid=logid_of(request), extra={"message": message.to_json()})

    async def message_delete(request: Request, _p: Principal | None) -> Response:
        conv, message = find_message(request)
        conv.remove(message.id)
        return ok(request, message.to_json())

    return [
        RouteSpec("conversations.create", "/v1/conversation/create", ["POST"], create),
        RouteSpec("conversations.retrieve", "/v1/conversation/retrieve", ["GET"], retrieve),
        RouteSpec("conversations.list", "/v1/conversations", ["GET"], list_conversations),
        RouteSpec("conversations.update", "/v1/conversations/{conversation_id}", ["PUT"], update),
        RouteSpec("conversations.delete", "/v1/conversations/{conversation_id}", ["DELETE"], delete),
        RouteSpec("conversations.clear", "/v1/conversations/{conversation_id}/clear", ["POST"], clear),
        RouteSpec("messages.create", "/v1/conversation/message/create", ["POST"], message_create),
        RouteSpec("messages.list", "/v1/conversation/message/list", ["POST"], message_list),
        RouteSpec("messages.retrieve", "/v1/conversation/message/retrieve", ["GET"], message_retrieve),
        RouteSpec("messages.modify", "/v1/conversation/message/modify", ["POST"], message_modify),
        RouteSpec("messages.delete", "/v1/conversation/message/delete", ["POST"], message_delete),
    ]
