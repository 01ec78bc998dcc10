"""The runtime's Prometheus registry and the families the bridge records into it (no globals).

:class:`Metrics` is built by the composition root and handed to whatever records: it *is*
the registry's :class:`~kai_bridge.tools.ToolCallObserver` (every door's tool calls, once,
in ``ToolRegistry.call``) and the Coze client's :class:`~kai_bridge.coze.CozeObserver` (every
request attempt); the HTTP middleware calls :meth:`Metrics.http_request`; the webhook door
calls :meth:`Metrics.webhook_event` and registers its inbox depth with :meth:`Metrics.watch_inbox`.
State that already lives elsewhere (breaker, token, upstreams, health) is read at scrape time
by the collectors in :mod:`.collectors`, never copied.

Names follow the Prometheus conventions: ``kai_bridge_`` prefix, ``_total`` on counters,
``_seconds`` for durations, base units; the process families keep their standard
``process_*`` / ``python_*`` names so stock dashboards work. Label values are bounded: route
templates, tool names from the registry (``(unknown)`` for anything else), the
:class:`~kai_bridge.tools.Door` values, outcomes, Coze endpoint names and codes; never a path,
a user id or an argument. Beside the histograms, each series keeps its recent calls
(:mod:`.window`) for the monitoring page's live p95.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from kai_bridge.coze import CozeOutcome, OutcomeSink
from kai_bridge.coze.groups import api_group
from kai_bridge.coze.observer import CODE_OK
from kai_bridge.errors import ToolError
from kai_bridge.logs import redact
from kai_bridge.observability.window import RecentCalls
from kai_bridge.tools import CallFinished, Door, ToolOutcome

__all__ = [
    "LATENCY_BUCKETS",
    "ErrorRecord",
    "InboxDepth",
    "Metrics",
    "bounded_label",
]

#: Seconds; from a cached knowledge answer (~1 ms) to a long Coze chat (the 120 s chat timeout).
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                          60.0, 120.0)
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LABEL_RE: Final = re.compile(r"^[a-z0-9_.-]{1,40}$")
_ERRORS_KEPT: Final = 50
_MESSAGE_MAX: Final = 300

#: The webhook inbox's depth by status (``{"pending": 3, "done": 120, ...}``), read at scrape time.
InboxDepth = Callable[[], Mapping[str, int]]


def bounded_label(value: str, *, fallback: str = "other") -> str:
    """``value`` if it is a short lower-case word (``[a-z0-9_.-]``, at most 40), else ``fallback``."""
    return value if _LABEL_RE.match(value) else fallback


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One recent failure, as the monitoring page lists it (the message is scrubbed of secrets)."""

    at: float
    kind: str  # "tool" | "coze"
    where: str  # "mcp-http / send_message", "stream_chat"
    code: str  # a tool outcome or a Coze code
    logid: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _logid_in(error: BaseException | None) -> str | None:
    seen = error
    for _ in range(8):
        if seen is None:
            return None
        logid = getattr(seen, "logid", None)
        if isinstance(logid, str) and logid:
            return logid
        seen = seen.__cause__
    return None


def _scrubbed(error: BaseException) -> str:
    text = redact(str(error))
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 1] + "…"


