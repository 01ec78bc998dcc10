"""Reading Coze answers: the ``{code, msg, data}`` envelope, OAuth errors, and error mapping.

Every non-success answer becomes one class of :mod:`kai_bridge.errors`, chosen by the Coze
code first (it is the precise signal) and the HTTP status second, carrying ``code``, ``msg``,
``logid`` (``X-Tt-Logid`` header or ``detail.logid`` in the body) and ``http_status``. A body
that is not JSON (a proxy's HTML page, say) still becomes a CozeAPIError with a short,
redacted excerpt: the user sees one line, never a traceback.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from kai_bridge.errors import (
    CozeAPIError,
    CozeAuthError,
    CozeBadRequestError,
    CozeConflictError,
    CozeNotFoundError,
    CozeRateLimitError,
    CozeServerError,
)
from kai_bridge.logs import redact as _redact

__all__ = [
    "LOGID_HEADER",
    "Envelope",
    "decode_json",
    "error_for",
    "logid_of",
    "oauth_error",
    "parse_envelope",
    "parse_retry_after",
    "redact",
]

LOGID_HEADER = "X-Tt-Logid"
_EXCERPT = 200
_MSG_MAX = 500

_HINTS: dict[int, str] = {
    4000: "the request was refused as invalid",
    4013: "rate limited by Coze; slow down",
    4016: "the conversation already has a chat in progress; wait for it or cancel it",
    4100: (
        "authentication is invalid: the token expired or belongs to the other region "
        "(api.coze.cn and api.coze.com do not share tokens)"
    ),
    4101: "the token is wrong or lacks the permission for this API (check the PAT's permissions/workspace)",
    4104: "the chat cannot be canceled in its current state",
    4200: "not found (unknown id, or the bot/workflow is not published to the API channel)",
    5000: "Coze failed on its side; retry later",
}


def redact(text: str) -> str:
    """Mask anything in Coze-supplied text that looks like a secret (key, JWT, token)."""
    return _redact(text)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A successful business answer: ``data`` plus the top-level body and the log id."""

    data: Any
    body: Mapping[str, Any]
    logid: str | None


def logid_of(response: httpx.Response, body: Any = None) -> str | None:
    header: str | None = response.headers.get(LOGID_HEADER)
    if header:
        return header
    if isinstance(body, Mapping):
        detail = body.get("detail")
        if isinstance(detail, Mapping):
            logid = detail.get("logid")
            if isinstance(logid, str) and logid:
                return logid
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _class_for(code: int | None, http_status: int | None) -> type[CozeAPIError]:
    if code in (4100, 4101):
        return CozeAuthError
    if code == 4200:
        return CozeNotFoundError
    if code == 4016:
        return CozeConflictError
    if code == 4013:
        return CozeRateLimitError
    if code == 4000:
        return CozeBadRequestError
    if code is not None and 5000 <= code < 6000:
        return CozeServerError
    if http_status is not None:
        if http_status in (401, 403):
            return CozeAuthError
        if http_status == 404:
            return CozeNotFoundError
        if http_status == 409:
            return CozeConflictError
        if http_status == 429:
            return CozeRateLimitError
        if http_status >= 500:
            return CozeServerError
        if http_status >= 400:
            return CozeBadRequestError
    if code is not None and 4000 <= code < 5000:
        return CozeBadRequestError
    return CozeAPIError


