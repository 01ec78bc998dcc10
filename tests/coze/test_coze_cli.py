"""The seed guide's steps from the shell: keygen → sandbox with that key → token → validate → chat."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kai_bridge.sandbox import COFFEE_BOT_ID, PLUGIN_BOT_ID

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "kai_bridge.cli"]


@dataclass
class Run:
    code: int
    out: str
    err: str


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env["KAI_BRIDGE_LOG_DIR"] = str(tmp_path / "logs")
    env["KAI_BRIDGE_DATA_DIR"] = str(tmp_path / "data")
    env["KAI_BRIDGE_SANDBOX_STREAM_DELAY"] = "0"  # the in-process sandbox unpaced: speed, not pace, is tested here
    env.update(extra)
    return env


async def kai(*args: str, env: dict[str, str], cwd: Path) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def keys(tmp_path: Path) -> tuple[Path, str]:
    run = await kai("keygen", "--out", str(tmp_path / "keys"), env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 0, run.err
    kid = run.out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", kid)
    private = tmp_path / "keys" / "private_key.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    assert "kai-bridge sandbox --app-id" in run.err
    return tmp_path / "keys", kid


@pytest.fixture
async def sandbox_url(tmp_path: Path, keys: tuple[Path, str]) -> AsyncIterator[str]:
    key_dir, _kid = keys
    proc = await asyncio.create_subprocess_exec(
        *CLI, "sandbox", "--port", "0", "--app-id", "cli-app", "--public-key", str(key_dir / "public_key.pem"),
        "--chunk-delay-ms", "0",
        env=clean_env(tmp_path), cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    url = None
    try:
        async with asyncio.timeout(30):
            while url is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "the sandbox exited before listening"
                match = re.search(r"listening on (http://\S+)", line)
                url = match.group(1) if match else None
        yield url
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()


def jwt_env(tmp_path: Path, keys: tuple[Path, str], url: str) -> dict[str, str]:
    key_dir, kid = keys
    return clean_env(
        tmp_path,
        KAI_BRIDGE_COZE_API_BASE=url,
        KAI_BRIDGE_COZE_APP_ID="cli-app",
        KAI_BRIDGE_COZE_KID=kid,
        KAI_BRIDGE_COZE_PRIVATE_KEY_PATH=str(key_dir / "private_key.pem"),
        KAI_BRIDGE_COZE_BOT_ID=COFFEE_BOT_ID,
    )


async def test_keygen_sandbox_token_validate_chat_end_to_end(
    tmp_path: Path, keys: tuple[Path, str], sandbox_url: str
) -> None:
    env = jwt_env(tmp_path, keys, sandbox_url)

    token = await kai("token", env=env, cwd=tmp_path)
    assert token.code == 0, token.err
    access = token.out.strip()
    assert access.startswith("czs_")
    assert "expires in" in token.err

    valid = await kai("token", "--validate", access, env=env, cwd=tmp_path)
    assert (valid.code, valid.out.split(":")[0]) == (0, "valid")
    fresh = await kai("token", "--validate", "--json", env=env, cwd=tmp_path)
    assert fresh.code == 0
    assert '"valid": true' in fresh.out

    chat = await kai("chat", "手冲咖啡的水温是多少？", env=env, cwd=tmp_path)
    assert chat.code == 0, chat.err
    assert re.search(r"[\u4e00-\u9fff]", chat.out)
    assert re.search(r"conversation_id=\d+ chat_id=\d+ status=completed tokens: input=\d+", chat.err)
    conversation_id = re.search(r"conversation_id=(\d+)", chat.err).group(1)  # type: ignore[union-attr]

    follow = await kai("chat", "What about espresso?", "--no-stream", "--conversation-id", conversation_id,
                       env=env, cwd=tmp_path)
    assert follow.code == 0, follow.err
    assert "espresso" in follow.out.lower()
    assert f"conversation_id={conversation_id}" in follow.err

    for run in (token, valid, fresh, chat, follow):
        assert access not in run.err
        assert "Traceback" not in run.err
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert access not in logs


async def test_an_invalid_token_is_reported_invalid_with_exit_code_1(
    tmp_path: Path, keys: tuple[Path, str], sandbox_url: str
) -> None:
    run = await kai("token", "--validate", "pat_not_a_real_token_42", env=jwt_env(tmp_path, keys, sandbox_url),
                    cwd=tmp_path)
    assert run.code == 1
    assert run.out.startswith("invalid: ")
    assert "4101" in run.out


async def test_token_validate_without_bot_or_workspace_asks_who_the_token_belongs_to(
    tmp_path: Path, keys: tuple[Path, str], sandbox_url: str
) -> None:
    env = jwt_env(tmp_path, keys, sandbox_url)
    del env["KAI_BRIDGE_COZE_BOT_ID"]

    fresh = await kai("token", "--validate", env=env, cwd=tmp_path)
    assert fresh.code == 0, fresh.out + fresh.err
    assert fresh.out.startswith("valid: ")
    assert "/v1/users/me" in fresh.out
    assert re.search(r"user_id \d{19}", fresh.out)

    wrong = await kai("token", "--validate", "pat_not_a_real_token_42", "--json", env=env, cwd=tmp_path)
    assert wrong.code == 1
    verdict = json.loads(wrong.out)
    assert verdict["valid"] is False
    assert "4101" in verdict["reason"]
    assert "cannot check" not in wrong.out + fresh.out


async def test_the_plugin_bot_answers_through_the_local_tool_and_the_next_chat_continues_the_conversation(
    tmp_path: Path, keys: tuple[Path, str], sandbox_url: str
) -> None:
    env = jwt_env(tmp_path, keys, sandbox_url)
    question = "埃塞俄比亚咖啡特点"
    local = await kai("call", "coffee_knowledge_query", json.dumps({"query": question}), env=env, cwd=tmp_path)
    assert local.code == 0, local.err
    expected = json.loads(local.out)["answer"]

    first = await kai("chat", question, "--bot-id", PLUGIN_BOT_ID, env=env, cwd=tmp_path)
    assert first.code == 0, first.err
    assert first.out.strip() == expected.strip(), "the plugin bot answers from the locally run tool"
    assert re.search(r"conversation_id=\d+ chat_id=\d+ status=completed tokens: input=\d+ .* rounds=1$",
                     first.err, re.MULTILINE)
    conversation_id = re.search(r"conversation_id=(\d+)", first.err).group(1)  # type: ignore[union-attr]

    follow = await kai("chat", "水洗和日晒有什么区别？", "--bot-id", PLUGIN_BOT_ID, "--no-stream",
                       env=env, cwd=tmp_path)
    assert follow.code == 0, follow.err
    assert re.search(r"[\u4e00-\u9fff]", follow.out)
    assert f"conversation_id={conversation_id} " in follow.err, "the same user's next chat continues"
    assert "rounds=1" in follow.err
    assert "gone upstream" not in follow.err
    for run in (first, follow):
        assert "Traceback" not in run.err


async def test_the_plugin_bot_works_with_the_in_process_sandbox_run_after_run(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    first = await kai("chat", "埃塞俄比亚咖啡特点", "--bot-id", PLUGIN_BOT_ID, env=env, cwd=tmp_path)
    assert first.code == 0, first.err
    assert "埃塞俄比亚" in first.out
    assert "rounds=1" in first.err
    # The stored conversation died with the first run's sandbox: a new one, said so, no failure.
    second = await kai("chat", "那适合怎么冲煮？", "--bot-id", PLUGIN_BOT_ID, env=env, cwd=tmp_path)
    assert second.code == 0, second.err
    assert "rounds=1" in second.err
    assert "is gone upstream (the in-process sandbox starts empty on every run)" in second.err


async def test_chat_without_credentials_uses_the_in_process_sandbox(tmp_path: Path) -> None:
    run = await kai("chat", "What is espresso?", env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 0, run.err
    assert "in-process sandbox" in run.err
    assert "espresso" in run.out.lower()


async def test_chat_errors_are_one_line_with_the_logid_and_exit_1(tmp_path: Path) -> None:
    run = await kai("chat", "hello", "--bot-id", "1111111111111111111", env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 1
    assert "Traceback" not in run.err
    error_lines = [line for line in run.err.splitlines() if line.startswith("kai-bridge:")]
    assert len(error_lines) == 1
    assert "logid=" in error_lines[0]


async def test_wrong_region_style_kid_gets_the_region_hint(
    tmp_path: Path, keys: tuple[Path, str], sandbox_url: str
) -> None:
    other = tmp_path / "other"
    made = await kai("keygen", "--out", str(other), env=clean_env(tmp_path), cwd=tmp_path)
    env = jwt_env(tmp_path, (other, made.out.strip()), sandbox_url)
    run = await kai("token", env=env, cwd=tmp_path)
    assert run.code == 1
    assert "kid not been registred" in run.err
    assert "a coze.cn app fails on api.coze.com and vice versa" in run.err
    assert "Traceback" not in run.err
