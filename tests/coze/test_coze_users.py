"""``get_me`` (``GET /v1/users/me``) and the ``ping`` that uses it when no bot or workspace is set."""

from __future__ import annotations

import re

import pytest

from kai_bridge.coze.auth import PATAuth
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.models import User
from kai_bridge.errors import CozeAuthError

from .conftest import Rig


def bare_client(rig: Rig, *, auth: PATAuth | None = None) -> CozeClient:
    """The rig's client without a bot or workspace id (as with credentials only)."""

    async def no_wait(seconds: float) -> None:
        rig.sleeps.append(seconds)
        rig.mono.advance(seconds)

    return CozeClient(http=rig.http, base_url=rig.base_url, auth=auth or rig.auth, poll_interval=0.01,
                      clock=rig.mono, sleep=no_wait, rand=lambda: 0.5)


async def test_get_me_returns_the_user_the_token_belongs_to(rig: Rig) -> None:
    first = await rig.client.get_me()
    second = await rig.client.get_me()
    assert isinstance(first, User)
    assert re.fullmatch(r"\d{19}", first.user_id)
    assert first == second
    assert first.user_name
    assert first.nick_name
    assert first.avatar_url
    assert rig.state.requests["users.me"] == 2
    assert rig.state.token_exchanges == 1


async def test_get_me_is_retried_on_server_errors_because_it_is_a_read(rig: Rig) -> None:
    await rig.add_fault(route="users.me", error_rate=1.0, times=2)
    user = await rig.client.get_me()
    assert user.user_id
    assert rig.state.requests["users.me"] == 3
    assert rig.sleeps == [0.1, 0.2]


async def test_get_me_with_a_refused_token_is_an_auth_error_with_the_logid(rig: Rig) -> None:
    client = bare_client(rig, auth=PATAuth(token="pat_this_sandbox_never_issued"))
    with pytest.raises(CozeAuthError) as info:
        await client.get_me()
    assert info.value.code == 4101
    assert info.value.logid
    assert "pat_this_sandbox_never_issued" not in str(info.value)


async def test_ping_without_bot_or_workspace_asks_who_the_token_belongs_to(rig: Rig) -> None:
    await bare_client(rig).ping()
    assert rig.state.requests["users.me"] == 1
    assert rig.state.requests["bots.retrieve"] == 0
    assert rig.state.requests["bots.list"] == 0


async def test_ping_without_bot_or_workspace_fails_for_a_token_coze_refuses(rig: Rig) -> None:
    # Fetching a token alone would not notice: a PAT is never checked before it is used.
    with pytest.raises(CozeAuthError):
        await bare_client(rig, auth=PATAuth(token="pat_this_sandbox_never_issued")).ping()


async def test_ping_with_a_bot_still_reads_the_bot(rig: Rig) -> None:
    await rig.client.ping()
    assert rig.state.requests["bots.retrieve"] == 1
    assert rig.state.requests["users.me"] == 0
