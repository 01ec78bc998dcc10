"""URL helpers shared by config, logs, the store and the HTTP doors: redaction and host/origin parsing.

Redaction: a URL is shown (logs, errors, /diagnostics, ``doctor``) only through
:func:`redact_url` (one URL) or :func:`redact_urls` (every URL inside a text). Both mask what
can carry a credential: the password of the userinfo (or the whole userinfo when it is a
lone name, which is often a token: ``https://TOKEN@host``), every query value and the
fragment. Scheme, host, port, path and query keys stay, so the URL is still recognisable.

Parsing: :func:`parse_authority` and :func:`parse_origin` turn a ``Host`` / ``Origin`` header
(or an allowlist entry) into a canonical form that can be compared exactly: names lower
case without a trailing dot, IPv6 addresses compressed in brackets, default ports dropped
from origins. Anything else (userinfo, paths, stray characters, bad ports) is refused with
a ValueError saying why.

This module imports nothing from kai_bridge: every layer may use it.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

__all__ = [
    "ANY_PORT",
    "AnyPort",
    "Authority",
    "AuthorityPattern",
    "Origin",
    "OriginPattern",
    "parse_authority",
    "parse_authority_pattern",
    "parse_origin",
    "parse_origin_pattern",
    "redact_url",
    "redact_urls",
]

MASK: Final = "***"
UNPARSEABLE: Final = "<unparseable URL>"
# A scheme, "://", then anything up to whitespace or a character that cannot be in a URL; the
# punctuation of the sentence around it (``(see http://h/x).``) is not part of it.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


# ---- redaction ----------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` with its password (or lone user name), every query value and the fragment masked.

    ``http://u:pw@h/p?token=x&a=1#f`` -> ``http://u:***@h/p?token=***&a=***#***``. A URL that
    cannot be parsed is replaced by ``<unparseable URL>`` as a whole.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return UNPARSEABLE
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"
    query = "&".join(_mask_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    fragment = MASK if parts.fragment else ""
    if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
        return url
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, fragment))


def _mask_pair(pair: str) -> str:
    key, equals, value = pair.partition("=")
    if not equals:
        # A bare value (``?s3cr3t``) may be the secret itself.
        return MASK if key else key
    return f"{key}={MASK}" if value else pair


def redact_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` (the log scrubber uses this)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


# ---- Host / Origin parsing ----------------------------------------------------------------------


class AnyPort(enum.Enum):
    """The ``*`` of an allowlist entry ``host:*``: any port, or none."""

    ANY = "*"


ANY_PORT: Final = AnyPort.ANY
PortPattern = int | None | Literal[AnyPort.ANY]


@dataclass(frozen=True, slots=True)
class Authority:
    """A canonical ``host[:port]``: ``host`` lower case, no trailing dot, IPv6 as ``[compressed]``."""

    host: str
    port: int | None


@dataclass(frozen=True, slots=True)
class AuthorityPattern:
    """An allowlist entry for the Host header: ``host``, ``host:port`` or ``host:*``."""

    host: str
    port: PortPattern

    def matches(self, authority: Authority) -> bool:
        if authority.host != self.host:
            return False
        return self.port is ANY_PORT or self.port == authority.port


@dataclass(frozen=True, slots=True)
class Origin:
    """A canonical ``scheme://host[:port]``; ``port`` is None for the scheme's default port."""

    scheme: str
    host: str
    port: int | None


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """An allowlist entry for the Origin header: ``scheme://host[:port]`` or ``scheme://host:*``."""

    scheme: str
    host: str
    port: PortPattern

    def matches(self, origin: Origin) -> bool:
        if (origin.scheme, origin.host) != (self.scheme, self.host):
            return False
        return self.port is ANY_PORT or self.port == origin.port


def _canonical_host(text: str) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError("an IPv6 address must be written in brackets, e.g. [::1]")
        inner = text[1:-1]
        if "%" in inner:
            raise ValueError("IPv6 zone identifiers are not accepted")
        try:
            return f"[{ipaddress.IPv6Address(inner).compressed}]"
        except ValueError:
            raise ValueError(f"{inner!r} is not an IPv6 address") from None
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]  # the absolute form of a DNS name is the same name
    if not name:
        raise ValueError("the host name is empty")
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError("a host name has only letters, digits, '-', '_' and dots between non-empty labels")
    return name


def _port(text: str, *, allow_any: bool) -> int | Literal[AnyPort.ANY]:
    if allow_any and text == "*":
        return ANY_PORT
    if not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise ValueError(f"the port must be a number from 0 to 65535{' or *' if allow_any else ''}")
    return int(text)


def _split_authority(text: str, *, allow_any: bool) -> tuple[str, PortPattern]:
    if not text:
        raise ValueError("it is empty")
    if not text.isascii() or not text.isprintable():
        raise ValueError("it has characters that cannot be in a host name")
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError("an IPv6 address must be written in brackets, e.g. [::1]")
        host_text, rest = text[: close + 1], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("only ':port' may follow a bracketed IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        if text.count(":") > 1:
            raise ValueError("an IPv6 address must be written in brackets, e.g. [::1]:8080")
        host_text, colon, after = text.partition(":")
        port_text = after if colon else None
    port = None if port_text is None else _port(port_text, allow_any=allow_any)
    return _canonical_host(host_text), port


def parse_authority(text: str) -> Authority:
    """The canonical form of a ``Host`` header value; ValueError when it is not ``host[:port]``."""
    host, port = _split_authority(text, allow_any=False)
    assert port is not ANY_PORT
    return Authority(host=host, port=port)


def parse_authority_pattern(text: str) -> AuthorityPattern:
    """An allowlist entry ``host``, ``host:port`` or ``host:*`` (``*`` also allows no port)."""
    host, port = _split_authority(text, allow_any=True)
    return AuthorityPattern(host=host, port=port)


def _split_origin(text: str, *, allow_any: bool) -> tuple[str, str, PortPattern]:
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError("an origin is scheme://host[:port], e.g. https://app.example.com")
    scheme = scheme.lower()
    if not _SCHEME.match(scheme):
        raise ValueError(f"{scheme!r} is not a URL scheme")
    if any(char in rest for char in "/?#@\\"):
        raise ValueError("an origin has no user name, path, query or fragment: scheme://host[:port] only")
    host, port = _split_authority(rest, allow_any=allow_any)
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    return scheme, host, port


def parse_origin(text: str) -> Origin:
    """The canonical form of an ``Origin`` header value; ValueError for ``null`` or anything malformed."""
    scheme, host, port = _split_origin(text, allow_any=False)
    assert port is not ANY_PORT
    return Origin(scheme=scheme, host=host, port=port)


def parse_origin_pattern(text: str) -> OriginPattern:
    """An allowlist entry ``scheme://host``, ``scheme://host:port`` or ``scheme://host:*``."""
    scheme, host, port = _split_origin(text, allow_any=True)
    return OriginPattern(scheme=scheme, host=host, port=port)
