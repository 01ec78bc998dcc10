"""HTTP faces of kai-bridge: the ``serve`` app (/mcp + operator routes) and the stdio sidecar."""

from __future__ import annotations

from kai_bridge.http.app import build_app, build_sidecar_app, operator_routes
from kai_bridge.http.security import (
    BearerAuthMiddleware,
    HostOriginMiddleware,
    HostOriginPolicy,
    OperatorAuthMiddleware,
    check_http_security,
    is_loopback,
    security_middleware,
    transport_security,
)

__all__ = [
    "BearerAuthMiddleware",
    "HostOriginMiddleware",
    "HostOriginPolicy",
    "OperatorAuthMiddleware",
    "build_app",
    "build_sidecar_app",
    "check_http_security",
    "is_loopback",
    "operator_routes",
    "security_middleware",
    "transport_security",
]
