"""Scrape-time collectors: state that lives in the services (breaker, token, upstreams, health) read, not copied.

Each ``collect()`` reads plain attributes and diagnostics dictionaries (no I/O, no await), so a
scrape costs what formatting the text costs. ``describe()`` names the families without
reading anything, so registering a collector does not run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kai_bridge.coze import BreakerState, JWTAuth, PATAuth
from kai_bridge.observability.metrics import Metrics, bounded_label
from kai_bridge.observability.sources import Sources

__all__ = ["CozeCollector", "CredentialCollector", "HealthCollector", "InboxCollector", "QuotaCollector",
           "RuntimeCollector", "UpstreamCollector", "collectors_for"]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class CozeCollector(Collector):
    """Breaker state, the pipeline's counters and the token's age."""

    def __init__(self, sources: Sources) -> None:
        self._coze = sources.coze

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("kai_bridge_coze_breaker_state",
                              "The Coze circuit breaker's state: 1 for the current one.", labels=["state"]),
            GaugeMetricFamily("kai_bridge_coze_breaker_consecutive_failures",
                              "Consecutive Coze failures counted by the breaker."),
            CounterMetricFamily("kai_bridge_coze_breaker_openings", "Times the Coze circuit breaker opened."),
            CounterMetricFamily("kai_bridge_coze_breaker_rejections",
                                "Coze calls refused at once by the open breaker."),
            CounterMetricFamily("kai_bridge_coze_retries", "Coze requests repeated after a transient failure."),
            CounterMetricFamily("kai_bridge_coze_reauths", "Coze requests repeated with a new token after 401/4100."),
            CounterMetricFamily("kai_bridge_coze_streams", "Coze event streams opened."),
            CounterMetricFamily("kai_bridge_coze_stream_cuts", "Coze event streams that ended before the chat did."),
            CounterMetricFamily("kai_bridge_coze_token_exchanges",
                                "JWT -> access token exchanges at the token endpoint, by result.",
                                labels=["result"]),
            CounterMetricFamily("kai_bridge_coze_token_refreshes",
                                "Successful exchanges that replaced an earlier token (early refresh, expiry, "
                                "a token Coze refused)."),
            GaugeMetricFamily("kai_bridge_coze_token_age_seconds", "Age of the cached Coze access token."),
            GaugeMetricFamily("kai_bridge_coze_token_remaining_seconds",
                              "Seconds until the cached Coze access token expires."),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        (state, failures, openings, rejections, retries, reauths, streams, cuts, exchanges, refreshes, age,
         remaining) = self._families()
        breaker = self._coze.breaker
        current = breaker.state
        for value in BreakerState:
            state.add_metric([value.value], 1.0 if value is current else 0.0)
        snapshot = breaker.snapshot()
        failures.add_metric([], _number(snapshot.get("consecutive_failures")))
        openings.add_metric([], float(breaker.opened_count))
        rejections.add_metric([], float(breaker.rejected_count))
        counters = self._coze.counters
        retries.add_metric([], float(counters.get("retries", 0)))
        reauths.add_metric([], float(counters.get("reauths", 0)))
        streams.add_metric([], float(counters.get("streams", 0)))
        cuts.add_metric([], float(counters.get("streams_cut", 0)))
        auth = self._coze.auth
        families: list[Metric] = [state, failures, openings, rejections, retries, reauths, streams, cuts]
        if isinstance(auth, JWTAuth):
            exchanges.add_metric(["ok"], float(auth.exchange_count))
            exchanges.add_metric(["failed"], float(max(0, auth.exchange_attempts - auth.exchange_count)))
            refreshes.add_metric([], float(auth.refresh_count))
            token_age, left = auth.token_age(), auth.seconds_left()
            if token_age is not None and left is not None:
                age.add_metric([], token_age)
                remaining.add_metric([], left)
            families += [exchanges, refreshes, age, remaining]
        yield from families


class QuotaCollector(Collector):
    """The outgoing Coze quota (``coze_quota_per_second``): its size, and the calls it made wait or refused.

    Nothing is reported while no quota is configured. A non-zero wait rate is the warning sign:
    the traffic is at the quota, which is set to stay under Coze's own rate limit (4013).
    """

    def __init__(self, sources: Sources) -> None:
        self._coze = sources.coze

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("kai_bridge_coze_quota_limit_per_second",
                              "The outgoing Coze quota: requests a second (coze_quota_per_second)."),
            GaugeMetricFamily("kai_bridge_coze_quota_burst", "The outgoing Coze quota's burst (coze_quota_burst)."),
            CounterMetricFamily("kai_bridge_coze_quota_waits",
                                "Coze requests that had to wait for a slot of the outgoing quota, by API group.",
                                labels=["group"]),
            CounterMetricFamily("kai_bridge_coze_quota_wait_seconds",
                                "Time Coze requests spent waiting for a slot of the outgoing quota."),
            CounterMetricFamily("kai_bridge_coze_quota_refusals",
                                "Coze requests not sent: no slot of the outgoing quota within coze_quota_max_wait, "
                                "by API group.", labels=["group"]),
            GaugeMetricFamily("kai_bridge_coze_quota_waiting", "Coze requests waiting for a quota slot now."),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        quota = self._coze.quota
        if quota is None:
            return
        limit, burst, waits, wait_seconds, refusals, waiting = self._families()
        limit.add_metric([], quota.per_second)
        burst.add_metric([], float(quota.burst))
        for group, count in sorted(quota.waited_by_group.items()):
            waits.add_metric([bounded_label(group)], float(count))
        wait_seconds.add_metric([], quota.wait_seconds)
        for group, count in sorted(quota.refused_by_group.items()):
            refusals.add_metric([bounded_label(group)], float(count))
        waiting.add_metric([], float(quota.waiting))
        yield from (limit, burst, waits, wait_seconds, refusals, waiting)


class CredentialCollector(Collector):
    """Key rotations of the Coze credential, and whether the token in use still comes from a rotated-out key."""

    def __init__(self, sources: Sources) -> None:
        self._coze = sources.coze

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily("kai_bridge_coze_credential_rotations",
                                "Coze credentials taken over without a restart (SIGHUP): JWT key pairs or PATs."),
            GaugeMetricFamily("kai_bridge_coze_token_from_previous_key",
                              "1 while the access token in use was minted with the JWT key that was rotated out "
                              "(it drains at its refresh); 0 once the new key's token is in use."),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        rotations, previous = self._families()
        auth = self._coze.auth
        if isinstance(auth, JWTAuth):
            rotations.add_metric([], float(auth.rotations))
            previous.add_metric([], 1.0 if auth.draining else 0.0)
            yield from (rotations, previous)
        elif isinstance(auth, PATAuth):
            rotations.add_metric([], float(auth.rotations))
            yield rotations


class UpstreamCollector(Collector):
    """Upstream KAI MCP servers: up or down, tools served, calls and failures."""

    def __init__(self, sources: Sources) -> None:
        self._upstreams = sources.upstreams

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily("kai_bridge_upstream_up", "1 while the upstream KAI server is connected.",
                              labels=["upstream"]),
            GaugeMetricFamily("kai_bridge_upstream_tools", "Tools the upstream KAI server serves.",
                              labels=["upstream"]),
            CounterMetricFamily("kai_bridge_upstream_calls", "Tool calls sent to the upstream KAI server.",
                                labels=["upstream"]),
            CounterMetricFamily("kai_bridge_upstream_failures",
                                "Tool calls to the upstream that failed (timeouts included).", labels=["upstream"]),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        up, tools, calls, failures = self._families()
        for entry in self._upstreams.diagnostics():
            name = [str(entry.get("name"))]
            up.add_metric(name, 1.0 if entry.get("state") == "connected" else 0.0)
            tools.add_metric(name, _number(entry.get("tool_count")))
            calls.add_metric(name, _number(entry.get("calls")))
            failures.add_metric(name, _number(entry.get("failures")))
        yield from (up, tools, calls, failures)


class HealthCollector(Collector):
    """The last result of each declared health check (the background refresh keeps them fresh)."""

    def __init__(self, sources: Sources) -> None:
        self._health = sources.health

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("kai_bridge_health_check_up", "1 if the check passed when it last ran.",
                              labels=["check", "critical"]),
            GaugeMetricFamily("kai_bridge_health_check_duration_seconds", "How long the check took when it last ran.",
                              labels=["check"]),
            GaugeMetricFamily("kai_bridge_health_check_timestamp_seconds", "Unix time the check last ran.",
                              labels=["check"]),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        up, duration, stamp = self._families()
        for result in self._health.last.values():
            up.add_metric([result.name, "true" if result.critical else "false"], 1.0 if result.ok else 0.0)
            duration.add_metric([result.name], result.ms / 1000)
            stamp.add_metric([result.name], result.at)
        yield from (up, duration, stamp)


class InboxCollector(Collector):
    """The webhook inbox's depth by status, from the callback the webhook door registered."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("kai_bridge_webhook_inbox_events", "Webhook events in the inbox, by status.",
                                 labels=["status"])

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        depth = self._metrics.inbox_depth
        if depth is not None:
            for status, count in sorted(depth().items()):
                family.add_metric([bounded_label(status)], float(count))
        yield family


class RuntimeCollector(Collector):
    """What is running: version and mode, and how many tools the registry serves."""

    def __init__(self, sources: Sources) -> None:
        self._sources = sources

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("kai_bridge_build_info", "Always 1: the version and the Coze mode (live or sandbox).",
                              labels=["version", "mode"]),
            GaugeMetricFamily("kai_bridge_tools", "Tools the registry serves (the bridge's own and upstream ones)."),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        info, tools = self._families()
        info.add_metric([self._sources.version, self._sources.mode], 1.0)
        tools.add_metric([], float(len(self._sources.registry)))
        yield from (info, tools)


def collectors_for(sources: Sources, metrics: Metrics) -> list[Collector]:
    return [
        RuntimeCollector(sources),
        CozeCollector(sources),
        QuotaCollector(sources),
        CredentialCollector(sources),
        UpstreamCollector(sources),
        HealthCollector(sources),
        InboxCollector(metrics),
    ]
