"""No token, JWT, PAT or private key ever reaches a log record, an error message or a repr."""

from __future__ import annotations

import json
import logging
import re
import secrets

import pytest

from kai_bridge.coze.auth import PATAuth
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.models import ChatRequest, EnterMessage
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.errors import KaiBridgeError
from kai_bridge.keys import KeyPair, generate_key_pair

from .conftest import RigFactory

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")


def key_lines(pair: KeyPair) -> list[str]:
    body = pair.private_pem.decode().splitlines()[1:-1]
    return [line for line in body if len(line) > 20]


async def test_a_full_jwt_session_with_failures_logs_no_secret(
    make_rig: RigFactory, key_pair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig = await make_rig(transport="socket")
    tokens: list[str] = []
    errors: list[str] = []

    tokens.append(await rig.auth.get_token())
    await rig.client.stream_and_collect(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=[EnterMessage.user("espresso?")]))
    rig.wall.advance(1000)  # expired upstream: one re-auth
    await rig.client.retrieve_bot(bot_id=rig.bot_id)
    tokens.append(await rig.auth.get_token())
    await rig.add_fault(route="oauth.token", error_rate=1.0)
    rig.mono.advance(10_000)
    rig.wall.advance(10_000)
    with pytest.raises(KaiBridgeError) as failed_exchange:
        await rig.client.retrieve_bot(bot_id=rig.bot_id)
    errors.append(str(failed_exchange.value))
    await rig.clear_faults()
    tokens.append(await rig.auth.get_token())

    pat = "pat_" + secrets.token_hex(20)  # made at test time, never a literal token
    pat_client = CozeClient(http=rig.http, base_url=rig.base_url, auth=PATAuth(token=pat),
                            retry=RetryPolicy.none())
    with pytest.raises(KaiBridgeError) as refused:
        await pat_client.retrieve_bot(bot_id=rig.bot_id)
    errors.append(str(refused.value))

    surfaces = [
        caplog.text,
        *(r.getMessage() for r in caplog.records),
        *errors,
        repr(rig.auth),
        repr(rig.client),
        repr(pat_client.auth),
        json.dumps(rig.client.diagnostics()),
        json.dumps(pat_client.diagnostics()),
    ]
    text = "\n".join(surfaces)
    assert len(set(tokens)) == 3
    for secret in [*tokens, pat, *key_lines(key_pair)]:
        assert secret not in text
    assert not JWT_SHAPE.search(text)
    assert rig.client.counters["reauths"] == 1  # the session did exercise the re-auth path


async def test_wrong_key_error_names_the_problem_not_the_jwt(make_rig: RigFactory) -> None:
    rig = await make_rig(registered=generate_key_pair())
    with pytest.raises(KaiBridgeError) as info:
        await rig.client.retrieve_bot(bot_id=rig.bot_id)
    message = str(info.value)
    assert "kid not been registred" in message
    assert not JWT_SHAPE.search(message)
    assert "Bearer" not in message
