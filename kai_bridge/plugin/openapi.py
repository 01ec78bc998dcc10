"""The OpenAPI 3.0.1 file of the plugin face, generated from the tool registry, that Coze imports as it is.

Coze's importer (Coze Studio ``backend/crossdomain/plugin/model/openapi.go``; the commercial
Coze is at least as strict) wants: one ``servers`` entry whose host is a domain (not an IP),
``info.title`` and ``info.description``, ``operationId`` and ``summary`` on every operation (the
summary is what the model reads to decide when to call the tool), one ``application/json``
request body with an ``object`` schema, only a ``200`` response with one ``application/json``
``object`` schema, and every property typed with one of ``string``, ``integer``, ``number``,
``boolean``, ``object``, ``array`` (arrays with ``items``): no ``anyOf``/``oneOf``/``nullable``
unions and no ``$ref``.

So each tool's JSON Schemas (pydantic's, or an upstream server's) are converted
(:func:`coze_schema`): ``Optional[X]`` (``anyOf: [X, null]``) becomes plain ``X`` and leaves
``required``; ``const`` becomes a one-value ``enum``; JSON Schema 2020 numeric
``exclusiveMinimum``/``Maximum`` become OpenAPI 3.0's boolean form; ``examples`` becomes
``example``; titles are dropped. The face answers in the same shape: null values are left out of
its JSON (:func:`drop_nulls`).

Every response also declares ``error`` (what went wrong, in words) and ``error_code``; a long
tool (one with ``poll_with``) declares ``pending``, the handle to fetch its result later.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from kai_bridge import __version__
from kai_bridge.tools.registry import Tool, ToolRegistry

__all__ = [
    "ERROR_CODES",
    "OPENAPI_VERSION",
    "PENDING_FIELD",
    "PLACEHOLDER_SERVER_URL",
    "TOOLS_PATH",
    "UnsupportedSchema",
    "build_openapi",
    "check_server_url",
    "coze_schema",
    "drop_nulls",
    "dump_json",
    "dump_yaml",
    "error_field",
    "operation_id",
    "select_tools",
]

OPENAPI_VERSION: Final = "3.0.1"
PLACEHOLDER_SERVER_URL: Final = "https://kai-bridge.example.com"
TOOLS_PATH: Final = "/plugin/tools"
PENDING_FIELD: Final = "pending"
#: error_code values the face answers with (HTTP 200 for the first four, 4xx for the others)
ERROR_CODES: Final = (
    "invalid_arguments",
    "tool_failed",
    "timeout",
    "unknown_tool",
    "unauthorized",
    "plugin_face_off",
    "rate_limited",
    "invalid_json",
    "body_too_large",
)
_JSON_TYPES: Final = ("string", "integer", "number", "boolean", "object", "array")
_KEPT: Final = frozenset(
    {
        "description", "default", "enum", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "multipleOf", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "example",
    }
)
_OPERATION_ID_BAD: Final = re.compile(r"[^A-Za-z0-9_]")


class UnsupportedSchema(ValueError):
    """A tool schema that cannot be written in the form Coze imports (a recursive ``$ref``)."""


def check_server_url(url: str) -> str:
    """``url`` without a trailing slash if Coze can use it: http(s), a host that is a domain name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the plugin server URL must be an http(s) URL such as https://kai.example.com, got {url!r}")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        pass
    else:
        raise ValueError(
            f"the plugin server URL {url!r} is an IP address, which Coze refuses: use a domain name "
            "(e.g. the host name of a tunnel or reverse proxy that reaches kai-bridge)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"the plugin server URL must not have a query or fragment, got {url!r}")
    if len(url) > 512:
        raise ValueError("the plugin server URL is longer than the 512 characters Coze accepts")
    return url.rstrip("/")


def operation_id(name: str) -> str:
    """The Coze tool name of registry tool ``name`` (letters, digits and ``_``; ``kai.search`` -> ``kai_search``)."""
    return _OPERATION_ID_BAD.sub("_", name)


def drop_nulls(value: Any) -> Any:
    """``value`` with every ``None`` member of an object left out (the OpenAPI file declares no nulls)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(item) for item in value]
    return value


# ---- schema conversion ---------------------------------------------------------------------------
def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) <= 2


def _infer_type(schema: dict[str, Any]) -> str:
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    values = schema.get("enum")
    if isinstance(values, list) and values:
        first = values[0]
        if isinstance(first, bool):
            return "boolean"
        if isinstance(first, int):
            return "integer"
        if isinstance(first, float):
            return "number"
    # Anything else (an unconstrained value): text is what a model can always produce and read.
    return "string"


def _convert(schema: Any) -> tuple[dict[str, Any], bool]:
    """(the Coze form of ``schema``, whether the original admitted null)."""
    if not isinstance(schema, dict):
        return {"type": "string"}, False
    if "$ref" in schema:
        raise UnsupportedSchema(f"a recursive or external $ref ({schema['$ref']}) cannot be inlined")
    nullable = False
    node = dict(schema)
    for key in ("anyOf", "oneOf"):
        branches = node.pop(key, None)
        if isinstance(branches, list):
            kept = [b for b in branches if not _is_null(b)]
            nullable = nullable or len(kept) < len(branches)
            if kept:
                # Several typed branches: the first is declared (the tool itself still accepts all).
                chosen, inner_null = _convert(kept[0])
                nullable = nullable or inner_null
                node = {**chosen, **{k: v for k, v in node.items() if k in ("description", "default", "example")}}
    parts = node.pop("allOf", None)
    if isinstance(parts, list):
        merged: dict[str, Any] = {}
        for part in parts:
            converted, inner_null = _convert(part)
            nullable = nullable or inner_null
            merged = {**merged, **converted}
        node = {**merged, **node}
    kind = node.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        nullable = nullable or len(types) < len(kind)
        kind = types[0] if types else None
    if node.get("nullable") is True:
        nullable = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if kind not in _JSON_TYPES:
        kind = _infer_type(node)
    out: dict[str, Any] = {"type": kind}
    for key, value in node.items():
        if key in _KEPT:
            out[key] = value
    if isinstance(node.get("examples"), list) and node["examples"] and "example" not in out:
        out["example"] = node["examples"][0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[plain] = value
            out[bound] = True
        elif value is True and plain in out:
            out[bound] = True
    if out.get("default", 0) is None:
        del out["default"]
    if isinstance(out.get("enum"), list):
        out["enum"] = [v for v in out["enum"] if v is not None]
        if not out["enum"]:
            del out["enum"]
    if kind == "object":
        properties = node.get("properties")
        converted_props: dict[str, Any] = {}
        required = [r for r in node.get("required", []) if isinstance(r, str)]
        if isinstance(properties, dict):
            for name, prop in properties.items():
                converted_prop, prop_null = _convert(prop)
                converted_props[name] = converted_prop
                if prop_null and name in required:
                    required.remove(name)
        out["properties"] = converted_props
        kept_required = [r for r in required if r in converted_props]
        if kept_required:
            out["required"] = kept_required
        extra = node.get("additionalProperties")
        if isinstance(extra, bool):
            out["additionalProperties"] = extra
        elif isinstance(extra, dict):
            out["additionalProperties"] = _convert(extra)[0]
    elif kind == "array":
        out["items"] = _convert(node.get("items", {}))[0]
    return out, nullable


def coze_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in the shape Coze imports (see the module docstring); UnsupportedSchema if impossible."""
    return _convert(schema)[0]


# ---- the document --------------------------------------------------------------------------------
def error_field(output_properties: Iterable[str], output_schema: dict[str, Any] | None) -> str:
    """The response field that carries a call's error: ``error``, unless the tool's own ``error`` is no string."""
    if "error" not in output_properties:
        return "error"
    own = (output_schema or {}).get("properties", {}).get("error", {})
    converted = _convert(own)[0] if isinstance(own, dict) else {}
    return "error" if converted.get("type") == "string" else "kai_bridge_error"


def _output_schema(tool: Tool) -> dict[str, Any]:
    if tool.output_schema is None:
        return {
            "type": "object",
            "properties": {
                "content": {"type": "array", "items": {"type": "string"}, "description": "the tool's answer, as text"}
            },
        }
    converted = coze_schema(tool.output_schema)
    if converted.get("type") != "object":
        return {"type": "object", "properties": {"result": converted}}
    return converted


def _response_schema(tool: Tool, registry: ToolRegistry | None, *, wait: float) -> dict[str, Any]:
    schema = _output_schema(tool)
    properties: dict[str, Any] = dict(schema.get("properties", {}))
    name = error_field(properties, tool.output_schema)
    if name in properties:  # the tool has an `error` of its own (e.g. why a chat failed): one field says both
        own = properties[name].get("description")
        error_doc = (f"{own}; " if own else "what went wrong in the tool's own work (e.g. a failed chat); ") + (
            "with error_code set, why the call itself failed, in words you can act on")
    else:
        error_doc = ("set when the call failed: what went wrong, in words you can act on (error_code says how; "
                     "no other field is set then)")
    properties[name] = {"type": "string", "description": error_doc}
    properties["error_code"] = {
        "type": "string",
        "enum": list(ERROR_CODES[:4]),
        "description": "set with the error: invalid_arguments (fix them and call again), tool_failed, timeout, "
        "unknown_tool",
    }
    if tool.poll_with:
        poll_args: dict[str, Any] = {}
        if registry is not None and tool.poll_with in registry:
            poll_args = coze_schema(registry.get(tool.poll_with).input_schema).get("properties", {})
        properties[PENDING_FIELD] = {
            "type": "object",
            "description": f"set when the call is still running after {wait:g} s: call {tool.poll_with} with "
            "pending.arguments in a few seconds to get the result",
            "properties": {
                "status": {"type": "string", "description": "in_progress"},
                "tool": {"type": "string", "description": "the tool that fetches the result"},
                "arguments": {"type": "object", "properties": poll_args, "description": "its arguments"},
                "message": {"type": "string", "description": "what to do, in words"},
            },
        }
    # No top-level "required": an answer that carries `error` or `pending` has no other field.
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if "description" in schema:
        out["description"] = schema["description"]
    return out


def _summary(tool: Tool, *, wait: float) -> str:
    text = tool.description.strip()
    if tool.poll_with:
        text += (
            f" If it is not done within {wait:g} s, the result has `pending` instead: call {tool.poll_with} "
            "with pending.arguments a little later."
        )
    return text


def _operation(tool: Tool, registry: ToolRegistry | None, *, wait: float) -> dict[str, Any]:
    return {
        "operationId": operation_id(tool.name),
        "summary": _summary(tool, wait=wait),
        "description": tool.title,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": coze_schema(tool.input_schema)}},
        },
        "responses": {
            "200": {
                "description": "the tool's result; `error` and `error_code` instead when the call failed",
                "content": {"application/json": {"schema": _response_schema(tool, registry, wait=wait)}},
            }
        },
    }


