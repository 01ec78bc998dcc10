"""The monitoring page's JSON snapshot (``/monitoring/snapshot.json``): one read of everything it shows.

Totals are read from the very counters ``/metrics`` exposes, so the page and a scrape agree;
the recent statistics (rate, success rate, average and p95 latency over the last five
minutes) come from the bounded windows of :mod:`.window`. The page polls this and draws its
charts from successive snapshots. Nothing here is secret: error messages are the package's
own (written to be shown) and scrubbed again; no token, key or argument appears.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import Counter

from kai_bridge.coze import JWTAuth, PATAuth
from kai_bridge.coze.groups import DOCUMENTED_QPS_GROUPS, api_group
from kai_bridge.observability.liveness import iso_utc, services_of
from kai_bridge.observability.metrics import Metrics
from kai_bridge.observability.sources import Sources
from kai_bridge.observability.window import RecentCalls, summarize
from kai_bridge.tools import ToolOutcome

__all__ = ["RECENT_PERIOD", "build_snapshot", "counter_values"]

#: Seconds of recent calls the rates, success rates and latencies describe.
RECENT_PERIOD: Final = 300.0
#: Seconds the use of the outgoing Coze quota is measured over (short: a quota is about bursts).
QUOTA_PERIOD: Final = 60.0
#: Codes of a Coze rate-limit refusal (Coze's own, or HTTP 429 without one).
_RATE_LIMITED: Final = frozenset({"4013", "http_429"})
_PROCESS_FAMILIES: Final = {
    "process_cpu_seconds": "cpu_seconds_total",
    "process_resident_memory_bytes": "rss_bytes",
    "process_virtual_memory_bytes": "vms_bytes",
    "process_open_fds": "open_fds",
    "process_max_fds": "max_fds",
    "process_start_time_seconds": "start_time_seconds",
}


def counter_values(counter: Counter) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of each ``_total`` sample of ``counter``: the numbers a scrape shows."""
    out: list[tuple[dict[str, str], float]] = []
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out.append((dict(sample.labels), sample.value))
    return out


def _stats(windows: Iterable[RecentCalls], *, now: float, period: float) -> dict[str, Any]:
    return summarize(windows, now=now, period=period).as_dict()


def _process(metrics: Metrics) -> dict[str, float | None]:
    values: dict[str, float | None] = dict.fromkeys(_PROCESS_FAMILIES.values())
    if metrics.process_collector is None:
        return values
    for family in metrics.process_collector.collect():
        key = _PROCESS_FAMILIES.get(family.name)
        if key is not None and family.samples:
            values[key] = family.samples[0].value
    return values


def _tools_and_doors(metrics: Metrics, *, now: float, period: float) -> dict[str, Any]:
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])  # (tool, door) -> calls, errors
    errors_by_kind: dict[str, float] = defaultdict(float)
    for labels, value in counter_values(metrics.tool_calls):
        entry = totals[(labels["tool"], labels["door"])]
        entry[0] += value
        if labels["outcome"] != ToolOutcome.OK.value:
            entry[1] += value
            errors_by_kind[f"tool {labels['outcome']}"] += value
    windows = metrics.tool_windows()

    def rows(index: int, name: str) -> list[dict[str, Any]]:
        keys = sorted({key[index] for key in totals})
        out = []
        for key in keys:
            calls = sum(v[0] for k, v in totals.items() if k[index] == key)
            errors = sum(v[1] for k, v in totals.items() if k[index] == key)
            chosen = [w for (tool, door), w in windows.items() if (tool, door.value)[index] == key]
            out.append({name: key, "calls_total": calls, "errors_total": errors,
                        "recent": _stats(chosen, now=now, period=period)})
        return out

    calls_total = sum(v[0] for v in totals.values())
    errors_total = sum(v[1] for v in totals.values())
    return {
        "tool_calls_total": calls_total,
        "tool_errors_total": errors_total,
        "success_rate_total": None if not calls_total else round((calls_total - errors_total) / calls_total, 4),
        "recent": _stats(windows.values(), now=now, period=period),
        "tools": rows(0, "tool"),
        "doors": rows(1, "door"),
        "errors_by_kind": errors_by_kind,
    }


def _coze(sources: Sources, metrics: Metrics, *, now: float, period: float,
          errors_by_kind: dict[str, float]) -> dict[str, Any]:
    client = sources.coze
    attempts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for labels, value in counter_values(metrics.coze_requests):
        entry = attempts[labels["endpoint"]]
        entry[0] += value
        if labels["code"] != "0":
            entry[1] += value
            errors_by_kind[f"coze {labels['code']}"] += value
    windows = metrics.coze_windows()
    endpoints = [
        {"endpoint": endpoint, "attempts_total": counts[0], "errors_total": counts[1],
         "recent": _stats([windows[endpoint]] if endpoint in windows else [], now=now, period=period)}
        for endpoint, counts in sorted(attempts.items())
    ]
    auth = client.auth
    token: dict[str, Any] = {"mode": auth.mode,
                             "rotations": auth.rotations if isinstance(auth, JWTAuth | PATAuth) else 0}
    if isinstance(auth, JWTAuth):
        age, left = auth.token_age(), auth.seconds_left()
        token.update({
            "age_s": None if age is None else round(age, 1),
            "seconds_left": None if left is None else round(left, 1),
            "exchanges": auth.exchange_count,
            "refreshes": auth.refresh_count,
            "exchange_failures": max(0, auth.exchange_attempts - auth.exchange_count),
            "last_error": auth.last_error,
            "kid": auth.kid[:12] + "...",
            "from_previous_key": auth.draining,
        })
    last = metrics.last_coze_error
    return {
        "base_url": client.base_url,
        "token": token,
        "breaker": client.breaker.snapshot(),
        "counters": dict(client.counters),
        "attempts_total": sum(counts[0] for counts in attempts.values()),
        "errors_total": sum(counts[1] for counts in attempts.values()),
        "last_error": None if last is None else {**last.as_dict(), "at": iso_utc(last.at)},
        "endpoints": endpoints,
        **_groups_and_quota(sources, metrics, now=now, period=period),
    }


