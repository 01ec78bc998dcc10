"""DeltaRelay: send_message's streamed text goes out coalesced, never lost or reordered."""

from __future__ import annotations

import anyio
import pytest

from kai_bridge.tools import ToolContext
from kai_bridge.tools.conversations import relay_deltas


class Recorder(ToolContext):
    """Records progress and log lines; each progress send can be held until the test releases it."""

    def __init__(self) -> None:
        self.progress: list[tuple[float, str | None]] = []
        self.logs: list[str] = []
        self.sent = anyio.Event()  # set after each progress notification
        self.hold: anyio.Event | None = None  # when set to an unset event, sends wait for it

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.progress.append((progress, message))
        self.sent.set()
        if self.hold is not None:
            await self.hold.wait()

    async def log(self, level: str, message: str) -> None:
        self.logs.append(message)


async def test_text_pushed_while_a_notification_is_in_flight_goes_out_in_one_notification() -> None:
    ctx = Recorder()
    ctx.hold = anyio.Event()
    with anyio.fail_after(5):
        async with relay_deltas(ctx) as push:
            await push("a")
            await ctx.sent.wait()  # "a" is being sent, and the send is stuck
            for text in ("b", "c", "d"):
                await push(text)
            ctx.hold.set()
    assert ctx.progress == [(1, "a"), (4, "bcd")]
    assert ctx.logs == ["a", "bcd"]


async def test_a_slow_stream_is_forwarded_delta_by_delta() -> None:
    ctx = Recorder()
    with anyio.fail_after(5):
        async with relay_deltas(ctx) as push:
            for text in ("Hello", ", ", "world"):
                ctx.sent = anyio.Event()
                await push(text)
                await ctx.sent.wait()
    assert [message for _, message in ctx.progress] == ["Hello", ", ", "world"]
    assert [progress for progress, _ in ctx.progress] == [5, 7, 12]


async def test_everything_pushed_is_sent_in_order_before_the_block_ends() -> None:
    ctx = Recorder()
    pieces = [f"{i} " for i in range(200)]
    async with relay_deltas(ctx) as push:
        for text in pieces:
            await push(text)  # never waits: nothing has been sent yet
        assert ctx.progress == []
    assert "".join(message or "" for _, message in ctx.progress) == "".join(pieces)
    assert "".join(ctx.logs) == "".join(pieces)
    assert ctx.progress[-1][0] == len("".join(pieces))
    assert len(ctx.progress) < len(pieces)


async def test_an_error_inside_ends_the_relay_and_comes_out_unwrapped() -> None:
    ctx = Recorder()
    ctx.hold = anyio.Event()  # a send that would never finish must not keep the call alive

    async def failing_call() -> None:
        async with relay_deltas(ctx) as push:
            await push("partial")
            await ctx.sent.wait()
            raise KeyError("boom")

    with anyio.fail_after(5), pytest.raises(KeyError, match="boom"):
        await failing_call()


async def test_pushing_after_the_block_is_refused() -> None:
    ctx = Recorder()
    async with relay_deltas(ctx) as push:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await push("late")


async def test_a_failing_progress_channel_does_not_fail_the_block() -> None:
    class Broken(Recorder):
        async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
            await super().report_progress(progress, total, message)
            raise OSError("client went away")

    ctx = Broken()
    with anyio.fail_after(5):
        async with relay_deltas(ctx) as push:
            await push("one")
            await ctx.sent.wait()
            await push("two")
    assert ctx.progress == [(3, "one")]  # tried once, then the rest was dropped
