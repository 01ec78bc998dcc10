"""One message at a time per conversation, in arrival order, in this process and across replicas.

Coze runs one chat per conversation and refuses a second with 4016 ("conversation busy").
Two callers sending into the same conversation at once are therefore queued, not refused:
inside a process by an ``asyncio.Lock`` per key (FIFO, so first come first served), across
replicas by a lease in the shared store (:meth:`Store.acquire_lease`) that the holder renews
while its chat runs and that expires on its own if the holder dies. Waiting for another
replica's lease polls the store with a capped backoff, so across replicas the order is
first come first served only roughly; within one replica it is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import anyio

from kai_bridge.errors import ChatError, KaiBridgeError
from kai_bridge.store import Store
from kai_bridge.store.base import process_owner

__all__ = ["ConversationQueue"]

logger = logging.getLogger(__name__)

_POLL_FIRST: Final = 0.05
_POLL_MAX: Final = 1.0


@dataclass
class _Slot:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


class ConversationQueue:
    """``async with queue.hold(key, timeout=...)``: run alone among holders of ``key`` (see module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        owner: str | None = None,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._store = store
        self.owner = owner or process_owner()
        self._ttl = ttl
        self._clock = clock
        self._sleep = sleep
        self._slots: dict[str, _Slot] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str, *, timeout: float) -> AsyncIterator[None]:  # noqa: ASYNC109
        """Wait (at most ``timeout`` seconds in all) until ``key`` is ours, hold it for the block."""
        deadline = self._clock() + timeout
        slot = self._slots.setdefault(key, _Slot())
        slot.users += 1
        try:
            with anyio.move_on_after(timeout) as waiting:
                await slot.lock.acquire()
            if waiting.cancelled_caught:
                raise _busy(key, timeout)
            try:
                await self._take_lease(key, deadline=deadline, patience=timeout)
                # A plain task, not a task group: the block's own errors must come out unwrapped.
                renewal = asyncio.ensure_future(self._renew(key))
                try:
                    yield
                finally:
                    renewal.cancel()
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        with contextlib.suppress(asyncio.CancelledError):
                            await renewal
                        await self._release(key)
            finally:
                slot.lock.release()
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(key, None)

    async def _take_lease(self, key: str, *, deadline: float, patience: float) -> None:
        delay = _POLL_FIRST
        while not await self._store.acquire_lease(name=key, owner=self.owner, ttl=self._ttl):
            left = deadline - self._clock()
            if left <= 0:
                raise _busy(key, patience)
            # Another replica's chat is running in this conversation: wait for it.
            await self._sleep(min(delay, left))
            delay = min(delay * 2, _POLL_MAX)

    async def _renew(self, key: str) -> None:
        while True:
            await self._sleep(self._ttl / 3)
            try:
                if not await self._store.acquire_lease(name=key, owner=self.owner, ttl=self._ttl):
                    logger.warning("lost the lease on %s (the store let it expire): another replica may send now", key)
            except KaiBridgeError as exc:
                logger.warning("could not renew the lease on %s: %s", key, exc)

    async def _release(self, key: str) -> None:
        try:
            await self._store.release_lease(name=key, owner=self.owner)
        except KaiBridgeError as exc:
            logger.warning("could not release the lease on %s (it expires by itself in %g s): %s", key, self._ttl, exc)


def _busy(key: str, timeout: float) -> ChatError:
    what = key.partition(":")[0]
    return ChatError(
        f"another message to this {'conversation' if what == 'conversation' else 'user'} was still being answered "
        f"after {timeout:g} s of waiting; send again when it is done (get_chat_result shows its progress)"
    )
