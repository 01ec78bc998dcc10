"""Log lines: correlation fields (door, tool, chat_id, logid) as fields, and a fault run that fills error.log
with codes and logids (breaker openings, failed Coze calls, failed tool calls) and no secret."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from kai_bridge.errors import ToolError
from kai_bridge.logs import configure_logging, log_fields, note_log_fields
from kai_bridge.sandbox import FaultRule
from kai_bridge.tools import Door, NullToolContext
from tests.bridge import key_pair, open_bridge, running_sandbox
from tests.observability.conftest import FAST_FAILURES

LOGID = re.compile(r"logid=\d{14}[0-9A-F]{20,}")


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def test_fields_noted_in_a_scope_ride_its_lines_and_end_with_it(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json_format=True, stream=stream)
    log = logging.getLogger("kai_bridge.test")
    note_log_fields(logid="outside")  # no scope: goes nowhere
    with log_fields(door=Door.CLI.value, tool="send_message"):
        log.warning("before the chat")
        note_log_fields(chat_id="7400000000000000001", logid="20260101000000ABC")
        log.warning("during the chat")
    log.warning("after")
    before, during, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (before["door"], before["tool"]) == ("cli", "send_message")
    assert "chat_id" not in before
    assert (during["chat_id"], during["logid"]) == ("7400000000000000001", "20260101000000ABC")
    assert not {"door", "tool", "chat_id", "logid"} & set(after)


async def test_a_cut_stream_is_logged_with_the_calls_tool_door_chat_and_logid(
    tmp_path: Path, restore_logging: None
) -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json_format=True, stream=stream)
    faults = [FaultRule(route="chat.create", cut_stream_after_events=2, times=1)]
    async with (
        running_sandbox(faults=faults) as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=FAST_FAILURES) as bridge,
    ):
        with pytest.raises(ToolError, match="cut"):
            await bridge.registry.call("send_message", {"message": "What is a lungo?"},
                                       ctx=NullToolContext(door=Door.MCP_STDIO))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    cut = [line for line in lines if "stream stream_chat cut" in line["message"]]
    assert cut, lines
    assert cut[0]["level"] == "ERROR"
    assert cut[0]["tool"] == "send_message"
    assert cut[0]["door"] == "mcp-stdio"
    assert cut[0]["chat_id"].isdigit()
    assert cut[0]["logid"]


async def test_a_fault_run_fills_error_log_with_codes_and_logids_and_no_secret(
    tmp_path: Path, restore_logging: None
) -> None:
    pair = key_pair()
    log_dir = tmp_path / "logs"
    configure_logging(level="INFO", log_dir=log_dir, stream=io.StringIO(), secrets=[pair.private_pem.decode()])
    # Two chats time out; meanwhile Coze answers 5xx to the lookup that tells whether a timed-out
    # chat started: the breaker opens, later calls fail fast.
    overrides = {**FAST_FAILURES, "coze_timeout": 0.3, "coze_breaker_failures": 4, "coze_breaker_reset": 60.0}
    failures = 0
    async with (
        running_sandbox() as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge,
    ):
        await bridge.conversations.create_conversation(user_id="default")  # before the faults
        handle.faults.add(FaultRule(route="chat.create", latency_ms=2000, times=2))
        handle.faults.add(FaultRule(route="messages.list", error_rate=1.0))
        for i in range(8):
            try:
                await bridge.registry.call("send_message", {"message": f"question {i}"},
                                           ctx=NullToolContext(door=Door.PLUGIN))
            except ToolError:
                failures += 1
        opened = bridge.coze.breaker.opened_count
    _flush()
    assert failures == 8
    assert opened == 1
    errors = (log_dir / "error.log").read_text(encoding="utf-8")
    lines = errors.splitlines()
    assert lines
    assert all(" ERROR " in line or line.startswith((" ", "Traceback")) for line in lines)
    assert any("circuit breaker open" in line for line in lines)
    coze_failures = [line for line in lines if "Coze call list_messages failed: code=5000" in line]
    # Each timed-out chat's "did it start?" lookup gets one try: timeout, lookup, timeout, lookup
    # are the 4 failures that open the breaker; the later chats fail fast.
    assert len(coze_failures) == 2
    assert all(LOGID.search(line) for line in coze_failures)
    timeouts = [line for line in lines if "Coze call stream_chat failed: code=transport" in line]
    assert len(timeouts) == 2
    tool_failures = [line for line in lines if "tool call send_message failed (error)" in line]
    assert len(tool_failures) == 2  # the fast failures behind the open breaker are warnings
    assert all("[door=plugin tool=send_message" in line for line in tool_failures)
    main = (log_dir / "coze_integration.log").read_text(encoding="utf-8")
    assert main.count("failed (error)") == 8  # every call: 2 errors, 6 fast failures (warnings)
    for text in (errors, main):
        assert "PRIVATE KEY" not in text
        assert "Bearer " not in text
        assert "czs_" not in text
        assert "eyJ" not in text
