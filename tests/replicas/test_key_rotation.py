"""Key rotation on a running process: edit the TOML config, send SIGHUP, the next JWT is signed with the new key.

The standalone sandbox registers both public keys under the one app (as the Coze console holds
them while a rotation is under way) and issues tokens that live three seconds, so the old key's
token drains and is refreshed within the test; its state says which kid signed each exchanged
JWT. A caller keeps calling a Coze-backed tool the whole time: not one call may fail. Two bad
new keys come first (an unreadable file, a key that is not the kid's): each is an ERROR in the
log and the old key goes on signing.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from kai_bridge.keys import KeyPair, generate_key_pair
from kai_bridge.sandbox import COFFEE_BOT_ID
from tests.bridge import key_pair
from tests.replicas.cluster import (
    APP_ID,
    COMMAND,
    ToolFailed,
    call_tool,
    mcp_client,
    private_key_file,
    sandbox,
    started,
)
from tests.replicas.test_replicas import until

pytestmark = pytest.mark.e2e

REFUSED = "SIGHUP: the new Coze credential was refused and the one in use stays"
ROTATED = "SIGHUP: Coze JWT key rotated"


def write_config(path: Path, *, coze_url: str, kid: str, key_path: Path, data: Path) -> None:
    lines = {"coze_api_base": coze_url, "coze_app_id": APP_ID, "coze_kid": kid,
             "coze_private_key_path": str(key_path), "coze_bot_id": COFFEE_BOT_ID,
             "store_url": f"sqlite:///{data / 'kai-bridge.db'}", "data_dir": str(data), "log_dir": str(data / "logs")}
    path.write_text("".join(f"{name} = {json.dumps(value)}\n" for name, value in lines.items()), encoding="utf-8")


def log_count(log: Path, text: str) -> int:
    return log.read_text(encoding="utf-8", errors="replace").count(text)


async def counted(log: Path, text: str) -> int:
    return log_count(log, text)


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update(extra)
    return env


_SECOND: KeyPair | None = None


def second_pair() -> KeyPair:
    """Another key pair generated at test time, once."""
    global _SECOND
    if _SECOND is None:
        _SECOND = generate_key_pair()
    return _SECOND


async def test_sighup_after_the_config_names_a_new_key_switches_to_it_while_every_call_succeeds(
    tmp_path: Path
) -> None:
    old, new, stranger = key_pair(), second_pair(), generate_key_pair()
    config, data = tmp_path / "kai-bridge.toml", tmp_path / "data"
    keys = tmp_path / "keys"
    old_file, new_file, stranger_file = (private_key_file(keys, pair) for pair in (old, new, stranger))
    async with sandbox(tmp_path / "coze", public_keys=[old.public_pem, new.public_pem],
                       extra=["--token-max-seconds", "3"]) as coze:
        write_config(config, coze_url=coze.url, kid=old.kid, key_path=old_file, data=data)
        # The caller below is one MCP client calling without a break: no per-client limit here.
        env = {"KAI_BRIDGE_CONFIG": str(config), "KAI_BRIDGE_MCP_RATE_LIMIT_PER_MINUTE": "0"}
        async with started("serve", ["serve", "--port", "0"], env=environment(env), folder=tmp_path / "serve") as bridge, \
                mcp_client(bridge.url.removesuffix("/mcp")) as session:
            await call_tool(session, "create_conversation", {"user_id": "rotation"})
            calls: dict[str, Any] = {"ok": 0, "failed": []}
            stop = anyio.Event()

            async def keep_calling() -> None:
                while not stop.is_set():
                    try:
                        await call_tool(session, "get_conversation_messages", {"user_id": "rotation", "limit": 1})
                    except ToolFailed as exc:
                        calls["failed"].append(str(exc))
                    else:
                        calls["ok"] += 1
                    await anyio.sleep(0.05)  # pacing, not waiting for anything

            async def kids() -> dict[str, int]:
                return dict((await coze.state())["token_kids"])

            async def hup_with(kid: str, key_path: Path) -> None:
                write_config(config, coze_url=coze.url, kid=kid, key_path=key_path, data=data)
                bridge.process.send_signal(signal.SIGHUP)

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_calling)
                await until(kids, lambda k: k.get(old.kid, 0) >= 2, seconds=30, what="tokens refreshed with the old key")

                for n, key_path in enumerate((tmp_path / "missing.pem", stranger_file), start=1):
                    await hup_with(new.kid, key_path)  # unreadable, then not the new kid's key
                    await until(lambda: counted(bridge.log, REFUSED), _equals(n), seconds=30,
                                what=f"bad key {n} refused")
                    signed = (await kids()).get(old.kid, 0)
                    await until(kids, _signed_more(old.kid, signed), seconds=30,
                                what="the old key still signing after the refusal")

                await hup_with(new.kid, new_file)
                await until(lambda: counted(bridge.log, ROTATED), lambda c: c == 1, seconds=30, what="rotated")
                after = await until(kids, lambda k: k.get(new.kid, 0) >= 2, seconds=30,
                                    what="a token refreshed with the new key")  # the probe, then a real refresh
                final = await until(kids, lambda k: k.get(new.kid, 0) >= after[new.kid] + 2, seconds=30,
                                    what="more refreshes with the new key")
                stop.set()
        text = bridge.log.read_text(encoding="utf-8", errors="replace")

    assert calls["failed"] == []
    assert calls["ok"] > 0
    assert final.get(old.kid) == after.get(old.kid)  # once switched, the old key signs nothing more
    assert stranger.kid not in final
    refusals = [line for line in text.splitlines() if REFUSED in line]
    assert [line.split()[2] for line in refusals] == ["ERROR", "ERROR"]
    assert "cannot read" in refusals[0]
    assert "coze_kid does not match the private key" in refusals[1]
    assert "PRIVATE KEY" not in text
    print(f"\nkey rotation: {calls['ok']} calls, 0 failed; tokens by kid {[final.get(k.kid, 0) for k in (old, new)]}")


def _equals(n: int) -> Callable[[int], bool]:
    return lambda count: count == n


def _signed_more(kid: str, than: int) -> Callable[[dict[str, int]], bool]:
    return lambda kids: kids.get(kid, 0) > than


async def test_stdio_rotates_on_sighup_too_and_keeps_serving(tmp_path: Path) -> None:
    old, new = key_pair(), second_pair()
    config, data, keys = tmp_path / "kai-bridge.toml", tmp_path / "data", tmp_path / "keys"
    old_file, new_file = private_key_file(keys, old), private_key_file(keys, new)
    async with sandbox(tmp_path / "coze", public_keys=[old.public_pem, new.public_pem]) as coze:
        write_config(config, coze_url=coze.url, kid=old.kid, key_path=old_file, data=data)
        log = tmp_path / "stdio.log"
        with log.open("ab") as errors:
            process = await anyio.open_process(
                [*COMMAND, "stdio", "--no-sidecar"], env=environment({"KAI_BRIDGE_CONFIG": str(config)}),
                stderr=errors,
            )
        async with process:
            rpc = _Rpc(process)
            await rpc.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                             "clientInfo": {"name": "rotation", "version": "1"}})
            await rpc.notify("notifications/initialized")
            before = await rpc.request("tools/call", {"name": "create_conversation", "arguments": {"user_id": "u"}})
            write_config(config, coze_url=coze.url, kid=new.kid, key_path=new_file, data=data)
            process.send_signal(signal.SIGHUP)
            await until(lambda: counted(log, ROTATED), lambda c: c == 1, seconds=30, what="stdio rotated")
            after = await rpc.request("tools/call", {"name": "create_conversation", "arguments": {"user_id": "u"}})
            assert process.stdin is not None
            await process.stdin.aclose()  # the client goes away: the server stops by itself
            with anyio.fail_after(30):
                code = await process.wait()
        state = await coze.state()

    assert before["isError"] is False
    assert after["isError"] is False
    assert state["last_token_kid"] == new.kid  # the probe signed with the new key
    assert code == 0


class _Rpc:
    """Newline-delimited JSON-RPC over a process's stdin/stdout (what an MCP stdio client sends)."""

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self._stdin, self._stdout = process.stdin, process.stdout
        self._buffer = b""
        self._id = 0

    async def notify(self, method: str) -> None:
        await self._stdin.send(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        await self._stdin.send(json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method,
                                           "params": params}).encode() + b"\n")
        with anyio.fail_after(60):
            while True:
                while b"\n" not in self._buffer:
                    self._buffer += await self._stdout.receive()
                line, self._buffer = self._buffer.split(b"\n", 1)
                message = json.loads(line)
                if message.get("id") == self._id:
                    assert "error" not in message, message
                    result: dict[str, Any] = message["result"]
                    return result
