"""The ``/health`` answer in the seed guide's shape, from what is already known (it never calls Coze).

    {"status": "healthy" | "degraded" | "unhealthy", "timestamp": "<UTC ISO 8601>",
     "services": {"auth_manager": "ok", "coze_client": "ok", "kai_manager": "ok", "store": "ok"}, ...}

Each service is ``ok``, ``degraded`` or ``down``, read from the last result of the declared
checks (``Health.last``, kept fresh by the runtime's background refresh) and from live state
that costs nothing to read: the token provider's last error, the breaker's state, each
upstream's connection state. The seed's names map onto ours:

- ``auth_manager``: the Coze token provider (down when its last exchange failed and no
  token is left; degraded when a refresh failed but the current token still has life);
- ``coze_client``: the ``coze`` check and the circuit breaker (open: down; half-open: degraded);
- ``kai_manager``: the ``knowledge`` check and the upstream KAI servers (a required one down:
  down; an optional one down: degraded);
- ``store``: the ``store`` check.

``status`` is ``unhealthy`` when what readiness requires is down (the store, the knowledge
base, a required upstream), ``degraded`` when only an optional part is (Coze, whose outage
leaves the knowledge and upstream tools working; an optional upstream), else ``healthy``. The route always
answers 200: it is liveness (the process answers); ``/ready`` (503) is what gates traffic.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from kai_bridge.coze import BreakerState, JWTAuth
from kai_bridge.health import CheckResult
from kai_bridge.observability.sources import Sources

__all__ = ["ServiceState", "iso_utc", "liveness", "services_of"]

ServiceState = Literal["ok", "degraded", "down"]
_RANK: dict[ServiceState, int] = {"ok": 0, "degraded": 1, "down": 2}


def iso_utc(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _worst(*states: ServiceState) -> ServiceState:
    return max(states, key=lambda state: _RANK[state])


def _check(last: Mapping[str, CheckResult], name: str) -> ServiceState:
    result = last.get(name)
    return "down" if result is not None and not result.ok else "ok"


def _auth_state(sources: Sources) -> ServiceState:
    auth = sources.coze.auth
    if not isinstance(auth, JWTAuth) or auth.last_error is None:
        return "ok"
    left = auth.seconds_left()
    return "degraded" if left is not None and left > 0 else "down"


def _coze_state(sources: Sources, last: Mapping[str, CheckResult]) -> ServiceState:
    breaker = sources.coze.breaker.state
    from_breaker: ServiceState = (
        "down" if breaker is BreakerState.OPEN else "degraded" if breaker is BreakerState.HALF_OPEN else "ok"
    )
    return _worst(from_breaker, _check(last, "coze"))


def _kai_state(sources: Sources, last: Mapping[str, CheckResult]) -> tuple[ServiceState, bool]:
    """The state, and whether it is down because of something critical."""
    state = _check(last, "knowledge")
    critical_down = state == "down"
    required = {check.name.removeprefix("upstream "): check.critical for check in sources.health.checks
                if check.name.startswith("upstream ")}
    for upstream in sources.upstreams.diagnostics():
        name = str(upstream.get("name"))
        result = last.get(f"upstream {name}")
        down = upstream.get("state") != "connected" or (result is not None and not result.ok)
        if not down:
            continue
        if required.get(name, False):
            state, critical_down = "down", True
        else:
            state = _worst(state, "degraded")
    return state, critical_down


def services_of(sources: Sources) -> tuple[dict[str, ServiceState], Literal["healthy", "degraded", "unhealthy"]]:
    """The seed's services map and the overall status (see the module docstring)."""
    last = sources.health.last
    kai, kai_critical = _kai_state(sources, last)
    services: dict[str, ServiceState] = {
        "auth_manager": _auth_state(sources),
        "coze_client": _coze_state(sources, last),
        "kai_manager": kai,
        "store": _check(last, "store"),
    }
    # Unhealthy when what readiness requires is down (the store, a required upstream); Coze is
    # outside and optional for readiness (the knowledge and upstream tools work without it), so
    # Coze down, like an optional upstream down, is degraded.
    if services["store"] == "down" or kai_critical:
        return services, "unhealthy"
    if any(state != "ok" for state in services.values()):
        return services, "degraded"
    return services, "healthy"


def liveness(sources: Sources, *, now: float | None = None, explain: bool = True) -> dict[str, Any]:
    """The ``/health`` body (see the module docstring): no ping, no secret.

    ``explain=False`` leaves out the checks' texts (they name configuration: targets, modes),
    for callers that may not read ``/diagnostics``.
    """
    at = time.time() if now is None else now
    services, status = services_of(sources)
    checks: dict[str, dict[str, Any]] = {}
    for name, result in sorted(sources.health.last.items()):
        entry: dict[str, Any] = {"ok": result.ok, "critical": result.critical, "ms": result.ms,
                                 "checked_at": iso_utc(result.at), "age_s": round(max(0.0, at - result.at), 1)}
        if explain:
            entry["detail" if result.ok else "error"] = result.detail
        checks[name] = entry
    body: dict[str, Any] = {
        "status": status,
        "timestamp": iso_utc(at),
        "services": services,
        "service": "kai-bridge",
        "version": sources.version,
        "uptime_s": round(max(0.0, at - sources.started_at), 1),
        "mode": sources.mode,
        "store": sources.store_kind,
        "checks": checks,  # the last background results; empty until the first refresh
    }
    if sources.warning:
        body["warning"] = sources.warning
    return body
