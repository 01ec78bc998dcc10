"""Event routes: configuration that sends a webhook event to a registry tool, with no code run.

A route (``[[webhook_routes]]`` in TOML, :class:`~kai_bridge.config.WebhookRoute`) names an
event type (exact, or a glob such as ``bot.*``), an optional ``match`` of field values, a tool
of the registry (kai-bridge's own or an upstream KAI tool) and the tool's ``arguments``.

Paths name a field of the event body by its keys, dot-separated, with list indices as
numbers: ``event.bot_id``, ``data.message``, ``header.event_id``, ``data.items.0.name``.
Four names start with ``@``: ``@type`` (the event type, whichever shape), ``@id`` (the inbox
id), ``@source`` (``coze`` or ``token``) and ``@received_at`` (epoch seconds).

In ``arguments`` a string that is exactly ``"${path}"`` becomes the value at the path (any
JSON: a number stays a number, an object an object); ``${path}`` inside a longer string is
replaced by the value's text (strings as they are, other values as compact JSON); ``$${``
writes a literal ``${``. Everything else is passed as written. A path that is not in the event
fails the route with an error saying which (stored on the event, no retry: it cannot fix
itself). ``match`` maps paths to the values they must equal (a string also matches the same
digits sent as a number, as Coze ids sometimes are).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue

from kai_bridge.config import WebhookRoute
from kai_bridge.errors import ConfigError

__all__ = ["CompiledRoute", "EventDocument", "MappingError", "compile_routes"]

_PLACEHOLDER: Final = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_SEGMENT: Final = re.compile(r"^[^.\s${}]+$")
SPECIAL_NAMES: Final = frozenset({"@type", "@id", "@source", "@received_at"})


class MappingError(ValueError):
    """A route could not build its arguments from this event (``str()`` says why)."""


@dataclass(frozen=True, slots=True)
class EventDocument:
    """What paths are resolved against: the event body plus the four ``@`` names."""

    body: dict[str, JsonValue]
    event_type: str
    event_id: str
    source: str
    received_at: float

    def lookup(self, path: tuple[str, ...]) -> tuple[bool, JsonValue]:
        """(found, value) for ``path``."""
        head = path[0]
        if head in SPECIAL_NAMES:
            special: dict[str, JsonValue] = {
                "@type": self.event_type,
                "@id": self.event_id,
                "@source": self.source,
                "@received_at": self.received_at,
            }
            return (len(path) == 1, special[head] if len(path) == 1 else None)
        node: JsonValue = self.body
        for segment in path:
            if isinstance(node, dict) and segment in node:
                node = node[segment]
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                return False, None
        return True, node


def _parse_path(raw: str, *, where: str) -> tuple[str, ...]:
    text = raw.strip()
    segments = tuple(text.split("."))
    if not text or not all(_SEGMENT.match(s) for s in segments):
        raise ConfigError(f"{where}: {raw!r} is not a field path (use keys joined by dots, e.g. data.message)")
    if segments[0].startswith("@") and (segments[0] not in SPECIAL_NAMES or len(segments) > 1):
        raise ConfigError(f"{where}: {raw!r}: the names starting with @ are {', '.join(sorted(SPECIAL_NAMES))}")
    return segments


def _as_text(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Template:
    """One argument value, compiled: a literal, a whole-value path, or a string with placeholders."""

    def __init__(self, value: JsonValue, *, where: str) -> None:
        self._where = where
        self._literal: JsonValue = None
        self._path: tuple[str, ...] | None = None
        self._parts: list[str | tuple[str, ...]] | None = None
        self._children: dict[str, _Template] | list[_Template] | None = None
        if isinstance(value, dict):
            self._children = {k: _Template(v, where=f"{where}.{k}") for k, v in value.items()}
        elif isinstance(value, list):
            self._children = [_Template(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, str) and "${" in value:
            whole = _PLACEHOLDER.fullmatch(value)
            if whole is not None and whole.group(1) is not None:
                self._path = _parse_path(whole.group(1), where=where)
            else:
                self._parts = self._split(value)
        else:
            self._literal = value

    def _split(self, value: str) -> list[str | tuple[str, ...]]:
        parts: list[str | tuple[str, ...]] = []
        last = 0
        for found in _PLACEHOLDER.finditer(value):
            parts.append(value[last : found.start()])
            if found.group(1) is None:  # "$${": a literal "${"
                parts.append("${")
            else:
                parts.append(_parse_path(found.group(1), where=self._where))
            last = found.end()
        parts.append(value[last:])
        return [p for p in parts if p != ""]

    def _resolve(self, doc: EventDocument, path: tuple[str, ...]) -> JsonValue:
        found, value = doc.lookup(path)
        if not found:
            raise MappingError(f"{self._where}: ${{{'.'.join(path)}}} is not in the event")
        return value

    def render(self, doc: EventDocument) -> JsonValue:
        if isinstance(self._children, dict):
            return {k: child.render(doc) for k, child in self._children.items()}
        if isinstance(self._children, list):
            return [child.render(doc) for child in self._children]
        if self._path is not None:
            return self._resolve(doc, self._path)
        if self._parts is not None:
            return "".join(p if isinstance(p, str) else _as_text(self._resolve(doc, p)) for p in self._parts)
        return self._literal


def _equal(actual: JsonValue, expected: JsonValue) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, str) and isinstance(actual, int):
        return str(actual) == expected
    return actual == expected


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A route ready to run: :meth:`applies` to an event, then :meth:`arguments` for the tool."""

    name: str
    event_type: str
    tool: str
    match: tuple[tuple[tuple[str, ...], JsonValue], ...]
    template: _Template

    def applies(self, doc: EventDocument) -> bool:
        if not (doc.event_type == self.event_type or fnmatch.fnmatchcase(doc.event_type, self.event_type)):
            return False
        for path, expected in self.match:
            found, actual = doc.lookup(path)
            if not found or not _equal(actual, expected):
                return False
        return True

    def arguments(self, doc: EventDocument) -> dict[str, JsonValue]:
        """The tool's arguments for ``doc`` (MappingError names a path the event lacks)."""
        rendered = self.template.render(doc)
        assert isinstance(rendered, dict)
        return rendered


def compile_routes(routes: Sequence[WebhookRoute]) -> list[CompiledRoute]:
    """Check and compile the configured routes (ConfigError names the route and the problem)."""
    compiled: list[CompiledRoute] = []
    for index, route in enumerate(routes):
        where = f"webhook_routes[{index}] ({route.label})"
        match = tuple(
            (_parse_path(path, where=f"{where} match"), value) for path, value in route.match.items()
        )
        template = _Template(dict(route.arguments), where=f"{where} arguments")
        compiled.append(
            CompiledRoute(name=route.label, event_type=route.event_type, tool=route.tool, match=match,
                          template=template)
        )
    return compiled
