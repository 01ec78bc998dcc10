"""Who is calling the plugin face: the caller identity Coze puts in a plugin request's headers.

Coze's servers add ``X-Tt-Logid``, ``X-Aiplugin-Connector-Identifier`` (the ``user_id`` the API
caller gave Coze: the end user the bot serves), ``X-AIPlugin-Bot-ID``,
``X-AIPlugin-Conversation-ID``, ``X-AIPlugin-ID``, ``X-AIPlugin-Account-ID``, ``X-AIplugin-OpenID``
and ``X-AIPlugin-UID`` to every plugin call (docs.coze.cn plugin FAQ; Coze Studio sets the first
four). Header names are case-insensitive. Values are cleaned before anyone logs them: control
characters dropped, at most 128 characters kept. The location headers (``Longitude``,
``Latitude``) are deliberately not read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from kai_bridge.tools.registry import Caller, CozeCaller, Door

__all__ = ["COZE_HEADERS", "PLUGIN_DOOR", "caller_from_headers", "coze_user_key"]

PLUGIN_DOOR: Final = Door.PLUGIN
_MAX_VALUE: Final = 128

#: lower-cased header name -> CozeCaller field
COZE_HEADERS: Final[dict[bytes, str]] = {
    b"x-aiplugin-connector-identifier": "user_id",
    b"x-aiplugin-bot-id": "bot_id",
    b"x-aiplugin-conversation-id": "conversation_id",
    b"x-tt-logid": "logid",
    b"x-aiplugin-id": "plugin_id",
    b"x-aiplugin-account-id": "account_id",
    b"x-aiplugin-openid": "open_id",
    b"x-aiplugin-uid": "uid",
}
_COZE_ONLY: Final = frozenset(name for name in COZE_HEADERS if name.startswith(b"x-aiplugin-"))


def _clean(raw: bytes) -> str | None:
    text = raw.decode("latin-1")
    kept = "".join(ch for ch in text if ch.isprintable()).strip()
    return kept[:_MAX_VALUE] or None


def coze_user_key(user_id: str) -> str:
    """The caller id of a Coze end user: conversations and rate limits are kept per this key."""
    return f"coze-user:{user_id}"


def caller_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> Caller:
    """The caller of a plugin request: a Coze caller when any ``X-AIPlugin-*`` header is present."""
    found: dict[str, str] = {}
    coze = False
    for name, value in headers:
        field = COZE_HEADERS.get(name)
        if field is None:
            continue
        coze = coze or name in _COZE_ONLY
        cleaned = _clean(value)
        if cleaned is not None:
            found[field] = cleaned
    if not coze:
        return Caller(door=PLUGIN_DOOR)
    info = CozeCaller(**found)
    return Caller(door=PLUGIN_DOOR, id=coze_user_key(info.user_id) if info.user_id else None, coze=info)
