"""Coze answers map to the right error class, with code, msg, logid and status, and no secrets."""

from __future__ import annotations

import json

import httpx
import pytest

from kai_bridge.coze.envelope import parse_envelope, parse_retry_after
from kai_bridge.errors import (
    CozeAPIError,
    CozeAuthError,
    CozeBadRequestError,
    CozeConflictError,
    CozeNotFoundError,
    CozeRateLimitError,
    CozeServerError,
)


def response(status: int, body: object, *, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"content-type": "application/json", **(headers or {})}
    return httpx.Response(status, content=content, headers=hdrs,
                          request=httpx.Request("GET", "https://api.coze.cn/v3/chat/retrieve"))


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        pytest.param(400, 4000, CozeBadRequestError, id="4000-bad-request"),
        pytest.param(401, 4100, CozeAuthError, id="4100-auth"),
        pytest.param(403, 4101, CozeAuthError, id="4101-token-permission"),
        pytest.param(404, 4200, CozeNotFoundError, id="4200-not-found"),
        pytest.param(409, 4016, CozeConflictError, id="4016-conflict"),
        pytest.param(429, 4013, CozeRateLimitError, id="4013-rate-limit"),
        pytest.param(500, 5000, CozeServerError, id="5000-server"),
        pytest.param(200, 4000, CozeBadRequestError, id="code-wins-over-http-200"),
        pytest.param(200, 5000, CozeServerError, id="5000-with-http-200"),
        pytest.param(400, 4104, CozeBadRequestError, id="unknown-4xxx-by-status"),
        pytest.param(503, 5011, CozeServerError, id="unknown-5xxx"),
    ],
)
def test_each_coze_code_maps_to_its_error_class_with_all_fields(
    status: int, code: int, cls: type[CozeAPIError]
) -> None:
    with pytest.raises(CozeAPIError) as info:
        parse_envelope(response(status, {"code": code, "msg": "boom", "detail": {"logid": "body-logid"}},
                                headers={"X-Tt-Logid": "202501010000abc"}), context="retrieve_chat")
    err = info.value
    assert type(err) is cls
    assert (err.code, err.msg, err.logid, err.http_status) == (code, "boom", "202501010000abc", status)
    assert "retrieve_chat" in str(err)
    assert "logid=202501010000abc" in str(err)


def test_logid_falls_back_to_the_body_detail() -> None:
    with pytest.raises(CozeNotFoundError) as info:
        parse_envelope(response(404, {"code": 4200, "msg": "no", "detail": {"logid": "L1"}}), context="x")
    assert info.value.logid == "L1"


def test_rate_limit_carries_retry_after_seconds() -> None:
    with pytest.raises(CozeRateLimitError) as info:
        parse_envelope(response(429, {"code": 4013, "msg": "slow"}, headers={"Retry-After": "3"}), context="x")
    assert info.value.retry_after == 3.0


def test_http_status_decides_when_the_body_has_no_code() -> None:
    with pytest.raises(CozeServerError) as info:
        parse_envelope(response(502, {"message": "bad gateway"}), context="x")
    assert info.value.http_status == 502


@pytest.mark.parametrize(
    ("status", "cls"),
    [pytest.param(502, CozeServerError, id="proxy-502"), pytest.param(200, CozeAPIError, id="html-200")],
)
def test_non_json_body_becomes_an_api_error_with_a_short_excerpt(status: int, cls: type[CozeAPIError]) -> None:
    html = b"<html><body>" + b"Bad Gateway " * 200 + b"</body></html>"
    with pytest.raises(CozeAPIError) as info:
        parse_envelope(response(status, html, headers={"content-type": "text/html"}), context="list_bots")
    assert isinstance(info.value, cls)
    assert "expected JSON, got text/html" in str(info.value)
    assert len(str(info.value)) < 400


def test_success_returns_data_and_the_top_level_body() -> None:
    env = parse_envelope(response(200, {"code": 0, "msg": "", "data": [1], "first_id": "a", "has_more": True},
                                  headers={"X-Tt-Logid": "L"}), context="x")
    assert (env.data, env.body["first_id"], env.logid) == ([1], "a", "L")


def test_oauth_error_with_unregistered_kid_explains_the_region_mix_up() -> None:
    body = {"error_code": "invalid_client", "error_message": "invalid jwt: kid not been registred", "error": "x"}
    with pytest.raises(CozeAuthError) as info:
        parse_envelope(response(401, body), context="Coze token exchange")
    text = str(info.value)
    assert "kid not been registred" in text
    assert "a coze.cn app fails on api.coze.com and vice versa" in text


def test_a_secret_echoed_by_the_server_is_masked_in_the_error() -> None:
    jwtish = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
    with pytest.raises(CozeAuthError) as info:
        parse_envelope(response(401, {"code": 4100, "msg": f"bad token pat_abcdefghijklmnop {jwtish}"}),
                       context="x")
    assert "pat_abcdefghijklmnop" not in str(info.value)
    assert jwtish not in str(info.value)
    assert "pat_abcdefghijklmnop" not in info.value.msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("5", 5.0, id="seconds"),
        pytest.param("0.5", 0.5, id="fraction"),
        pytest.param("Thu, 01 Jan 1970 00:01:40 GMT", 40.0, id="http-date"),
        pytest.param("soon", None, id="garbage"),
        pytest.param(None, None, id="missing"),
        pytest.param("-3", 0.0, id="negative-clamped"),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=60.0) == expected