class Metrics:
    """The registry and its families; see the module docstring. One per runtime."""

    def __init__(self, *, process: bool = True, clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._timer = timer
        r = self.registry
        self.http_requests = Counter(
            "kai_bridge_http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.http_duration = Histogram(
            "kai_bridge_http_request_duration_seconds",
            "Time from request to the end of the response (an SSE stream counts until it closes).",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.tool_calls = Counter(
            "kai_bridge_tool_calls", "Tool calls through the registry, by tool, door and outcome.",
            ["tool", "door", "outcome"], registry=r,
        )
        self.tool_duration = Histogram(
            "kai_bridge_tool_call_duration_seconds", "Tool call duration, by tool and door.",
            ["tool", "door"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.coze_requests = Counter(
            "kai_bridge_coze_requests",
            "Coze request attempts (a retried call counts each attempt), by endpoint, Coze API group (chat, "
            "conversation, bot, user...: the quota it counts against) and Coze code (0 = success; 4013 = Coze's "
            "rate limit; circuit_open, transport, http_<status> where Coze gave no code).",
            ["endpoint", "group", "code"], registry=r,
        )
        self.coze_duration = Histogram(
            "kai_bridge_coze_request_duration_seconds",
            "Coze request attempt latency (a stream: until its first byte), by endpoint.",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.webhook_events = Counter(
            "kai_bridge_webhook_events", "Webhook events received, by result (accepted, duplicate, rejected) "
            "and the reason of a rejection.", ["result", "reason"], registry=r,
        )
        #: The standard process_* families (CPU, memory, open fds) and python_*, on this registry.
        self.process_collector = ProcessCollector(registry=r) if process else None
        if process:
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._tool_counters: dict[tuple[str, Door, ToolOutcome], Counter] = {}
        self._tool_series: dict[tuple[str, Door], tuple[Histogram, RecentCalls]] = {}
        self._coze_counters: dict[tuple[str, str], Counter] = {}
        self._coze_series: dict[str, tuple[Histogram, RecentCalls]] = {}
        self.recent_errors: deque[ErrorRecord] = deque(maxlen=_ERRORS_KEPT)
        self.last_coze_error: ErrorRecord | None = None
        self.inbox_depth: InboxDepth | None = None
        self._watched: list[Collector] = []

    # ---- HTTP (the middleware) ---------------------------------------------------------------
    def http_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            shown = method if method in _METHODS else "OTHER"
            children = (self.http_requests.labels(route, shown, str(status)), self.http_duration.labels(route, shown))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    # ---- tool calls (ToolCallObserver) -------------------------------------------------------
    def call_started(self, *, tool: str, door: Door) -> CallFinished:
        began = self._timer()

        def finished(outcome: ToolOutcome, error: ToolError | None) -> None:
            seconds = self._timer() - began
            key = (tool, door, outcome)
            counter = self._tool_counters.get(key)
            if counter is None:
                counter = self._tool_counters[key] = self.tool_calls.labels(tool, door.value, outcome.value)
            counter.inc()
            histogram, window = self.tool_series(tool, door)
            histogram.observe(seconds)
            window.add(at=self._clock(), seconds=seconds, ok=outcome is ToolOutcome.OK)
            if error is not None:
                self.recent_errors.append(ErrorRecord(
                    at=self._clock(), kind="tool", where=f"{door.value} / {tool}", code=outcome.value,
                    logid=_logid_in(error), message=_scrubbed(error),
                ))

        return finished

    def tool_series(self, tool: str, door: Door) -> tuple[Histogram, RecentCalls]:
        series = self._tool_series.get((tool, door))
        if series is None:
            series = self._tool_series[(tool, door)] = (self.tool_duration.labels(tool, door.value), RecentCalls())
        return series

    def tool_windows(self) -> Mapping[tuple[str, Door], RecentCalls]:
        return {key: series[1] for key, series in self._tool_series.items()}

    # ---- Coze (CozeObserver) -----------------------------------------------------------------
    def request_started(self, *, endpoint: str) -> OutcomeSink:
        began = self._timer()

        def done(outcome: CozeOutcome) -> None:
            seconds = self._timer() - began
            key = (endpoint, outcome.code)
            counter = self._coze_counters.get(key)
            if counter is None:
                counter = self._coze_counters[key] = self.coze_requests.labels(endpoint, api_group(endpoint),
                                                                               outcome.code)
            counter.inc()
            series = self._coze_series.get(endpoint)
            if series is None:
                series = self._coze_series[endpoint] = (self.coze_duration.labels(endpoint), RecentCalls())
            series[0].observe(seconds)
            series[1].add(at=self._clock(), seconds=seconds, ok=outcome.code == CODE_OK)
            if outcome.error is not None:
                record = ErrorRecord(at=self._clock(), kind="coze", where=endpoint, code=outcome.code,
                                     logid=outcome.logid, message=_scrubbed(outcome.error))
                self.last_coze_error = record
                if outcome.code not in ("circuit_open", "cancelled"):  # a fast-fail flood would push out the cause
                    self.recent_errors.append(record)

        return done

    def coze_windows(self) -> Mapping[str, RecentCalls]:
        return {endpoint: series[1] for endpoint, series in self._coze_series.items()}

    # ---- webhooks (for the webhook door) -----------------------------------------------------
    def webhook_event(self, *, result: str, reason: str = "") -> None:
        """Count one received event: ``result`` accepted | duplicate | rejected, ``reason`` why it was
        rejected (``signature``, ``malformed``... a short lower-case word; anything else becomes ``other``)."""
        self.webhook_events.labels(bounded_label(result), bounded_label(reason, fallback="other") if reason else "").inc()

    def watch_inbox(self, depth: InboxDepth) -> None:
        """Read the inbox depth by status from ``depth()`` at each scrape (keep it cheap: no I/O)."""
        self.inbox_depth = depth

    # ---- collectors --------------------------------------------------------------------------
    def watch(self, collectors: Iterable[Collector]) -> None:
        """Register collectors that read state at scrape time (see :mod:`.collectors`)."""
        for collector in collectors:
            self.registry.register(collector)
            self._watched.append(collector)

    def close(self) -> None:
        """Unregister the scrape-time collectors (they hold the runtime's services)."""
        for collector in self._watched:
            self.registry.unregister(collector)
        self._watched.clear()
