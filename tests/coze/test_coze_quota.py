"""The outgoing Coze quota: calls queue briefly for a slot, then fail unsent instead of drawing Coze's 4013."""

from __future__ import annotations

import anyio
import pytest

from kai_bridge.config import load_settings
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.quota import RequestQuota
from kai_bridge.errors import CozeQuotaError
from kai_bridge.wiring.coze import client_from_settings
from tests.coze.conftest import RigFactory


async def test_a_burst_is_admitted_then_the_next_call_fails_after_the_wait() -> None:
    quota = RequestQuota(per_second=0.001, burst=2, max_wait=0.05)
    with anyio.fail_after(5):
        await quota.acquire()
        await quota.acquire()
        with pytest.raises(CozeQuotaError) as refused:
            await quota.acquire()
    assert "0.001 requests/s, bursts of 2" in str(refused.value)
    assert "not sent" in str(refused.value)
    assert refused.value.retry_after == pytest.approx(1000.0)
    assert quota.snapshot()["refused"] == 1


async def test_calls_over_the_rate_wait_in_line_and_all_go_through() -> None:
    quota = RequestQuota(per_second=50, burst=1, max_wait=5)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(quota.acquire)
    assert quota.snapshot()["waited"] == 2
    assert quota.snapshot()["refused"] == 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        pytest.param({"per_second": 0}, "per_second", id="no-rate"),
        pytest.param({"per_second": 1, "burst": 0}, "burst", id="no-burst"),
        pytest.param({"per_second": 1, "max_wait": -1}, "max_wait", id="negative-wait"),
    ],
)
def test_a_quota_that_cannot_work_is_refused(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RequestQuota(**kwargs)  # type: ignore[arg-type]


def test_no_quota_is_built_when_none_is_configured() -> None:
    assert RequestQuota.configured(per_second=0, burst=None, max_wait=2) is None
    assert RequestQuota.configured(per_second=2.5, burst=None, max_wait=2) is not None


async def test_a_client_over_its_quota_sends_nothing_to_coze(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = CozeClient(http=rig.http, base_url=rig.base_url, auth=rig.auth, bot_id=rig.bot_id,
                        quota=RequestQuota(per_second=0.001, burst=2, max_wait=0))
    await client.create_conversation(bot_id=rig.bot_id)
    await client.create_conversation(bot_id=rig.bot_id)
    before = rig.state.requests_total
    with pytest.raises(CozeQuotaError):
        await client.create_conversation(bot_id=rig.bot_id)
    assert rig.state.requests_total == before  # the third call never reached the sandbox
    assert client.breaker.snapshot()["consecutive_failures"] == 0  # our own refusal is no Coze failure


async def test_the_wiring_gives_the_client_the_quota_of_the_settings(make_rig: RigFactory) -> None:
    rig = await make_rig()
    settings = load_settings(environ={"KAI_BRIDGE_COZE_QUOTA_PER_SECOND": "0.001", "KAI_BRIDGE_COZE_QUOTA_BURST": "1",
                                      "KAI_BRIDGE_COZE_QUOTA_MAX_WAIT": "0"}, check_files=False)
    client = client_from_settings(settings, http=rig.http, base_url=rig.base_url, auth=rig.auth)
    await client.create_conversation(bot_id=rig.bot_id)
    with pytest.raises(CozeQuotaError):
        await client.create_conversation(bot_id=rig.bot_id)