def _groups_and_quota(sources: Sources, metrics: Metrics, *, now: float, period: float) -> dict[str, Any]:
    """Coze attempts by API group (what each of Coze's quotas sees), and the outgoing quota's state."""
    quota = sources.coze.quota
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # attempts, errors, rate-limited
    for labels, value in counter_values(metrics.coze_requests):
        entry = totals[labels["group"]]
        entry[0] += value
        if labels["code"] != "0":
            entry[1] += value
        if labels["code"] in _RATE_LIMITED:
            entry[2] += value
    windows = metrics.coze_windows()
    by_group: dict[str, list[RecentCalls]] = defaultdict(list)
    for endpoint, window in windows.items():
        by_group[api_group(endpoint)].append(window)
    groups = [
        {"group": group, "documented_qps": group in DOCUMENTED_QPS_GROUPS, "attempts_total": counts[0],
         "errors_total": counts[1], "rate_limited_total": counts[2],
         "quota_waits_total": None if quota is None else quota.waited_by_group.get(group, 0),
         "recent": _stats(by_group.get(group, []), now=now, period=period)}
        for group, counts in sorted(totals.items())
    ]
    if quota is None:
        return {"groups": groups, "quota": None}
    last = summarize(windows.values(), now=now, period=min(QUOTA_PERIOD, period))
    return {"groups": groups, "quota": {
        **quota.snapshot(),
        "rate_per_s": last.rate_per_s,  # attempts sent, over the last minute
        "use": round(last.rate_per_s / quota.per_second, 4),
        "period_s": min(QUOTA_PERIOD, period),
    }}


def _upstreams(sources: Sources) -> list[dict[str, Any]]:
    keep = ("name", "transport", "state", "tool_count", "calls", "failures", "timeouts", "last_error",
            "last_latency_ms", "next_attempt_in")
    return [{key: entry.get(key) for key in keep} for entry in sources.upstreams.diagnostics()]


def _webhooks(metrics: Metrics) -> dict[str, Any]:
    events = [{"result": labels["result"], "reason": labels["reason"], "count": value}
              for labels, value in counter_values(metrics.webhook_events)]
    depth = metrics.inbox_depth
    inbox = dict(sorted(depth().items())) if depth is not None else None
    return {"connected": depth is not None or bool(events), "events": events, "inbox": inbox}


def _http(metrics: Metrics) -> dict[str, Any]:
    routes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for labels, value in counter_values(metrics.http_requests):
        routes[labels["route"]][labels["status"]] += value
    rows = [{"route": route, "requests_total": sum(statuses.values()),
             "errors_total": sum(v for status, v in statuses.items() if status >= "500"),
             "by_status": dict(sorted(statuses.items()))}
            for route, statuses in sorted(routes.items())]
    return {"requests_total": sum(row["requests_total"] for row in rows), "routes": rows}


def build_snapshot(sources: Sources, metrics: Metrics, *, now: float | None = None) -> dict[str, Any]:
    """Everything the monitoring page shows, as JSON-able data."""
    at = time.time() if now is None else now
    uptime = max(0.0, at - sources.started_at)
    period = max(1.0, min(RECENT_PERIOD, uptime))
    services, status = services_of(sources)
    calls = _tools_and_doors(metrics, now=at, period=period)
    errors_by_kind: dict[str, float] = calls.pop("errors_by_kind")
    coze = _coze(sources, metrics, now=at, period=period, errors_by_kind=errors_by_kind)
    return {
        "at": at,
        "timestamp": iso_utc(at),
        "version": sources.version,
        "mode": sources.mode,
        "warning": sources.warning,
        "uptime_s": round(uptime, 1),
        "recent_period_s": round(period, 1),
        "status": status,
        "services": services,
        "calls": calls,
        "errors_by_kind": [{"kind": kind, "count": count}
                           for kind, count in sorted(errors_by_kind.items(), key=lambda item: (-item[1], item[0]))],
        "http": _http(metrics),
        "coze": coze,
        "upstreams": _upstreams(sources),
        "webhooks": _webhooks(metrics),
        "process": _process(metrics),
        "recent_errors": [{**record.as_dict(), "at": iso_utc(record.at)} for record in reversed(metrics.recent_errors)],
    }