def error_for(
    *,
    code: int | None,
    msg: str,
    http_status: int | None,
    logid: str | None,
    retry_after: float | None = None,
    context: str = "",
) -> CozeAPIError:
    """The error object for a Coze code/msg pair; the message is short, redacted and actionable."""
    msg = redact(msg)[:_MSG_MAX]
    cls = _class_for(code, http_status)
    head = f"{context}: " if context else ""
    if code is not None:
        text = f"{head}Coze error {code}: {msg or 'no message'}"
    else:
        text = f"{head}Coze answered HTTP {http_status}: {msg or 'no message'}"
    hint = _HINTS.get(code) if code is not None else None
    # Coze's own words first; the hint only when they are terse (e.g. "authentication is invalid").
    if hint and len(msg) < 60 and hint.lower() not in msg.lower():
        text += f" ({hint})"
    if cls is CozeRateLimitError:
        return CozeRateLimitError(
            text, code=code, msg=msg, logid=logid, http_status=http_status, retry_after=retry_after
        )
    return cls(text, code=code, msg=msg, logid=logid, http_status=http_status)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def decode_json(response: httpx.Response, *, context: str) -> Any:
    """The JSON body, or a CozeAPIError (by status) quoting a short excerpt of what came instead."""
    logid = logid_of(response)
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        excerpt = redact(response.content[:_EXCERPT].decode("utf-8", errors="replace")).strip()
        ctype = response.headers.get("content-type", "no content type")
        raise error_for(
            code=None,
            msg=f"expected JSON, got {ctype}: {excerpt!r}",
            http_status=response.status_code,
            logid=logid,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            context=context,
        ) from None


def parse_envelope(response: httpx.Response, *, context: str) -> Envelope:
    """Check a business answer and return its ``data``; raise the mapped error otherwise."""
    body = decode_json(response, context=context)
    logid = logid_of(response, body)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if not isinstance(body, Mapping):
        if response.is_success and body is not None:
            return Envelope(data=body, body={}, logid=logid)
        raise error_for(
            code=None,
            msg="empty or non-object JSON body",
            http_status=response.status_code,
            logid=logid,
            retry_after=retry_after,
            context=context,
        )
    code = _as_int(body.get("code"))
    if code is not None and code != 0:
        raise error_for(
            code=code,
            msg=str(body.get("msg") or ""),
            http_status=response.status_code,
            logid=logid,
            retry_after=retry_after,
            context=context,
        )
    if "error_code" in body or body.get("error_message"):
        raise oauth_error(body, response=response, context=context)
    if not response.is_success:
        raise error_for(
            code=None,
            msg=str(body.get("msg") or body.get("message") or ""),
            http_status=response.status_code,
            logid=logid,
            retry_after=retry_after,
            context=context,
        )
    return Envelope(data=body.get("data", body), body=body, logid=logid)


_OAUTH_HINTS = {
    "invalid_client": (
        "the JWT was refused: check coze_app_id, coze_kid and that the private key matches the "
        "public key registered for that kid"
    ),
    "access_deny": "the OAuth app is deactivated or not authorized by the account owner",
    "unsupported_grant_type": "the app is not a JWT (service) OAuth app",
    "invalid_request": "the token request was refused as invalid",
}
_TIME_CLAIMS = re.compile(r"\b(exp|iat|nbf|expired|clock)\b")
_REGION_HINT = (
    "the kid is not registered in this region: a coze.cn app fails on api.coze.com and vice versa "
    "(check coze_api_base), or the public key was deleted from the app"
)


def oauth_error(body: Mapping[str, Any], *, response: httpx.Response, context: str) -> CozeAPIError:
    """Map an OAuth-style ``{error_code, error_message}`` answer of the token endpoint."""
    error_code = str(body.get("error_code") or body.get("error") or "unknown_error")
    message = redact(str(body.get("error_message") or ""))[:_MSG_MAX]
    logid = logid_of(response, body)
    status = response.status_code
    lowered = message.lower()
    if "kid" in lowered and ("regist" in lowered or "not found" in lowered):
        hint = _REGION_HINT
    elif _TIME_CLAIMS.search(lowered):
        hint = "the JWT times were refused: check this machine's clock (NTP)"
    else:
        hint = _OAUTH_HINTS.get(error_code, "")
    head = f"{context}: " if context else ""
    text = f"{head}token exchange refused: {error_code}: {message or 'no message'}"
    if hint:
        text += f" ({hint})"
    if error_code == "internal_error" or status >= 500:
        return CozeServerError(text, code=None, msg=message, logid=logid, http_status=status)
    if status == 429 or error_code == "slow_down":
        return CozeRateLimitError(
            text,
            code=None,
            msg=message,
            logid=logid,
            http_status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    return CozeAuthError(text, code=None, msg=message, logid=logid, http_status=status)
