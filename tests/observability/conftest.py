"""Fixtures for the observability tests: a sandbox with faults, and a bridge served over HTTP after a mixed run."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
from mcp.client import Client

from kai_bridge.cmd.call import call_on
from kai_bridge.errors import ToolNotFoundError
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import PLUGIN_BOT_ID, FaultRule, SandboxHandle
from tests.bridge import open_bridge, running_sandbox
from tests.mcp.http_harness import serving
from tests.upstream.conftest import stdio_config

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

#: Fast failures: no backoff sleeps, one retry, so a failing Coze call costs milliseconds.
FAST_FAILURES: Mapping[str, Any] = {"coze_max_retries": 1, "coze_backoff_base": 0.0, "coze_backoff_max": 0.0,
                                    "health_check_interval": 0}


@dataclass
class MixedRun:
    """What the mixed run did, for the assertions to compare against."""

    runtime: Runtime
    base: str
    sandbox: SandboxHandle
    unknown_tool: str  # a name only the CLI call used: must never become a label
    unknown_path: str  # a path only one request used: must never become a label


@contextlib.asynccontextmanager
async def mixed_run(tmp_path: Path, *, span_exporter: SpanExporter | None = None) -> AsyncIterator[MixedRun]:
    """A bridge over a sandbox whose bot lookup always fails (5xx), with an upstream KAI server, served
    over HTTP after: MCP calls (ok, refused input, a failing upstream tool), a plugin-bot chat
    (requires_action), CLI calls (ok, unknown tool), a health run (the Coze check fails), a 404."""
    faults = [FaultRule(route="bots.retrieve", error_rate=1.0)]
    overrides = {**FAST_FAILURES, "upstreams": [stdio_config("kai").model_dump()]}
    async with (
        running_sandbox(faults=faults) as (handle, _coze),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides,
                    span_exporter=span_exporter) as runtime,
        serving(runtime) as base,
    ):
        assert await runtime.upstreams.wait_ready(30)
        async with Client(f"{base}/mcp", mode="legacy") as client:
            for query in ("espresso", "埃塞俄比亚咖啡特点", "cold brew ratio"):
                assert not (await client.call_tool("coffee_knowledge_query", {"query": query})).is_error
            assert (await client.call_tool("coffee_knowledge_query", {"top_k": "many"})).is_error
            assert (await client.call_tool("kai.fail", {"message": "upstream says no"})).is_error
            assert not (await client.call_tool("kai.echo", {"text": "hi"})).is_error
            sent = await client.call_tool("send_message", {"message": "埃塞俄比亚咖啡特点", "bot_id": PLUGIN_BOT_ID})
            assert not sent.is_error, sent.content
        await call_on(runtime, name="coffee_knowledge_query", arguments={"query": "moka pot"}, user_id="cli")
        unknown = f"no_such_tool_{uuid.uuid4().hex[:8]}"
        try:
            await call_on(runtime, name=unknown, arguments={}, user_id="cli")
        except ToolNotFoundError:
            pass
        else:
            raise AssertionError("an unknown tool was called")
        await runtime.health.run(timeout=5)
        path = f"/no/such/page-{uuid.uuid4().hex[:8]}"
        async with httpx2.AsyncClient(timeout=10) as http:
            assert (await http.get(base + path)).status_code == 404
            assert (await http.get(base + "/health")).status_code == 200
        yield MixedRun(runtime=runtime, base=base, sandbox=handle, unknown_tool=unknown, unknown_path=path)
