"""One observer for the tool registry and the Coze client that feeds both the metrics and the traces.

With tracing off the root hands the :class:`~kai_bridge.observability.metrics.Metrics` itself
to both (one call less per event); with it on, :class:`TracedObserver` opens a span around each
tool call and Coze attempt and records the metrics as well.
"""

from __future__ import annotations

from kai_bridge.coze import CozeObserver, CozeOutcome, OutcomeSink
from kai_bridge.errors import ToolError
from kai_bridge.observability.metrics import Metrics
from kai_bridge.observability.tracing import Tracing
from kai_bridge.tools import CallFinished, Door, ToolCallObserver, ToolOutcome

__all__ = ["TracedObserver", "observer_for"]


class TracedObserver:
    """Metrics plus a span per tool call (``tool <name>``) and per Coze attempt (``coze <endpoint>``)."""

    def __init__(self, *, metrics: Metrics, tracing: Tracing) -> None:
        self._metrics = metrics
        self._tracing = tracing

    def call_started(self, *, tool: str, door: Door) -> CallFinished:
        record = self._metrics.call_started(tool=tool, door=door)
        end = self._tracing.start(f"tool {tool}", {"kai_bridge.tool": tool, "kai_bridge.door": door.value})

        def finished(outcome: ToolOutcome, error: ToolError | None) -> None:
            if end is not None:
                end({"kai_bridge.outcome": outcome.value}, error)
            record(outcome, error)

        return finished

    def request_started(self, *, endpoint: str) -> OutcomeSink:
        record = self._metrics.request_started(endpoint=endpoint)
        end = self._tracing.start(f"coze {endpoint}", {"coze.endpoint": endpoint})

        def done(outcome: CozeOutcome) -> None:
            if end is not None:
                extra: dict[str, str | int | float | bool] = {"coze.code": outcome.code}
                if outcome.logid:
                    extra["coze.logid"] = outcome.logid
                end(extra, outcome.error)
            record(outcome)

        return done


def observer_for(*, metrics: Metrics, tracing: Tracing) -> tuple[ToolCallObserver, CozeObserver]:
    """What to hand the registry and the Coze client: the metrics alone, or metrics plus traces."""
    if not tracing.enabled:
        return metrics, metrics
    traced = TracedObserver(metrics=metrics, tracing=tracing)
    return traced, traced
