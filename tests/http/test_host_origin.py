"""Host and Origin are compared exactly, on every route of ``serve`` and of the stdio sidecar.

The matcher is property-tested against the tricks DNS rebinding and sloppy prefix matching
invite (suffixes, userinfo, IPv6 brackets, trailing dots, case, ports); the middleware is
tested over a real socket on every route.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from kai_bridge.http.app import build_app, build_sidecar_app
from kai_bridge.http.security import HostOriginMiddleware, HostOriginPolicy
from kai_bridge.urls import parse_authority
from tests.http.support import INIT, MCP_TOKEN, OPERATOR_ROUTES, POST_HEADERS, runtime_for, serving_app

LOOPBACK = HostOriginPolicy.of()
CONFIGURED = HostOriginPolicy.of(
    hosts=["mcp.example.com:8443", "api.example.com:*", "bare.example.com"],
    origins=["https://app.example.com", "http://dev.example.com:*"],
)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

ports = st.integers(min_value=0, max_value=65535)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
# Characters that could turn an allowed value into another one if matching were sloppy.
suffixes = st.text(alphabet=".:-_@/[]%#?abcxyz019", min_size=1, max_size=12)


def random_case(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips + [False] * len(text), strict=False))


# ---- the matcher: Host --------------------------------------------------------------------------


@given(name=st.sampled_from(LOOPBACK_NAMES), port=ports, flips=st.lists(st.booleans(), max_size=12))
def test_a_loopback_host_is_allowed_with_any_port_in_any_case(name: str, port: int, flips: list[bool]) -> None:
    assert LOOPBACK.host_allowed(random_case(f"{name}:{port}", flips))
    assert LOOPBACK.host_allowed(random_case(name, flips))


@given(name=st.sampled_from(("localhost", "127.0.0.1")), port=ports, suffix=suffixes)
def test_anything_after_a_loopback_port_is_refused_unless_it_only_makes_another_port(
    name: str, port: int, suffix: str
) -> None:
    host = f"{name}:{port}{suffix}"
    still_a_port = suffix.isdigit() and int(f"{port}{suffix}") <= 65535
    assert LOOPBACK.host_allowed(host) is still_a_port


@given(name=st.sampled_from(LOOPBACK_NAMES), label=labels, port=ports)
def test_a_name_that_only_contains_a_loopback_name_is_refused(name: str, label: str, port: int) -> None:
    for host in (f"{name}.{label}:{port}", f"{label}.{name}:{port}", f"{name}{label}:{port}", f"{name}-{label}"):
        assert not LOOPBACK.host_allowed(host), host


@given(name=st.sampled_from(LOOPBACK_NAMES), user=labels, port=ports)
def test_userinfo_around_a_loopback_host_is_refused(name: str, user: str, port: int) -> None:
    assert not LOOPBACK.host_allowed(f"{user}@{name}:{port}")
    assert not LOOPBACK.host_allowed(f"{name}:{port}@{user}.example")
    assert not LOOPBACK.host_allowed(f"{name}@{user}.example:{port}")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        pytest.param("127.0.0.1:8080.evil.example", False, id="the-probe-of-issue-7"),
        pytest.param("localhost.:8080", True, id="trailing-dot-is-the-same-name"),
        pytest.param("localhost..:8080", False, id="two-trailing-dots"),
        pytest.param(".localhost:8080", False, id="leading-dot"),
        pytest.param("[0:0:0:0:0:0:0:1]:8080", True, id="ipv6-long-form"),
        pytest.param("[::1]", True, id="ipv6-no-port"),
        pytest.param("::1", False, id="ipv6-without-brackets"),
        pytest.param("::1:8080", False, id="ipv6-port-without-brackets"),
        pytest.param("[::1:8080", False, id="unclosed-bracket"),
        pytest.param("[::1]8080", False, id="port-without-colon"),
        pytest.param("[::1%25lo]:8080", False, id="zone-id"),
        pytest.param("[::2]:8080", False, id="other-ipv6"),
        pytest.param("[127.0.0.1]:8080", False, id="ipv4-in-brackets"),
        pytest.param("127.0.0.2:8080", False, id="other-loopback-address-is-not-a-loopback-name"),
        pytest.param("localhost:", False, id="empty-port"),
        pytest.param("localhost:65536", False, id="port-out-of-range"),
        pytest.param("localhost:+80", False, id="signed-port"),
        pytest.param("localhost:８０", False, id="non-ascii-digits"),
        pytest.param("localhost :80", False, id="space"),
        pytest.param("localhost:80 ", False, id="trailing-space"),
        pytest.param("", False, id="empty"),
        pytest.param("local%68ost:80", False, id="percent-encoded"),
    ],
)
def test_tricky_host_values(host: str, allowed: bool) -> None:
    assert LOOPBACK.host_allowed(host) is allowed


@given(port=ports)
def test_a_configured_host_port_allows_that_port_only(port: int) -> None:
    assert CONFIGURED.host_allowed(f"mcp.example.com:{port}") is (port == 8443)
    assert CONFIGURED.host_allowed(f"MCP.Example.COM.:{port}") is (port == 8443)
    assert not CONFIGURED.host_allowed("mcp.example.com")


@given(port=ports, label=labels)
def test_a_configured_host_star_allows_any_port_of_that_host_only(port: int, label: str) -> None:
    assert CONFIGURED.host_allowed(f"api.example.com:{port}")
    assert CONFIGURED.host_allowed("api.example.com")
    assert not CONFIGURED.host_allowed(f"api.example.com.{label}:{port}")
    assert not CONFIGURED.host_allowed(f"{label}.api.example.com:{port}")


@given(port=ports)
def test_a_configured_bare_host_allows_it_without_a_port_only(port: int) -> None:
    assert CONFIGURED.host_allowed("bare.example.com")
    assert not CONFIGURED.host_allowed(f"bare.example.com:{port}")


@given(value=st.text(max_size=40))
def test_any_text_is_answered_and_only_an_allowed_name_passes(value: str) -> None:
    if CONFIGURED.host_allowed(value):
        assert parse_authority(value).host in {"localhost", "127.0.0.1", "[::1]", "mcp.example.com", "api.example.com",
                                              "bare.example.com"}
        assert not set(value) & set("@/\\ \t#?%")


# ---- the matcher: Origin ------------------------------------------------------------------------


@given(name=st.sampled_from(LOOPBACK_NAMES), port=ports, scheme=st.sampled_from(("http", "https", "HTTP")))
def test_a_loopback_origin_is_allowed_with_any_port(name: str, port: int, scheme: str) -> None:
    assert LOOPBACK.origin_allowed(f"{scheme}://{name}:{port}")
    assert LOOPBACK.origin_allowed(f"{scheme}://{name}")


@given(name=st.sampled_from(("localhost", "127.0.0.1")), port=ports, suffix=suffixes)
def test_anything_after_a_loopback_origin_port_is_refused_unless_it_only_makes_another_port(
    name: str, port: int, suffix: str
) -> None:
    still_a_port = suffix.isdigit() and int(f"{port}{suffix}") <= 65535
    assert LOOPBACK.origin_allowed(f"http://{name}:{port}{suffix}") is still_a_port


@given(name=st.sampled_from(LOOPBACK_NAMES), label=labels, port=ports)
def test_an_origin_that_only_contains_a_loopback_name_is_refused(name: str, label: str, port: int) -> None:
    for origin in (
        f"http://{name}.{label}:{port}",
        f"http://{name}:{port}@{label}.example",
        f"http://{label}@{name}:{port}",
        f"http://{label}.example#{name}:{port}",
        f"http://{name}:{port}/",
        f"ftp://{name}:{port}",
        f"{name}:{port}",
    ):
        assert not LOOPBACK.origin_allowed(origin), origin


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        pytest.param("https://app.example.com", True, id="exact"),
        pytest.param("https://app.example.com:443", True, id="default-port-written"),
        pytest.param("HTTPS://App.Example.Com", True, id="case"),
        pytest.param("http://app.example.com", False, id="other-scheme"),
        pytest.param("https://app.example.com:8443", False, id="other-port"),
        pytest.param("https://app.example.com.evil.example", False, id="suffix"),
        pytest.param("https://evil-app.example.com", False, id="lookalike"),
        pytest.param("http://dev.example.com:3000", True, id="configured-star"),
        pytest.param("http://dev.example.com", True, id="configured-star-default-port"),
        pytest.param("null", False, id="opaque-origin"),
        pytest.param("", False, id="empty"),
    ],
)
def test_tricky_origin_values(origin: str, allowed: bool) -> None:
    assert CONFIGURED.origin_allowed(origin) is allowed


# ---- the middleware on a real socket ------------------------------------------------------------

BAD_HOSTS = ("127.0.0.1:8080.evil.example", "localhost.evil.example", "evil.example:80", "user@127.0.0.1:8080")


def _request(route: str) -> tuple[str, dict[str, str], dict[str, Any] | None]:
    """Method, headers and JSON body of a request ``route`` answers 200 (or 404) to."""
    if route == "/mcp":
        return "POST", {**POST_HEADERS, "Authorization": f"Bearer {MCP_TOKEN}"}, INIT
    return "GET", {}, None


@pytest.mark.parametrize("route", [*OPERATOR_ROUTES, "/mcp", "/no-such-route"])
async def test_every_route_refuses_a_host_that_is_not_exactly_allowed(route: str, tmp_path: Path) -> None:
    async with (
        runtime_for(tmp_path, {"mcp_auth_token": MCP_TOKEN}) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        method, headers, body = _request(route)
        good = await http.request(method, base + route, json=body, headers=headers)
        answers = {
            host: await http.request(method, base + route, json=body, headers={**headers, "Host": host})
            for host in BAD_HOSTS
        }
    assert good.status_code in (200, 404), good.text
    for host, response in answers.items():
        assert response.status_code == 421, (host, response.text)
        body = response.json()
        assert body["error"] == "misdirected_request"
        assert "KAI_BRIDGE_MCP_ALLOWED_HOSTS" in body["error_description"]


@pytest.mark.parametrize("route", [*OPERATOR_ROUTES, "/mcp"])
async def test_every_route_refuses_a_foreign_origin_and_accepts_none_or_a_loopback_one(
    route: str, tmp_path: Path
) -> None:
    async with (
        runtime_for(tmp_path, {"mcp_auth_token": MCP_TOKEN}) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        method, headers, body = _request(route)

        async def status(origin: str | None) -> httpx2.Response:
            extra = {"Origin": origin} if origin is not None else {}
            return await http.request(method, base + route, json=body, headers={**headers, **extra})

        none, local = await status(None), await status("http://localhost:3000")
        foreign = [await status(o) for o in ("http://localhost:3000.evil.example", "http://evil.example", "null")]
    assert none.status_code == 200, none.text
    assert local.status_code == 200, local.text
    for response in foreign:
        assert response.status_code == 403, response.text
        assert "KAI_BRIDGE_MCP_ALLOWED_ORIGINS" in response.json()["error_description"]


async def test_configured_hosts_and_origins_open_every_route(tmp_path: Path) -> None:
    overrides = {"mcp_allowed_hosts": ["mcp.example.com:*"], "mcp_allowed_origins": ["https://app.example.com"]}
    async with (
        runtime_for(tmp_path, overrides) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10, headers={"Host": "mcp.example.com", "Origin": "https://app.example.com"}) as http,
    ):
        answers = {route: await http.get(base + route) for route in OPERATOR_ROUTES}
        mcp = await http.post(f"{base}/mcp", json=INIT, headers=POST_HEADERS)
        other = await http.get(f"{base}/health", headers={"Host": "other.example.com"})
    assert {route: r.status_code for route, r in answers.items()} == dict.fromkeys(OPERATOR_ROUTES, 200)
    assert mcp.status_code == 200
    assert other.status_code == 421


async def test_the_stdio_sidecar_applies_the_same_host_and_origin_checks(tmp_path: Path) -> None:
    async with (
        runtime_for(tmp_path) as runtime,
        serving_app(build_sidecar_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        ok = {route: (await http.get(base + route)).status_code for route in OPERATOR_ROUTES}
        rebound = {
            route: (await http.get(base + route, headers={"Host": "127.0.0.1:8081.evil.example"})).status_code
            for route in OPERATOR_ROUTES
        }
        cross = (await http.get(f"{base}/diagnostics/coze", headers={"Origin": "http://evil.example"})).status_code
    assert ok == dict.fromkeys(OPERATOR_ROUTES, 200)
    assert rebound == dict.fromkeys(OPERATOR_ROUTES, 421)
    assert cross == 403


async def _asgi_status(headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, str]]:
    """Call the middleware in front of an app that answers 204; return the status and the JSON body."""
    sent: list[Message] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/health", "headers": headers}
    await HostOriginMiddleware(inner, policy=LOOPBACK)(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], (json.loads(body) if body else {})


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        pytest.param([(b"host", b"localhost:1")], 204, "", id="one-host"),
        pytest.param([], 421, "no Host header", id="no-host"),
        pytest.param([(b"host", b"localhost:1"), (b"host", b"evil.example")], 421, "more than one", id="two-hosts"),
        pytest.param([(b"host", b"localhost:1"), (b"origin", b"http://localhost:2"), (b"origin", b"http://evil")],
                     403, "more than one Origin", id="two-origins"),
        pytest.param([(b"host", b"l\xf6calhost:1")], 421, "not allowed", id="latin-1-host"),
    ],
)
async def test_missing_or_repeated_host_and_origin_headers_are_refused(
    headers: list[tuple[bytes, bytes]], status: int, says: str
) -> None:
    got, body = await _asgi_status(headers)
    assert got == status
    assert says in body.get("error_description", "")