def select_tools(registry: ToolRegistry, names: Sequence[str] | None = None) -> list[Tool]:
    """The tools of ``registry`` named in ``names`` (all when empty), plus the tools long ones poll with.

    Raises ValueError naming an unknown tool and the available ones.
    """
    if not names:
        return registry.list()
    unknown = [n for n in names if n not in registry]
    if unknown:
        available = ", ".join(t.name for t in registry.list())
        raise ValueError(f"unknown tool(s) {', '.join(unknown)}; available: {available}")
    chosen = set(names)
    for name in list(chosen):
        poll = registry.get(name).poll_with
        if poll and poll in registry:
            chosen.add(poll)
    return [t for t in registry.list() if t.name in chosen]


def build_openapi(
    tools: Sequence[Tool],
    *,
    server_url: str,
    wait: float,
    registry: ToolRegistry | None = None,
    title: str = "kai-bridge",
    version: str = __version__,
) -> tuple[dict[str, Any], list[str]]:
    """The OpenAPI document for ``tools`` at ``server_url``, and the tools left out (with why).

    ``registry`` resolves the tools that long tools poll with. Raises ValueError for a server
    URL Coze cannot use (see :func:`check_server_url`) or when two tools map to one operationId.
    """
    base = check_server_url(server_url)
    paths: dict[str, Any] = {}
    seen: dict[str, str] = {}
    skipped: list[str] = []
    listed: list[Tool] = []
    for tool in tools:
        op_id = operation_id(tool.name)
        if op_id in seen:
            raise ValueError(f"tools {seen[op_id]!r} and {tool.name!r} would both be Coze tool {op_id!r}")
        try:
            operation = _operation(tool, registry, wait=wait)
        except UnsupportedSchema as exc:
            skipped.append(f"{tool.name}: {exc}")
            continue
        seen[op_id] = tool.name
        paths[f"{TOOLS_PATH}/{tool.name}"] = {"post": operation}
        listed.append(tool)
    names = "; ".join(f"{t.name} ({t.title})" for t in listed) or "none"
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "description": (
                "Tools served by kai-bridge, which bridges KAI tools and Coze agents. Tools: "
                f"{names}. A failed call answers HTTP 200 with `error` (what went wrong, in words) and "
                "`error_code`; a long call may answer `pending` with the tool and arguments that fetch its result."
            ),
            "version": version,
        },
        "servers": [{"url": base}],
        "paths": paths,
    }
    return doc, skipped


def dump_yaml(doc: dict[str, Any]) -> str:
    """YAML text, keys in document order, non-ASCII kept (Chinese descriptions stay readable)."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)


def dump_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
