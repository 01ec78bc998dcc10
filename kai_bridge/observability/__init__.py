"""Observability: Prometheus metrics on a registry the runtime owns, the seed's /health and
/monitoring panel, the / landing page, and optional OpenTelemetry traces.

The root builds :class:`Metrics` and :class:`Tracing` first (the tool registry and the Coze
client report to them through their own observer protocols), then one :class:`Observability`
with the :class:`Sources` it reads. ``http/app.py`` adds :func:`observability_routes` and the
:class:`HttpMetricsMiddleware`. Nothing here reads the settings or the environment.
"""

from __future__ import annotations

from kai_bridge.observability.collectors import collectors_for
from kai_bridge.observability.hub import Observability
from kai_bridge.observability.liveness import liveness
from kai_bridge.observability.metrics import InboxDepth, Metrics
from kai_bridge.observability.middleware import HttpMetricsMiddleware
from kai_bridge.observability.observers import observer_for
from kai_bridge.observability.routes import CONFIGURATION_PATHS, MONITORING_PATHS, LandingInfo, observability_routes
from kai_bridge.observability.snapshot import build_snapshot
from kai_bridge.observability.sources import SANDBOX_WARNING, Mode, Sources
from kai_bridge.observability.tracing import Tracing, open_tracing

__all__ = [
    "CONFIGURATION_PATHS",
    "MONITORING_PATHS",
    "SANDBOX_WARNING",
    "HttpMetricsMiddleware",
    "InboxDepth",
    "LandingInfo",
    "Metrics",
    "Mode",
    "Observability",
    "Sources",
    "Tracing",
    "build_snapshot",
    "collectors_for",
    "liveness",
    "observability_routes",
    "observer_for",
    "open_tracing",
]
