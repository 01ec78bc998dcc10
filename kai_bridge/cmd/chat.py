"""``kai-bridge chat "question"``: one Coze chat from the terminal (the seed guide's step 4).

The answer streams to stdout as it arrives (``--no-stream``: create and poll, then print);
conversation id, chat id and token usage go to stderr at the end, so stdout holds only the
answer. Failures are one line with the Coze logid, never a traceback (the CLI's main does
the printing; this module raises the package's errors).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from kai_bridge.cmd.common import settings_from_args
from kai_bridge.coze_upstream import open_coze_session
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.events import failed_error
from kai_bridge.coze.models import Chat, ChatEventType, ChatStatus, EnterMessage, MessageType
from kai_bridge.errors import ChatCanceledError, ChatError, ConfigError

__all__ = ["HELP", "add_arguments", "run"]

HELP = "ask a Coze bot a question and stream the answer (uses the sandbox when no Coze credentials are set)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="what to ask")
    parser.add_argument("--bot-id", help="the bot to ask (default: coze_bot_id, or the sandbox's coffee bot)")
    parser.add_argument("--user-id", default="kai-bridge-cli", help="your end-user id (default: kai-bridge-cli)")
    parser.add_argument("--conversation-id", help="continue this conversation")
    parser.add_argument("--no-stream", action="store_true", help="create and poll instead of streaming")


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _summary(chat: Chat) -> str:
    parts = [f"conversation_id={chat.conversation_id}", f"chat_id={chat.id}", f"status={chat.status}"]
    if chat.usage is not None:
        u = chat.usage
        parts.append(f"tokens: input={u.input_count} output={u.output_count} total={u.token_count}")
    return " ".join(parts)


def _paused(chat: Chat) -> ChatError:
    names = ", ".join(c.function.name for c in chat.required_action.tool_calls) if chat.required_action else "?"
    return ChatError(
        f"the chat paused for local tool calls ({names}); this command does not run tools "
        f"(use 'kai-bridge serve' or another bot) [conversation_id={chat.conversation_id} chat_id={chat.id}]",
        chat_id=chat.id,
        conversation_id=chat.conversation_id,
    )


async def _stream(client: CozeClient, *, bot_id: str, args: argparse.Namespace) -> Chat:
    out = sys.stdout
    chat: Chat | None = None
    printed_any = False
    events = client.stream_chat(
        bot_id=bot_id, user_id=args.user_id, messages=[EnterMessage.user(args.question)],
        conversation_id=args.conversation_id,
    )
    async with contextlib.aclosing(events):
        async for event in events:
            if event.chat is not None:
                chat = event.chat
            if event.event is ChatEventType.MESSAGE_DELTA and event.message is not None:
                if event.message.type in (MessageType.ANSWER, MessageType.UNSET):
                    out.write(event.message.content)
                    out.flush()
                    printed_any = printed_any or bool(event.message.content)
            elif event.event is ChatEventType.MESSAGE_COMPLETED and event.message is not None:
                if event.message.type is MessageType.ANSWER and not printed_any:
                    out.write(event.message.content)  # a bot that sends no deltas
                    printed_any = True
            elif event.event is ChatEventType.ERROR or event.event is ChatEventType.CHAT_FAILED:
                if printed_any:
                    out.write("\n")
                    out.flush()
                raise failed_error(chat, error=event.error, logid=event.logid)
    if printed_any:
        out.write("\n")
        out.flush()
    if chat is None:
        raise ChatError("the Coze stream ended without telling which chat it was")
    return chat


async def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    async with open_coze_session(settings, announce=_stderr) as session:
        bot_id = args.bot_id or session.bot_id
        if not bot_id:
            raise ConfigError("no bot to ask: pass --bot-id or set coze_bot_id (KAI_BRIDGE_COZE_BOT_ID)")
        if args.no_stream:
            result = await session.client.create_and_poll(
                bot_id=bot_id, user_id=args.user_id, messages=[EnterMessage.user(args.question)],
                conversation_id=args.conversation_id,
            )
            chat = result.chat
            if chat.status is not ChatStatus.REQUIRES_ACTION:
                print(result.answer, flush=True)
        else:
            chat = await _stream(session.client, bot_id=bot_id, args=args)
        if chat.status is ChatStatus.REQUIRES_ACTION:
            raise _paused(chat)
        if chat.status is ChatStatus.CANCELED:
            raise ChatCanceledError(f"the chat was canceled [{_summary(chat)}]", chat_id=chat.id)
        _stderr(_summary(chat))
        return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
