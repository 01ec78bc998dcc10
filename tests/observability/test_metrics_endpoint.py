"""/metrics after a mixed run (MCP, CLI, requires_action, an upstream, failures) parses and carries every family."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx2
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kai_bridge.observability import MONITORING_PATHS
from kai_bridge.tools import UNKNOWN_TOOL, Door
from tests.observability.conftest import MixedRun, mixed_run

# Every family /metrics must carry after the mixed run, with its type; each must have samples.
FAMILIES = {
    "kai_bridge_http_requests": "counter",
    "kai_bridge_http_request_duration_seconds": "histogram",
    "kai_bridge_tool_calls": "counter",
    "kai_bridge_tool_call_duration_seconds": "histogram",
    "kai_bridge_coze_requests": "counter",
    "kai_bridge_coze_request_duration_seconds": "histogram",
    "kai_bridge_coze_breaker_state": "gauge",
    "kai_bridge_coze_breaker_consecutive_failures": "gauge",
    "kai_bridge_coze_breaker_openings": "counter",
    "kai_bridge_coze_breaker_rejections": "counter",
    "kai_bridge_coze_retries": "counter",
    "kai_bridge_coze_reauths": "counter",
    "kai_bridge_coze_streams": "counter",
    "kai_bridge_coze_stream_cuts": "counter",
    "kai_bridge_coze_token_exchanges": "counter",
    "kai_bridge_coze_token_refreshes": "counter",
    "kai_bridge_coze_token_age_seconds": "gauge",
    "kai_bridge_coze_token_remaining_seconds": "gauge",
    "kai_bridge_upstream_up": "gauge",
    "kai_bridge_upstream_tools": "gauge",
    "kai_bridge_upstream_calls": "counter",
    "kai_bridge_upstream_failures": "counter",
    "kai_bridge_health_check_up": "gauge",
    "kai_bridge_health_check_duration_seconds": "gauge",
    "kai_bridge_health_check_timestamp_seconds": "gauge",
    "kai_bridge_webhook_events": "counter",
    "kai_bridge_webhook_inbox_events": "gauge",
    "kai_bridge_build_info": "gauge",
    "kai_bridge_tools": "gauge",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "python_info": "gauge",
}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert matching, f"no sample {name}{labels}"
    return sum(matching)


@dataclass(frozen=True)
class Scraped:
    run: MixedRun
    text: str  # the /metrics body
    samples: list[Sample]
    retries: int  # the Coze client's own count, read before closing
    tools: int  # tools registered
    tool_names: frozenset[str]


async def scrape(tmp_path: Path, *, accept: str | None = None) -> Scraped:
    """Mixed run (see conftest), plus the webhook door's interface used as that door will, then one scrape.

    (The server runs in the test's own task: anyio task groups may not span pytest fixtures.)
    """
    async with mixed_run(tmp_path) as run:
        obs = run.runtime.observability
        obs.webhook_event(result="accepted")
        obs.webhook_event(result="duplicate")
        obs.webhook_event(result="rejected", reason="signature")
        obs.webhook_event(result="rejected", reason="Some Free Text!")
        obs.watch_inbox(lambda: {"pending": 2, "done": 5})
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(run.base + "/metrics", headers={"Accept": accept} if accept else {})
        assert response.status_code == 200
        if accept is None:
            assert response.headers["content-type"].startswith("text/plain")
        samples = [] if accept else [s for f in text_string_to_metric_families(response.text) for s in f.samples]
        return Scraped(run=run, text=response.text, samples=samples, retries=run.runtime.coze.counters["retries"],
                       tools=len(run.runtime.registry),
                       tool_names=frozenset(tool.name for tool in run.runtime.registry.list()))


async def test_every_family_is_there_with_its_type_and_samples(tmp_path: Path) -> None:
    scraped = await scrape(tmp_path)
    families = {family.name: family for family in text_string_to_metric_families(scraped.text)}
    missing = sorted(set(FAMILIES) - set(families))
    assert not missing
    for name, kind in FAMILIES.items():
        assert families[name].type == kind, name
        assert families[name].samples, f"{name} has no samples"
    ours = [name for name in families if not name.startswith(("process_", "python_"))]
    assert all(name.startswith("kai_bridge_") for name in ours)


async def test_tool_calls_are_counted_by_tool_door_and_outcome(tmp_path: Path) -> None:
    scraped = await scrape(tmp_path)
    samples = scraped.samples
    total = "kai_bridge_tool_calls_total"
    assert _value(samples, total, tool="coffee_knowledge_query", door="mcp-http", outcome="ok") == 3
    assert _value(samples, total, tool="coffee_knowledge_query", door="mcp-http", outcome="input_error") == 1
    assert _value(samples, total, tool="kai.fail", door="mcp-http", outcome="error") == 1
    assert _value(samples, total, tool="send_message", door="mcp-http", outcome="ok") == 1
    assert _value(samples, total, tool="coffee_knowledge_query", door="requires_action", outcome="ok") >= 1
    assert _value(samples, total, tool="coffee_knowledge_query", door="cli", outcome="ok") == 1
    assert _value(samples, total, tool=UNKNOWN_TOOL, door="cli", outcome="not_found") == 1
    calls = sum(s.value for s in samples if s.name == total)
    assert _value(samples, "kai_bridge_tool_call_duration_seconds_count") == calls
    assert {s.labels["door"] for s in samples if s.name == total} <= {door.value for door in Door}


async def test_coze_attempts_carry_their_code_and_the_breaker_and_token_are_read(tmp_path: Path) -> None:
    scraped = await scrape(tmp_path)
    samples = scraped.samples
    # The health run's bot lookup failed twice (one retry) with Coze's 5000; the chats succeeded.
    assert _value(samples, "kai_bridge_coze_requests_total", endpoint="retrieve_bot", code="5000") == 2
    assert _value(samples, "kai_bridge_coze_requests_total", endpoint="stream_chat", code="0") >= 1
    assert _value(samples, "kai_bridge_coze_request_duration_seconds_count", endpoint="retrieve_bot") == 2
    assert _value(samples, "kai_bridge_coze_retries_total") == scraped.retries >= 1
    assert _value(samples, "kai_bridge_coze_breaker_state", state="closed") == 1
    assert _value(samples, "kai_bridge_coze_breaker_state", state="open") == 0
    assert _value(samples, "kai_bridge_coze_breaker_consecutive_failures") == 1  # one call, by its last attempt
    assert _value(samples, "kai_bridge_coze_token_exchanges_total", result="ok") == 1
    assert 0 < _value(samples, "kai_bridge_coze_token_remaining_seconds") <= 900
    assert _value(samples, "kai_bridge_health_check_up", check="coze", critical="false") == 0
    assert _value(samples, "kai_bridge_health_check_up", check="store") == 1


async def test_upstreams_webhooks_and_the_process_are_reported(tmp_path: Path) -> None:
    scraped = await scrape(tmp_path)
    samples = scraped.samples
    assert _value(samples, "kai_bridge_upstream_up", upstream="kai") == 1
    assert _value(samples, "kai_bridge_upstream_tools", upstream="kai") >= 9
    assert _value(samples, "kai_bridge_upstream_calls_total", upstream="kai") == 2
    assert _value(samples, "kai_bridge_upstream_failures_total", upstream="kai") == 1
    assert _value(samples, "kai_bridge_webhook_events_total", result="rejected", reason="signature") == 1
    assert _value(samples, "kai_bridge_webhook_events_total", result="rejected", reason="other") == 1
    assert _value(samples, "kai_bridge_webhook_events_total", result="accepted") == 1
    assert _value(samples, "kai_bridge_webhook_inbox_events", status="pending") == 2
    assert _value(samples, "kai_bridge_build_info", mode="live") == 1
    assert _value(samples, "kai_bridge_tools") == scraped.tools
    assert _value(samples, "process_resident_memory_bytes") > 0
    assert _value(samples, "process_open_fds") > 0


async def test_label_values_are_bounded_templates_names_and_words(tmp_path: Path) -> None:
    scraped = await scrape(tmp_path)
    samples, text = scraped.samples, scraped.text
    assert scraped.run.unknown_path not in text
    assert scraped.run.unknown_tool not in text
    routes = {s.labels["route"] for s in samples if s.name == "kai_bridge_http_requests_total"}
    assert {"/mcp", "/health", "(unmatched)"} <= routes
    assert routes <= {"/mcp", "/health", "/ready", "/diagnostics/coze", "/diagnostics/kai", *MONITORING_PATHS,
                      "(unmatched)"}
    tools = {s.labels["tool"] for s in samples if s.name == "kai_bridge_tool_calls_total"}
    assert tools <= scraped.tool_names | {UNKNOWN_TOOL}
    assert _value(samples, "kai_bridge_http_requests_total", route="(unmatched)", status="404") == 1


async def test_a_scrape_shows_no_secret(tmp_path: Path) -> None:
    scraped = await scrape(tmp_path)
    text = scraped.text
    settings = scraped.run.runtime.settings
    assert settings.coze_private_key is not None
    assert "PRIVATE KEY" not in text
    assert "Bearer" not in text
    assert "access_token" not in text
    for line in settings.coze_private_key.get_secret_value().splitlines()[1:3]:
        assert line not in text


async def test_openmetrics_is_served_when_asked_for(tmp_path: Path) -> None:
    scraped = await scrape(tmp_path, accept="application/openmetrics-text")
    assert scraped.text.rstrip().endswith("# EOF")
    assert "kai_bridge_tool_calls_total" in scraped.text
