"""A writer process for the kill -9 test: N tasks save chats and print each id once it is saved.

Usage: python sqlite_writer.py STORE_URL TASKS. Runs until killed. A line ``<task>:<n>`` on
stdout means ``save_chat`` and ``set_conversation`` for that (task, n) returned.
"""

from __future__ import annotations

import asyncio
import sys

from kai_bridge.store import ChatRecord, open_store


async def writer(url: str, tasks: int) -> None:
    async with open_store(url) as store:

        async def one(task: int) -> None:
            n = 0
            while True:
                key = f"{task}:{n}"
                record = ChatRecord(
                    chat_id=key,
                    conversation_id=f"conv-{key}",
                    user_id=f"user-{task}",
                    bot_id="bot",
                    status="completed",
                    answer=f"answer {key}",
                    usage={"token_count": n},
                    error=None,
                    updated_at=float(n),
                )
                await store.save_chat(record)
                await store.set_conversation(user_id=f"user-{task}", bot_id="bot", conversation_id=key)
                sys.stdout.write(key + "\n")
                sys.stdout.flush()
                n += 1

        await asyncio.gather(*(one(t) for t in range(tasks)))


if __name__ == "__main__":
    asyncio.run(writer(sys.argv[1], int(sys.argv[2])))
