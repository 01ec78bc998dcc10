"""``kai-bridge token``: the seed guide's step 3 (JWT → access token → validation).

Prints an access token (to stdout: handing it over is the command's purpose) and its expiry
(to stderr, or both as JSON with ``--json``). ``--validate [TOKEN]`` checks a given token,
or a freshly fetched one, with a cheap authenticated call (read the configured bot, else the
workspace's bots, else ``/v1/users/me``) and says valid or invalid with the reason; the exit code is 0 for valid, 1 otherwise. The token never goes to the logs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from kai_bridge.errors import CozeAPIError, CozeAuthError, CozeError

if TYPE_CHECKING:
    from kai_bridge.wiring import CozeSession

__all__ = ["HELP", "add_arguments", "run"]

HELP = "get a Coze access token (JWT OAuth exchange), or check one with --validate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validate",
        nargs="?",
        const="",
        default=None,
        metavar="TOKEN",
        help="check TOKEN (or a freshly fetched token) with a cheap authenticated call; exit 0 valid, 1 invalid",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


async def _fetch(session: CozeSession) -> dict[str, Any]:
    from kai_bridge.coze.auth import JWTAuth

    auth = session.client.auth
    if isinstance(auth, JWTAuth):
        token = await auth.refresh()
        left = auth.seconds_left() or 0.0
        return {
            "mode": "jwt",
            "access_token": token,
            "expires_at": int(time.time() + left),
            "expires_in_seconds": int(left),
        }
    return {"mode": auth.mode, "access_token": await auth.get_token(), "expires_at": None, "expires_in_seconds": None}


async def _check(session: CozeSession, token: str) -> tuple[bool, str]:
    """Use ``token`` (and only it) for one cheap call. Returns (valid, reason).

    The call reads the configured bot, else the workspace's bots, else ``/v1/users/me`` (who
    the token belongs to), so a token can be checked with no bot or workspace configured.
    """
    from kai_bridge.coze.auth import PATAuth
    from kai_bridge.coze.client import CozeClient

    probe = CozeClient(
        http=session.client.http,
        base_url=session.client.base_url,
        auth=PATAuth(token=token),
        bot_id=session.bot_id,
        workspace_id=session.workspace_id,
    )
    try:
        if session.bot_id is not None or session.workspace_id is not None:
            await probe.ping()
            what = f"read bot {session.bot_id}" if session.bot_id else f"read workspace {session.workspace_id}"
        else:
            user = await probe.get_me()
            name = user.nick_name or user.user_name or "?"
            what = f"read the token's user with /v1/users/me: {name} (user_id {user.user_id})"
    except CozeAuthError as exc:
        reason = str(exc)
        if session.bot_id is None and session.workspace_id is None and exc.code == 4101:
            reason += (
                "; if this token should work, it may lack the permission to read its user: "
                "set coze_bot_id to check it with a bot read instead"
            )
        return False, reason
    except CozeAPIError as exc:
        # Coze accepted the token (no auth error) but refused the call for another reason.
        return True, f"the token was accepted (the probe call itself answered: {exc})"
    return True, f"an authenticated call succeeded ({what})"


async def _validate(session: CozeSession, given: str | None) -> tuple[bool, str]:
    token = given
    if token is None:
        try:
            token = str((await _fetch(session))["access_token"])
        except CozeError as exc:
            return False, f"could not get a token: {exc}"
    try:
        return await _check(session, token)
    except CozeError as exc:
        return False, f"could not check the token: {exc}"


async def _run(args: argparse.Namespace) -> int:
    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.wiring import open_coze_session

    settings = settings_from_args(args)
    async with open_coze_session(settings, announce=_stderr) as session:
        if session.sandbox_url is not None and args.validate is None:
            _stderr("note: this token belongs to the in-process sandbox, which stops when this command exits")
        if args.validate is None:
            info = await _fetch(session)
            if args.json:
                print(json.dumps({**info, "base_url": session.client.base_url}))
            else:
                print(info["access_token"])
                if info["expires_at"] is not None:
                    expiry = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(info["expires_at"]))
                    _stderr(f"expires in {info['expires_in_seconds']}s (at {expiry})")
                else:
                    _stderr("a personal access token is configured: it is used as is, no exchange happens")
            return 0
        valid, reason = await _validate(session, args.validate or None)
        if args.json:
            print(json.dumps({"valid": valid, "reason": reason, "base_url": session.client.base_url}))
        else:
            print(f"{'valid' if valid else 'invalid'}: {reason}")
        return 0 if valid else 1


def run(args: argparse.Namespace) -> int:
    import anyio

    return anyio.run(_run, args)
