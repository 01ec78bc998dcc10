"""Observability: Prometheus metrics on a registry the runtime owns, the seed's /health and
/monitoring panel, the / landing page, and optional OpenTelemetry traces.

The root builds :class:`Metrics` and :class:`Tracing` first (the tool registry and the Coze
client report to them through their own observer protocols), then one :class:`Observability`
with the :class:`Sources` it reads. ``http/app.py`` adds :func:`observability_routes` and the
:class:`HttpMetricsMiddleware`. Nothing here reads the settings or the environment.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kai_bridge.observability.collectors import collectors_for
from kai_bridge.observability.hub import Observability
from kai_bridge.observability.liveness import liveness
from kai_bridge.observability.metrics import InboxDepth, Metrics
from kai_bridge.observability.observers import observer_for
from kai_bridge.observability.snapshot import build_snapshot
from kai_bridge.observability.sources import SANDBOX_WARNING, Mode, Sources
from kai_bridge.observability.tracing import Tracing, open_tracing

if TYPE_CHECKING:
    from kai_bridge.observability.middleware import HttpMetricsMiddleware
    from kai_bridge.observability.routes import CONFIGURATION_PATHS, MONITORING_PATHS, LandingInfo, observability_routes

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


# The HTTP pieces load Starlette: imported on first use, so the root (and `kai-bridge call`,
# which opens it) does not load a web framework it never serves.
_LAZY = {
    "HttpMetricsMiddleware": "kai_bridge.observability.middleware",
    "CONFIGURATION_PATHS": "kai_bridge.observability.routes",
    "MONITORING_PATHS": "kai_bridge.observability.routes",
    "LandingInfo": "kai_bridge.observability.routes",
    "observability_routes": "kai_bridge.observability.routes",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kai_bridge.observability' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
