"""``kai-bridge chat "question"``: one Coze chat from the terminal (the seed guide's step 4).

The chat goes through the composition root's conversation service, exactly as an MCP
``send_message`` does, so the terminal sees what an MCP client would:

- the answer streams to stdout as it arrives (``--no-stream``: printed once at the end; the
  bridge still streams from Coze, so everything else is the same);
- a ``requires_action`` pause (a bot calling a local plugin, like the sandbox's plugin bot
  and ``coffee_knowledge_query``) is answered by the bridge's own tool registry; a tool the
  registry does not know gets an error output, so the bot answers instead of waiting;
- the conversation is remembered per ``--user-id`` and bot in the store, so the next
  ``chat`` continues it (``--conversation-id`` picks one explicitly).

Conversation id, chat id, usage and plugin rounds go to stderr at the end, so stdout holds
only the answer. Failures are one line with the Coze logid, never a traceback (the CLI's
main does the printing; this module raises the package's errors).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from kai_bridge.errors import ChatError, ConfigError

if TYPE_CHECKING:
    from kai_bridge.conversations import SendResult
    from kai_bridge.runtime import Runtime

__all__ = ["HELP", "add_arguments", "ask", "run", "summary"]

HELP = "ask a Coze bot a question and stream the answer (uses the sandbox when no Coze credentials are set)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="what to ask")
    parser.add_argument("--bot-id", help="the bot to ask (default: coze_bot_id, or the sandbox's coffee bot)")
    parser.add_argument(
        "--user-id",
        default="kai-bridge-cli",
        help="your end-user id; your conversation with the bot is kept under it (default: kai-bridge-cli)",
    )
    parser.add_argument("--conversation-id", help="continue this conversation (default: your last one with the bot)")
    parser.add_argument(
        "--no-stream", action="store_true", help="print the answer once at the end instead of as it arrives"
    )


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def summary(result: SendResult) -> str:
    """The one stderr line after an answer: ids, token usage and plugin rounds."""
    parts = [f"conversation_id={result.conversation_id}", f"chat_id={result.chat_id}", "status=completed"]
    if result.usage is not None:
        u = result.usage
        parts.append(f"tokens: input={u.input_count} output={u.output_count} total={u.token_count}")
    parts.append(f"rounds={result.rounds}")
    return " ".join(parts)


def _with_ids(exc: ChatError) -> ChatError:
    """The same error with its logid and chat ids in the one line the user sees."""
    extra = [
        f"{name} {value}"
        for name, value in (("logid", exc.logid), ("conversation_id", exc.conversation_id), ("chat_id", exc.chat_id))
        if value and value not in exc.message
    ]
    if not extra:
        return exc
    return type(exc)(
        f"{exc.message} [{', '.join(extra)}]",
        chat_id=exc.chat_id,
        conversation_id=exc.conversation_id,
        code=exc.code,
        logid=exc.logid,
    )


async def ask(
    runtime: Runtime,
    *,
    question: str,
    user_id: str,
    bot_id: str | None = None,
    conversation_id: str | None = None,
    stream: bool = True,
    out: TextIO | None = None,
) -> SendResult:
    """Send ``question`` through ``runtime.conversations`` and print the answer to ``out`` (stdout)."""
    target = sys.stdout if out is None else out
    printed = False

    async def print_delta(text: str) -> None:
        nonlocal printed
        target.write(text)
        target.flush()
        printed = printed or bool(text)

    try:
        result = await runtime.conversations.send_message(
            user_id=user_id,
            message=question,
            conversation_id=conversation_id,
            bot_id=bot_id,
            on_delta=print_delta if stream else None,
        )
    except ChatError as exc:
        raise _with_ids(exc) from exc
    finally:
        if printed:
            target.write("\n")  # end the (possibly partial) answer's line
            target.flush()
    if not stream and result.answer:
        target.write(result.answer + "\n")
        target.flush()
    return result


async def _run(args: argparse.Namespace) -> int:
    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.runtime import open_runtime

    settings = settings_from_args(args)
    async with open_runtime(settings, announce=_stderr) as runtime:
        bot_id = args.bot_id or runtime.bot_id
        if not bot_id:
            raise ConfigError("no bot to ask: pass --bot-id or set coze_bot_id (KAI_BRIDGE_COZE_BOT_ID)")
        previous = None
        if args.conversation_id is None:
            previous = await runtime.conversations.current_conversation(user_id=args.user_id, bot_id=bot_id)
        result = await ask(
            runtime,
            question=args.question,
            user_id=args.user_id,
            bot_id=bot_id,
            conversation_id=args.conversation_id,
            stream=not args.no_stream,
        )
        if previous is not None and previous != result.conversation_id:
            why = " (the in-process sandbox starts empty on every run)" if runtime.sandbox is not None else ""
            _stderr(f"note: your previous conversation {previous} is gone upstream{why}; this is a new one")
        _stderr(summary(result))
        return 0


def run(args: argparse.Namespace) -> int:
    import anyio

    if not args.question.strip():
        # Coze would answer 4000 after a token exchange and a round trip: say it here instead.
        print('kai-bridge chat: the question is empty: ask something, e.g. kai-bridge chat "what is a flat white?"',
              file=sys.stderr)
        return 2
    return anyio.run(_run, args)
