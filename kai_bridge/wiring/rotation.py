"""Credential rotation without a restart: the Coze credential of re-read settings, put into the running one.

``kai-bridge serve`` and ``stdio`` re-read their settings on SIGHUP (the TOML file named by
``--config`` / ``KAI_BRIDGE_CONFIG``, the environment and the flags, with the usual precedence:
a value set in the environment stays what it was) and hand them to :func:`rotate_credential`.
Only the credential is taken over at run time:

- JWT OAuth: a new ``coze_kid`` with its ``coze_private_key_path`` (or ``coze_private_key``).
  The key must be readable and match the kid (the same checks as at start), and Coze must
  accept it: one token exchange signed with the new key (:meth:`JWTAuth.probe`) before the
  switch. Then :meth:`JWTAuth.rotate` signs every later JWT with it, while the token in hand,
  minted with the old kid, serves until its refresh ("drain").
- A personal access token: a new ``coze_pat``, checked with one ``GET /v1/users/me`` before it is used.

Anything refused (unreadable key, kid mismatch, a key Coze does not know, a switch between JWT
and PAT, another app id) raises :class:`~kai_bridge.errors.ConfigError` and changes nothing:
the credential in use stays. Other settings that changed are named (never their values): they
take effect on the next start.
"""

from __future__ import annotations

from typing import Final

from kai_bridge.config import Settings
from kai_bridge.coze import CozeClient, JWTAuth, PATAuth, RetryPolicy
from kai_bridge.errors import ConfigError, CozeAuthError, CozeError
from kai_bridge.keys import load_private_key

__all__ = ["CREDENTIAL_FIELDS", "changed_on_restart_only", "rotate_credential"]

#: The settings a reload applies at once; every other change waits for a restart.
CREDENTIAL_FIELDS: Final = frozenset({"coze_kid", "coze_private_key", "coze_private_key_path", "coze_pat"})


def changed_on_restart_only(current: Settings, fresh: Settings) -> list[str]:
    """Names of the settings that differ between ``current`` and ``fresh`` but are not reloaded."""
    return sorted(
        name for name in Settings.model_fields
        if name not in CREDENTIAL_FIELDS and getattr(current, name) != getattr(fresh, name)
    )


def _short(kid: str) -> str:
    return kid[:12] + "..."


async def rotate_credential(client: CozeClient, *, current: Settings, fresh: Settings) -> str:
    """Apply the credential of ``fresh`` to the running ``client``'s; returns what was done (for the log).

    ``current`` is the settings the process started with (what the credential was built from).
    Raises ConfigError, with what to do, when the new credential is refused.
    """
    if current.uses_sandbox:
        if not fresh.uses_sandbox:
            raise ConfigError("Coze credentials appeared in the settings, but this process started with the "
                              "embedded sandbox: restart it to connect to Coze")
        return "nothing to rotate: the embedded sandbox's key pair is generated for each run"
    if fresh.uses_sandbox:
        raise ConfigError("the settings no longer hold Coze credentials: the running credential stays until a "
                          "restart (which would use the embedded sandbox)")
    if fresh.auth_mode != current.auth_mode:
        raise ConfigError(f"the settings now describe a {fresh.auth_mode} credential instead of {current.auth_mode}: "
                          "switching between JWT OAuth and a personal access token needs a restart")
    if fresh.coze_api_base != current.coze_api_base:
        raise ConfigError("coze_api_base changed: connecting to another Coze needs a restart")
    auth = client.auth
    if isinstance(auth, JWTAuth):
        return await _rotate_jwt(auth, fresh)
    if isinstance(auth, PATAuth):
        return await _rotate_pat(client, auth, fresh)
    raise ConfigError(f"the running credential ({auth.mode}) cannot be rotated")


async def _rotate_jwt(auth: JWTAuth, fresh: Settings) -> str:
    if fresh.coze_app_id != auth.app_id:
        raise ConfigError("coze_app_id changed: another OAuth app needs a restart (a rotation keeps the app, "
                          "and changes coze_kid and its private key)")
    kid = fresh.coze_kid or ""
    if kid == auth.kid:
        fresh.validate_runtime()  # the file may have been replaced by another key under the same kid
        return f"Coze JWT key unchanged (kid {_short(kid)})"
    fresh.validate_runtime()  # readable, parseable, matching the kid: ConfigError otherwise
    source = "coze_private_key" if fresh.coze_private_key is not None else str(fresh.coze_private_key_path)
    key = load_private_key(fresh.private_key_pem(), source=source)
    try:
        await auth.probe(kid=kid, private_key=key)
    except CozeAuthError as exc:
        raise ConfigError(
            f"Coze refused a token for the new key (kid {_short(kid)}): {exc}. Add its public key to the OAuth "
            "app in the Coze console first (keep the old one until every replica has switched)"
        ) from None
    except CozeError as exc:
        raise ConfigError(f"could not check the new key (kid {_short(kid)}) with Coze: {exc}; send SIGHUP "
                          "again once Coze answers") from None
    previous = auth.kid
    auth.rotate(kid=kid, private_key=key)
    left = auth.seconds_left()
    drain = "" if left is None else f"; the token from the old key serves until its refresh (at most {left:.0f} s)"
    return f"Coze JWT key rotated: kid {_short(previous)} -> {_short(kid)}{drain}"


async def _rotate_pat(client: CozeClient, auth: PATAuth, fresh: Settings) -> str:
    if fresh.coze_pat is None:  # auth_mode is "pat", so it is set; said plainly for the type checker
        raise ConfigError("coze_pat is empty")
    token = fresh.coze_pat.get_secret_value()
    if auth.holds(token):
        return "Coze personal access token unchanged"
    # One request with the new token, on the running pool, before anything else sends it.
    checker = CozeClient(http=client.http, base_url=client.base_url, auth=PATAuth(token=token),
                         retry=RetryPolicy(max_retries=0))
    try:
        await checker.get_me()
    except CozeAuthError as exc:
        raise ConfigError(f"Coze refused the new personal access token: {exc}. Check coze_pat and its "
                          "permissions in the Coze console") from None
    except CozeError as exc:
        raise ConfigError(f"could not check the new personal access token with Coze: {exc}; send SIGHUP "
                          "again once Coze answers") from None
    auth.rotate(token=token)
    return "Coze personal access token replaced: the next request sends the new one"
