"""JWT OAuth: the JWT's shape, one exchange for any crowd, early refresh, and one re-auth on 401."""

from __future__ import annotations

import asyncio
import re

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from kai_bridge.coze.auth import JWTAuth, PATAuth
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.models import ChatRequest, EnterMessage
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.errors import CozeAuthError
from kai_bridge.keys import KeyPair, generate_key_pair, load_private_key

from .conftest import APP_ID, RigFactory


def signer(key_pair: KeyPair, **kwargs: object) -> JWTAuth:
    http = httpx.AsyncClient()
    defaults: dict[str, object] = {"base_url": "https://api.coze.cn", "app_id": APP_ID, "kid": key_pair.kid}
    defaults.update(kwargs)
    return JWTAuth(http=http, private_key=load_private_key(key_pair.private_pem, source="t"),
                   **defaults)  # type: ignore[arg-type]


def test_jwt_has_the_header_and_claims_coze_expects(key_pair: KeyPair) -> None:
    auth = signer(key_pair, wall_clock=lambda: 1_700_000_000.4)
    token = auth.sign_jwt()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": key_pair.kid, "typ": "JWT"}
    public = serialization.load_pem_public_key(key_pair.public_pem)
    claims = jwt.decode(token, public, algorithms=["RS256"], audience="api.coze.cn",  # type: ignore[arg-type]
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == APP_ID
    assert claims["aud"] == "api.coze.cn"
    assert claims["iat"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_600
    assert re.fullmatch(r"[0-9a-f]{64}", claims["jti"])
    assert "session_name" not in claims


def test_every_jwt_has_a_fresh_jti_and_the_optional_session_name(key_pair: KeyPair) -> None:
    auth = signer(key_pair, session_name="user-42", base_url="http://127.0.0.1:8123")
    claims = [jwt.decode(auth.sign_jwt(), options={"verify_signature": False}) for _ in range(50)]
    assert len({c["jti"] for c in claims}) == 50
    assert {c["session_name"] for c in claims} == {"user-42"}
    assert {c["aud"] for c in claims} == {"127.0.0.1:8123"}


def test_configured_audience_wins_over_the_host(key_pair: KeyPair) -> None:
    auth = signer(key_pair, aud="api.coze.com")
    assert jwt.decode(auth.sign_jwt(), options={"verify_signature": False})["aud"] == "api.coze.com"


@pytest.mark.parametrize("transport", ["asgi", "socket"])
async def test_500_concurrent_first_calls_make_exactly_one_token_exchange(
    make_rig: RigFactory, transport: str
) -> None:
    rig = await make_rig(transport=transport)
    bots = await asyncio.gather(*(rig.client.retrieve_bot(bot_id=rig.bot_id) for _ in range(500)))
    assert {b.id for b in bots} == {rig.bot_id}
    assert rig.state.token_exchanges == 1
    assert rig.auth.exchange_attempts == 1
    assert rig.auth.exchange_count == 1


async def test_a_failed_exchange_reaches_every_waiter_and_the_next_caller_tries_again(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(registered=generate_key_pair())  # the sandbox knows another key
    results = await asyncio.gather(*(rig.auth.get_token() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, CozeAuthError) for r in results)
    assert rig.auth.exchange_attempts == 1
    assert "kid not been registred" in str(results[0])
    assert "a coze.cn app fails on api.coze.com and vice versa" in str(results[0])
    with pytest.raises(CozeAuthError):
        await rig.auth.get_token()
    assert rig.auth.exchange_attempts == 2


async def test_token_is_cached_then_refreshed_once_inside_the_margin(make_rig: RigFactory) -> None:
    rig = await make_rig(ttl=900, refresh_margin=120)
    first = await rig.auth.get_token()
    rig.mono.advance(779)
    rig.wall.advance(779)
    assert await rig.auth.get_token() == first
    assert rig.state.token_exchanges == 1
    rig.mono.advance(2)  # 781 s: inside the 120 s margin before expiry
    rig.wall.advance(2)
    tokens = await asyncio.gather(*(rig.auth.get_token() for _ in range(20)))
    assert set(tokens) != {first}
    assert len(set(tokens)) == 1
    assert rig.state.token_exchanges == 2


async def test_an_expired_token_is_never_served(make_rig: RigFactory) -> None:
    rig = await make_rig(ttl=900, refresh_margin=0)
    first = await rig.auth.get_token()
    rig.mono.advance(900)
    rig.wall.advance(900)
    assert await rig.auth.get_token() != first
    assert rig.state.token_exchanges == 2


async def test_margin_never_exceeds_half_a_short_token_life(make_rig: RigFactory) -> None:
    rig = await make_rig(ttl=60, refresh_margin=120)
    first = await rig.auth.get_token()
    rig.mono.advance(29)
    assert await rig.auth.get_token() == first
    rig.mono.advance(2)
    assert await rig.auth.get_token() != first


async def test_a_failed_early_refresh_keeps_using_the_still_valid_token(make_rig: RigFactory) -> None:
    rig = await make_rig(ttl=900, refresh_margin=120)
    first = await rig.auth.get_token()
    await rig.add_fault(route="oauth.token", error_rate=1.0)
    rig.mono.advance(800)
    rig.wall.advance(800)
    assert await rig.auth.get_token() == first  # refresh failed (after retries); old token still good
    assert rig.auth.exchange_attempts == 1 + 4
    rig.mono.advance(100)  # now past expiry: the failure must surface
    rig.wall.advance(100)
    with pytest.raises(Exception, match="Coze token exchange"):
        await rig.auth.get_token()


async def test_token_exchange_is_retried_with_a_new_jwt_each_time(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.add_fault(route="oauth.token", error_rate=1.0, times=2)
    await rig.auth.get_token()
    assert rig.auth.exchange_attempts == 3
    assert rig.state.token_exchanges == 1  # the sandbox saw no reused jti (it would refuse it)
    assert len(rig.sleeps) == 2


async def test_a_token_expired_upstream_is_replaced_once_and_the_call_succeeds(make_rig: RigFactory) -> None:
    rig = await make_rig(ttl=900)
    old = await rig.auth.get_token()
    rig.wall.advance(1000)  # the sandbox's clock: the token is expired there, our cache does not know
    bot = await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert bot.id == rig.bot_id
    assert rig.client.counters["reauths"] == 1
    assert rig.state.token_exchanges == 2
    assert await rig.auth.get_token() != old


async def test_stream_requests_also_recover_from_an_expired_token(make_rig: RigFactory) -> None:
    rig = await make_rig(ttl=900)
    await rig.auth.get_token()
    rig.wall.advance(1000)
    result = await rig.client.stream_and_collect(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=[EnterMessage.user("espresso?")]))
    assert result.chat.id
    assert rig.client.counters["reauths"] == 1


async def test_a_refused_pat_is_not_retried(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = CozeClient(http=rig.http, base_url=rig.base_url, auth=PATAuth(token="pat_not_a_real_token_0000"),
                        retry=RetryPolicy(max_retries=3))
    with pytest.raises(CozeAuthError) as info:
        await client.retrieve_bot(bot_id=rig.bot_id)
    assert info.value.code == 4101
    assert rig.state.requests["bots.retrieve"] == 1


async def test_a_pat_configured_in_the_sandbox_works(make_rig: RigFactory) -> None:
    rig = await make_rig(pats=["pat_sandbox_token_123456"])
    client = CozeClient(http=rig.http, base_url=rig.base_url, auth=PATAuth(token="pat_sandbox_token_123456"))
    assert (await client.retrieve_bot(bot_id=rig.bot_id)).id == rig.bot_id
    assert client.diagnostics()["auth"] == {"mode": "pat", "rotations": 0}


@pytest.mark.parametrize("transport", ["asgi", "socket"])
async def test_reauth_happens_at_most_once_per_call(make_rig: RigFactory, transport: str) -> None:
    rig = await make_rig(transport=transport, ttl=1)
    rig.wall.step = 2.0  # every 1 s token is expired by the time the sandbox checks it
    with pytest.raises(CozeAuthError) as info:
        await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert info.value.code == 4100
    assert rig.client.counters["reauths"] == 1
