"""Traces: spans for tool calls, Coze attempts and webhook dispatch (the SDK's in-memory exporter), and OTLP
over HTTP to a collector on loopback when an endpoint is set."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from kai_bridge.config import load_settings
from kai_bridge.errors import ConfigError
from kai_bridge.observability.tracing import traces_url
from kai_bridge.tools import Door, NullToolContext
from tests.bridge import open_bridge, running_sandbox
from tests.observability.conftest import FAST_FAILURES


async def test_a_tool_call_is_a_span_whose_coze_attempts_are_its_children_with_their_logid(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    async with (
        running_sandbox() as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=FAST_FAILURES,
                    span_exporter=exporter) as bridge,
    ):
        await bridge.registry.call("send_message", {"message": "What is a lungo?"},
                                   ctx=NullToolContext(door=Door.PLUGIN))
        with pytest.raises(Exception, match="invalid arguments"):
            await bridge.registry.call("coffee_knowledge_query", {}, ctx=NullToolContext(door=Door.CLI))
        with bridge.observability.webhook_dispatch(event_type="conversation.chat.completed", event_id="e-1"):
            pass
    spans = {span.name: span for span in exporter.get_finished_spans()}
    tool = spans["tool send_message"]
    coze = spans["coze stream_chat"]
    assert tool.attributes is not None
    assert coze.attributes is not None
    assert tool.attributes["kai_bridge.door"] == "plugin"
    assert tool.attributes["kai_bridge.outcome"] == "ok"
    assert coze.parent is not None
    assert coze.parent.span_id == tool.context.span_id
    assert coze.context.trace_id == tool.context.trace_id
    assert coze.attributes["coze.code"] == "0"
    assert str(coze.attributes["coze.logid"]).isalnum()
    assert len(str(coze.attributes["coze.logid"])) >= 20
    failed = spans["tool coffee_knowledge_query"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["kai_bridge.outcome"] == "input_error"
    dispatch = spans["webhook dispatch"]
    assert dispatch.attributes is not None
    assert dispatch.attributes["kai_bridge.webhook.event_type"] == "conversation.chat.completed"
    assert dispatch.resource.attributes["service.name"] == "kai-bridge"


@contextlib.contextmanager
def otlp_collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP trace receiver on loopback (its own thread: the exporter's requests are blocking)."""
    received: list[ExportTraceServiceRequest] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path == "/v1/traces" and self.headers.get("content-type") == "application/x-protobuf":
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.append(request)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_spans_go_to_the_otlp_endpoint_of_the_settings(tmp_path: Path) -> None:
    with otlp_collector() as (endpoint, received):
        overrides = {**FAST_FAILURES, "otel_exporter_otlp_endpoint": endpoint}
        async with (
            running_sandbox() as (handle, _),
            open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge,
        ):
            assert bridge.observability.tracing.enabled
            await bridge.registry.call("coffee_knowledge_query", {"query": "espresso"})
        # Closing the runtime flushed the batch: it has arrived by now.
    names = {span.name for request in received for rs in request.resource_spans for ss in rs.scope_spans
             for span in ss.spans}
    assert "tool coffee_knowledge_query" in names


def test_the_standard_otel_variables_fill_the_settings_and_ours_win() -> None:
    standard = load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
                                      "OTEL_SERVICE_NAME": "bridge-eu", "OTEL_TRACES_SAMPLER": "always_on"},
                             check_files=False)
    assert standard.otel_exporter_otlp_endpoint == "http://collector:4318"
    assert standard.otel_service_name == "bridge-eu"
    ours = load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                                  "KAI_BRIDGE_OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}, check_files=False)
    assert ours.otel_exporter_otlp_endpoint == "http://other:4318"
    assert traces_url(ours.otel_exporter_otlp_endpoint) == "http://other:4318/v1/traces"
    with pytest.raises(ConfigError, match="OTLP endpoint must be an http"):
        load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, check_files=False)


async def test_without_an_endpoint_tracing_is_off(tmp_path: Path) -> None:
    async with (
        running_sandbox() as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=FAST_FAILURES) as bridge,
    ):
        assert not bridge.observability.tracing.enabled
        assert bridge.registry.observer is bridge.observability.metrics
