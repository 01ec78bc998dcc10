"""Helpers for the sandbox tests: hand-made JWTs, SSE parsing, a controllable clock and answerer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from kai_bridge.keys import KeyPair

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
APP_ID = "1180000000001"
PAT = "pat_sandbox_test_token"
ADMIN_TOKEN = "admin-secret-for-tests"


def make_jwt(
    pair: KeyPair,
    *,
    aud: str,
    iss: str = APP_ID,
    kid: str | None = None,
    iat: float | None = None,
    exp: float | None = None,
    jti: str | None = None,
    private_pem: bytes | None = None,
) -> str:
    """A JWT the way an SDK signs one, with every claim overridable to build bad ones."""
    now = int(time.time()) if iat is None else int(iat)
    claims: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "iat": now,
        "exp": now + 3600 if exp is None else int(exp),
        "jti": uuid.uuid4().hex if jti is None else jti,
    }
    return jwt.encode(
        claims,
        private_pem or pair.private_pem,
        algorithm="RS256",
        headers={"kid": kid or pair.kid, "typ": "JWT"},
    )


def token_body(duration: int | None = 900) -> dict[str, Any]:
    body: dict[str, Any] = {"grant_type": JWT_GRANT, "scope": None}
    if duration is not None:
        body["duration_seconds"] = duration
    return body


@dataclass(frozen=True)
class Frame:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(raw: bytes) -> list[Frame]:
    """Strictly parse Coze chat SSE: every block is exactly ``event:`` then ``data:``."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n") or text == "", f"stream does not end with a blank line: {text[-40:]!r}"
    frames: list[Frame] = []
    for block in text.split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert len(lines) == 2, f"an event must be exactly two lines, got {lines!r}"
        assert lines[0].startswith("event:"), lines[0]
        assert lines[1].startswith("data:"), lines[1]
        frames.append(Frame(lines[0][len("event:") :], lines[1][len("data:") :]))
    return frames


class FakeClock:
    """A settable wall clock (seconds since the epoch) for expiring tokens without waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class GateAnswerer:
    """Answers only once released, so a test can hold a chat in ``in_progress`` deterministically."""

    name = "gate"

    def __init__(self, answer: str = "Gated answer about espresso.") -> None:
        self.answer = answer
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, question: str) -> str:
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("the test never released the gate")
        return self.answer


class FailingAnswerer:
    name = "failing"

    def __call__(self, question: str) -> str:
        raise RuntimeError("the answer backend is down")
