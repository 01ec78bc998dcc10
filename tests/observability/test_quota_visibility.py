"""Coze quota use is visible before Coze refuses: attempts by API group, and the outgoing quota when calls queue.

A burst through a bridge with the outgoing quota on (against the sandbox): every call still
goes through, the ones over the rate wait, and that shows in /metrics (waits by group, time
waited, the quota's size), in the monitoring snapshot (use of the quota, groups) and as one
WARNING in the log, however many waited.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anyio
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kai_bridge.coze import client as client_module
from kai_bridge.coze.groups import API_GROUPS, api_group
from kai_bridge.coze.quota import RequestQuota
from kai_bridge.sandbox import COFFEE_BOT_ID
from tests.bridge import open_bridge, running_sandbox
from tests.coze.conftest import FakeClock
from tests.mcp.http_harness import serving


def _samples(text: str, name: str) -> list[Sample]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_every_endpoint_the_client_calls_belongs_to_a_coze_api_group() -> None:
    source = Path(client_module.__file__).read_text(encoding="utf-8")
    endpoints = set(re.findall(r'context="([a-z_]+)"', source))

    assert endpoints  # the client names its endpoints this way
    assert endpoints <= set(API_GROUPS), sorted(endpoints - set(API_GROUPS))
    assert {api_group(e) for e in endpoints if e.endswith("chat") or "tool_outputs" in e} == {"chat"}
    assert api_group("something_new") == "other"


async def test_queued_calls_warn_once_a_minute_with_the_count_since_the_last_warning(
    caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(100.0)
    quota = RequestQuota(per_second=100, burst=1, max_wait=5, warn_every=60, clock=clock)
    caplog.set_level(logging.WARNING, logger="kai_bridge.coze.quota")

    async def burst(n: int, group: str) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(lambda: quota.acquire(group=group))

    with anyio.fail_after(10):
        await burst(6, "chat")
        clock.advance(30)
        await burst(3, "chat")  # within the minute: counted, not logged
        clock.advance(31)
        await burst(4, "conversation")
    warnings = [r.getMessage() for r in caplog.records if r.name == "kai_bridge.coze.quota"]

    assert len(warnings) == 2
    assert "calls are waiting for a slot (1 waited and 0 were refused unsent since start" in warnings[0]
    assert "raise coze_quota_per_second" in warnings[0].lower()
    assert re.search(r"\((\d+) waited and 0 were refused unsent in the last 61 s", warnings[1])
    assert quota.waited >= 6 + 2 + 3  # each burst: all but the first of it (or more) waited
    assert set(quota.waited_by_group) == {"chat", "conversation"}
    assert quota.waiting == 0


async def test_a_burst_over_the_outgoing_quota_queues_and_shows_in_metrics_the_snapshot_and_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kai_bridge.coze.quota")
    overrides = {"coze_quota_per_second": 20, "coze_quota_burst": 2, "coze_quota_max_wait": 10,
                 "health_check_interval": 0}
    async with running_sandbox() as (handle, _coze), \
            open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as runtime, \
            serving(runtime) as base:
        coze = runtime.coze
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(lambda: coze.create_conversation(bot_id=COFFEE_BOT_ID))
                for _ in range(4):
                    tg.start_soon(lambda: coze.retrieve_bot(bot_id=COFFEE_BOT_ID))
        quota = coze.quota
        assert quota is not None
        async with httpx2.AsyncClient(timeout=10) as http:
            scrape = (await http.get(base + "/metrics")).text
            snapshot = (await http.get(base + "/monitoring/snapshot.json")).json()
        waited = quota.waited

    requests = {(s.labels["group"], s.labels["code"]): s.value for s in _samples(scrape, "kai_bridge_coze_requests_total")}
    waits = {s.labels["group"]: s.value for s in _samples(scrape, "kai_bridge_coze_quota_waits_total")}
    assert requests[("conversation", "0")] == 10
    assert requests[("bot", "0")] == 4
    assert waited >= 14 - 2 - 1  # the burst of 2 went at once; nearly all the rest queued
    assert sum(waits.values()) == waited
    assert set(waits) <= {"conversation", "bot"}
    assert _samples(scrape, "kai_bridge_coze_quota_limit_per_second")[0].value == 20
    assert _samples(scrape, "kai_bridge_coze_quota_burst")[0].value == 2
    assert _samples(scrape, "kai_bridge_coze_quota_wait_seconds_total")[0].value > 0
    assert not _samples(scrape, "kai_bridge_coze_quota_refusals_total")  # none refused: all went through
    assert _samples(scrape, "kai_bridge_coze_quota_waiting")[0].value == 0

    shown = snapshot["coze"]["quota"]
    assert (shown["per_second"], shown["burst"], shown["waited"], shown["refused"]) == (20, 2, waited, 0)
    assert 0 < shown["use"] <= 1.0
    groups = {row["group"]: row for row in snapshot["coze"]["groups"]}
    assert groups["conversation"]["attempts_total"] == 10
    assert groups["conversation"]["quota_waits_total"] == waits.get("conversation", 0)
    assert groups["conversation"]["documented_qps"] is False
    assert groups["bot"]["rate_limited_total"] == 0

    warnings = [r for r in caplog.records if r.name == "kai_bridge.coze.quota"]
    assert len(warnings) == 1  # rate-limited: one line for the whole burst
    assert warnings[0].levelname == "WARNING"
    assert "the outgoing Coze quota (20 requests/s, bursts of 2) is full" in warnings[0].getMessage()


async def test_without_a_quota_the_groups_are_shown_and_no_quota_family_is_scraped(tmp_path: Path) -> None:
    async with running_sandbox() as (handle, _coze), \
            open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides={"health_check_interval": 0}) \
            as runtime, serving(runtime) as base:
        await runtime.coze.create_conversation(bot_id=COFFEE_BOT_ID)
        async with httpx2.AsyncClient(timeout=10) as http:
            scrape = (await http.get(base + "/metrics")).text
            snapshot = (await http.get(base + "/monitoring/snapshot.json")).json()

    assert "kai_bridge_coze_quota_" not in scrape
    assert snapshot["coze"]["quota"] is None
    assert {row["group"]: row["quota_waits_total"] for row in snapshot["coze"]["groups"]}["conversation"] is None
