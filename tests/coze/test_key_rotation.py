"""Key rotation without a restart: a new key pair beside the old one, switched to while tokens drain.

Against the sandbox with both public keys registered under one app (as the Coze console holds
them during a rotation); the sandbox records which kid signed each JWT it exchanged, so the
tests see the switch from Coze's side. Clocks are injected: a token's life passes in a line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from kai_bridge.cmd.reload import reload_once
from kai_bridge.config import Settings, load_settings
from kai_bridge.coze.auth import PATAuth
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.errors import ConfigError, CozeAuthError
from kai_bridge.keys import KeyPair, generate_key_pair, load_private_key
from kai_bridge.wiring.rotation import changed_on_restart_only, rotate_credential
from tests.coze.conftest import APP_ID, Rig, RigFactory

_NEW: KeyPair | None = None
_STRANGER: KeyPair | None = None


def new_pair() -> KeyPair:
    """The key pair rotated to (generated at test time, once)."""
    global _NEW
    if _NEW is None:
        _NEW = generate_key_pair()
    return _NEW


def stranger_pair() -> KeyPair:
    """A key pair Coze (the sandbox) has never heard of."""
    global _STRANGER
    if _STRANGER is None:
        _STRANGER = generate_key_pair()
    return _STRANGER


def key(pair: KeyPair) -> Any:
    return load_private_key(pair.private_pem, source="test key")


async def test_after_a_rotation_the_token_in_hand_serves_until_its_refresh_then_the_new_key_signs(
    make_rig: RigFactory, key_pair: KeyPair
) -> None:
    rig = await make_rig(also_registered=(new_pair(),), ttl=900, refresh_margin=120)
    first = await rig.auth.get_token()
    assert rig.state.last_token_kid == key_pair.kid

    assert rig.auth.rotate(kid=new_pair().kid, private_key=key(new_pair())) is True
    assert rig.auth.kid == new_pair().kid
    assert rig.auth.draining  # the token in hand is the old key's
    rig.mono.advance(700)
    rig.wall.advance(700)
    assert await rig.auth.get_token() == first  # drained, not dropped: no exchange at the switch
    assert rig.state.token_exchanges == 1
    rig.mono.advance(100)  # inside the refresh margin
    rig.wall.advance(100)
    second = await rig.auth.get_token()

    assert second != first
    assert rig.state.token_kids == {key_pair.kid: 1, new_pair().kid: 1}
    assert rig.state.last_token_kid == new_pair().kid
    assert not rig.auth.draining
    diagnostics = rig.auth.diagnostics()
    assert diagnostics["key_rotations"] == 1
    assert diagnostics["previous_kid"] == key_pair.kid[:12] + "..."
    assert diagnostics["token_kid"] == new_pair().kid[:12] + "..."
    assert new_pair().private_pem.decode() not in repr(diagnostics)


async def test_a_token_coze_refuses_after_a_rotation_is_replaced_with_one_from_the_new_key(
    make_rig: RigFactory
) -> None:
    rig = await make_rig(also_registered=(new_pair(),), ttl=900)
    await rig.client.list_bots(workspace_id=rig.workspace_id)
    rig.auth.rotate(kid=new_pair().kid, private_key=key(new_pair()))
    rig.wall.advance(901)  # expired on Coze's side while the client still holds it: 4100, one re-mint

    await rig.client.list_bots(workspace_id=rig.workspace_id)

    assert rig.state.last_token_kid == new_pair().kid
    assert rig.client.counters["reauths"] == 1


async def test_rotating_to_the_current_kid_changes_nothing(make_rig: RigFactory, key_pair: KeyPair) -> None:
    rig = await make_rig()
    first = await rig.auth.get_token()

    assert rig.auth.rotate(kid=key_pair.kid, private_key=key(key_pair)) is False

    assert rig.auth.diagnostics()["key_rotations"] == 0
    assert await rig.auth.get_token() == first


async def test_a_probe_asks_coze_about_a_key_without_touching_the_one_in_use(
    make_rig: RigFactory, key_pair: KeyPair
) -> None:
    rig = await make_rig(also_registered=(new_pair(),))
    first = await rig.auth.get_token()

    await rig.auth.probe(kid=new_pair().kid, private_key=key(new_pair()))
    with pytest.raises(CozeAuthError, match="kid not been registred"):
        await rig.auth.probe(kid=stranger_pair().kid, private_key=key(stranger_pair()))

    assert rig.auth.kid == key_pair.kid
    assert await rig.auth.get_token() == first
    assert (rig.auth.exchange_count, rig.auth.exchange_attempts) == (1, 1)  # probes are not the provider's
    assert rig.state.token_kids[new_pair().kid] == 1


def test_a_jwt_is_signed_with_both_parts_of_a_candidate_key_or_neither(key_pair: KeyPair) -> None:
    from kai_bridge.coze.auth import JWTAuth

    auth = JWTAuth(http=None, base_url="https://api.coze.cn", app_id=APP_ID, kid=key_pair.kid,  # type: ignore[arg-type]
                   private_key=key(key_pair))
    with pytest.raises(ValueError, match="both kid and private_key"):
        auth.sign_jwt(kid=new_pair().kid)


def test_a_pat_is_replaced_at_once_and_compared_in_constant_time() -> None:
    auth = PATAuth(token="pat_old_" + "a" * 24)

    assert auth.rotate(token="pat_old_" + "a" * 24) is False
    assert auth.rotate(token="pat_new_" + "b" * 24) is True
    assert auth.holds("pat_new_" + "b" * 24)
    assert auth.diagnostics() == {"mode": "pat", "rotations": 1}
    with pytest.raises(ConfigError, match="empty"):
        auth.rotate(token="")


# ---- from the settings (the wiring), as SIGHUP applies them -------------------------------------------------


def key_file(folder: Path, pair: KeyPair) -> Path:
    path = folder / f"{pair.kid[:8]}.pem"
    path.write_bytes(pair.private_pem)
    return path


def jwt_settings(rig: Rig, *, kid: str, key_path: Path, **extra: Any) -> Settings:
    values = {"coze_api_base": rig.base_url, "coze_app_id": APP_ID, "coze_kid": kid,
              "coze_private_key_path": key_path, **extra}
    return load_settings(environ={}, overrides=values, check_files=False)


@pytest.fixture
async def jwt_rig(make_rig: RigFactory) -> Rig:
    return await make_rig(also_registered=(new_pair(),))


async def test_settings_with_a_new_registered_key_rotate_the_running_credential(
    jwt_rig: Rig, tmp_path: Path, key_pair: KeyPair
) -> None:
    current = jwt_settings(jwt_rig, kid=key_pair.kid, key_path=key_file(tmp_path, key_pair))
    fresh = jwt_settings(jwt_rig, kid=new_pair().kid, key_path=key_file(tmp_path, new_pair()))
    await jwt_rig.auth.get_token()

    done = await rotate_credential(jwt_rig.client, current=current, fresh=fresh)

    assert done.startswith(f"Coze JWT key rotated: kid {key_pair.kid[:12]}... -> {new_pair().kid[:12]}...")
    assert "serves until its refresh" in done
    assert jwt_rig.auth.kid == new_pair().kid
    assert jwt_rig.state.last_token_kid == new_pair().kid  # Coze was asked about the new key first
    assert await rotate_credential(jwt_rig.client, current=current, fresh=fresh) == (
        f"Coze JWT key unchanged (kid {new_pair().kid[:12]}...)")


@pytest.mark.parametrize(
    ("make_fresh", "refusal"),
    [
        pytest.param(lambda rig, folder: jwt_settings(rig, kid=new_pair().kid, key_path=folder / "missing.pem"),
                     "cannot read", id="unreadable-key"),
        pytest.param(lambda rig, folder: jwt_settings(rig, kid=new_pair().kid,
                                                      key_path=key_file(folder, stranger_pair())),
                     "coze_kid does not match the private key", id="kid-mismatch"),
        pytest.param(lambda rig, folder: jwt_settings(rig, kid=stranger_pair().kid,
                                                      key_path=key_file(folder, stranger_pair())),
                     "Coze refused a token for the new key", id="key-unknown-to-coze"),
        pytest.param(lambda rig, folder: jwt_settings(rig, kid=new_pair().kid, key_path=key_file(folder, new_pair()),
                                                      coze_app_id="7400000000000000999"),
                     "coze_app_id changed", id="other-app"),
        pytest.param(lambda rig, folder: load_settings(environ={}, overrides={
            "coze_api_base": rig.base_url, "coze_pat": "pat_" + "c" * 24}, check_files=False),
                     "switching between JWT OAuth and a personal access token needs a restart", id="jwt-to-pat"),
        pytest.param(lambda rig, folder: jwt_settings(rig, kid=new_pair().kid, key_path=key_file(folder, new_pair()),
                                                      coze_api_base="https://api.coze.com"),
                     "coze_api_base changed", id="other-coze"),
        pytest.param(lambda rig, folder: load_settings(environ={}, check_files=False),
                     "no longer hold Coze credentials", id="credentials-removed"),
    ],
)
async def test_a_new_credential_that_cannot_work_is_refused_and_the_one_in_use_stays(
    jwt_rig: Rig, tmp_path: Path, key_pair: KeyPair, make_fresh: Any, refusal: str
) -> None:
    current = jwt_settings(jwt_rig, kid=key_pair.kid, key_path=key_file(tmp_path, key_pair))
    token = await jwt_rig.auth.get_token()
    fresh = make_fresh(jwt_rig, tmp_path)

    with pytest.raises(ConfigError, match=refusal) as refused:
        await rotate_credential(jwt_rig.client, current=current, fresh=fresh)

    assert jwt_rig.auth.kid == key_pair.kid
    assert await jwt_rig.auth.get_token() == token
    assert "PRIVATE KEY" not in str(refused.value)


async def test_the_embedded_sandbox_has_nothing_to_rotate(jwt_rig: Rig) -> None:
    sandbox = load_settings(environ={}, check_files=False)
    assert "nothing to rotate" in await rotate_credential(jwt_rig.client, current=sandbox, fresh=sandbox)


async def test_a_new_pat_is_checked_with_coze_before_it_replaces_the_old_one(make_rig: RigFactory) -> None:
    old, new, unknown = "pat_" + "a" * 24, "pat_" + "b" * 24, "pat_" + "c" * 24
    rig = await make_rig(pats=[old, new])
    client = CozeClient(http=rig.http, base_url=rig.base_url, auth=PATAuth(token=old), retry=RetryPolicy(max_retries=0))
    settings = {token: load_settings(environ={}, overrides={"coze_api_base": rig.base_url, "coze_pat": token},
                                     check_files=False) for token in (old, new, unknown)}

    with pytest.raises(ConfigError, match="Coze refused the new personal access token"):
        await rotate_credential(client, current=settings[old], fresh=settings[unknown])
    assert client.auth.diagnostics()["rotations"] == 0
    done = await rotate_credential(client, current=settings[old], fresh=settings[new])

    assert done == "Coze personal access token replaced: the next request sends the new one"
    assert isinstance(client.auth, PATAuth)
    assert client.auth.holds(new)
    assert unknown not in done
    assert new not in done


def test_only_the_credential_is_taken_over_the_rest_waits_for_a_restart(tmp_path: Path, key_pair: KeyPair) -> None:
    base = {"coze_api_base": "https://api.coze.cn", "coze_app_id": APP_ID, "coze_kid": key_pair.kid,
            "coze_private_key_path": tmp_path / "a.pem"}
    current = load_settings(environ={}, overrides=base, check_files=False)
    fresh = load_settings(environ={}, overrides={**base, "coze_kid": new_pair().kid, "tool_timeout": 5,
                                                 "mcp_auth_token": "t" * 32}, check_files=False)

    assert changed_on_restart_only(current, fresh) == ["mcp_auth_token", "tool_timeout"]


async def test_a_reload_that_cannot_be_read_or_applied_is_an_error_in_the_log_and_changes_nothing(
    jwt_rig: Rig, tmp_path: Path, key_pair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    current = jwt_settings(jwt_rig, kid=key_pair.kid, key_path=key_file(tmp_path, key_pair))

    def broken() -> Settings:
        raise ConfigError(f"config file {tmp_path / 'kai-bridge.toml'} is not valid TOML: line 3")

    caplog.set_level(logging.INFO, logger="kai_bridge.cmd.reload")
    assert await reload_once(jwt_rig.client, current=current, load=broken) is False
    mismatch = jwt_settings(jwt_rig, kid=new_pair().kid, key_path=key_file(tmp_path, stranger_pair()))
    assert await reload_once(jwt_rig.client, current=current, load=lambda: mismatch) is False
    good = jwt_settings(jwt_rig, kid=new_pair().kid, key_path=key_file(tmp_path, new_pair()), tool_timeout=7)
    assert await reload_once(jwt_rig.client, current=current, load=lambda: good) is True

    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "kai_bridge.cmd.reload"]
    assert [level for level, _ in records] == ["ERROR", "ERROR", "INFO", "WARNING"]
    assert "not valid TOML" in records[0][1]
    assert "stays" in records[0][1]
    assert "coze_kid does not match" in records[1][1]
    assert "Coze JWT key rotated" in records[2][1]
    assert records[3][1] == "SIGHUP: changed settings that apply only after a restart: tool_timeout"
    assert jwt_rig.auth.kid == new_pair().kid
