"""Cloud plugins in the sandbox: import an OpenAPI file as Coze does, and call the plugin as Coze does.

**Import** (:func:`validate_openapi`) applies the rules of Coze's importer with Coze's own rule
messages where Coze has them (Coze Studio ``backend/crossdomain/plugin/model/openapi.go`` and the
tool registration in the same file; errors read ``invalid plugin openapi3 document : <rule>``,
code 109000003), plus the import guide's "the plugin URL must be a domain, not an IP" and the
few structural checks of kin-openapi (the parser behind it) that matter here. Local ``$ref``
references are resolved as kin-openapi would; one that points nowhere is refused.

**Call** (:meth:`PluginCatalog.call`): ``POST`` server URL + path with the JSON body, the Service
token where the plugin's auth says (header or query, set verbatim), and Coze's plugin headers
(``X-Tt-Logid``, ``X-Aiplugin-Connector-Identifier`` = the chat's ``user_id``,
``X-AIPlugin-Bot-ID``, ``X-AIPlugin-Conversation-ID``, ``X-AIPlugin-ID``). Only HTTP 200 counts;
the answer is trimmed to the declared response fields with Coze's defaults for mistyped values
(the "return default" strategy agents and workflows use): what the model may read.

Written for the sandbox alone: it imports nothing of :mod:`kai_bridge.plugin` (which generates
the files), so the two check each other.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import yaml

from kai_bridge.sandbox.wire import IdGenerator, new_logid

__all__ = [
    "IMPORT_ERROR_CODE",
    "IMPORT_ERROR_PREFIX",
    "ImportedPlugin",
    "PluginCallResult",
    "PluginCatalog",
    "PluginImportError",
    "PluginSource",
    "PluginTool",
    "ServiceToken",
    "answer_from_plugin_output",
    "load_document",
    "trim_response",
    "validate_openapi",
]

logger = logging.getLogger(__name__)

IMPORT_ERROR_CODE: Final = 109000003
IMPORT_ERROR_PREFIX: Final = "invalid plugin openapi3 document : "
_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_BODY_MEDIA_TYPES: Final = (
    "application/json",
    "application/problem+json",
    "application/x-www-form-urlencoded",
    "application/x-yaml",
    "application/yaml",
)
_TYPES: Final = frozenset({"string", "integer", "number", "boolean", "object", "array"})
_MAX_DOCUMENT: Final = 2 * 1024 * 1024


class PluginImportError(ValueError):
    """The file is refused; ``rule`` is Coze's message for the rule it breaks."""

    def __init__(self, rule: str) -> None:
        super().__init__(IMPORT_ERROR_PREFIX + rule)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class ServiceToken:
    """Coze's "Service" auth: ``value`` is set verbatim under ``key`` in the header or the query."""

    location: str
    key: str
    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.location not in ("header", "query"):
            raise ValueError("the service token location must be 'header' or 'query'")
        if not self.key or not self.value:
            raise ValueError("the service token needs a parameter name and a value")

    @classmethod
    def from_json(cls, data: Any) -> ServiceToken | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise ValueError('auth must be {"location": "header"|"query", "key": NAME, "value": TOKEN}')
        return cls(location=str(data.get("location", "header")), key=str(data.get("key", "")),
                   value=str(data.get("value", "")))


@dataclass(frozen=True, slots=True)
class PluginSource:
    """A plugin to import when the sandbox starts: the file's text, its auth, the tool its bot calls."""

    document: str = field(repr=False)
    auth: ServiceToken | None = None
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class PluginTool:
    """One imported operation (a Coze tool)."""

    name: str
    summary: str
    method: str
    path: str
    body_schema: dict[str, Any] | None
    response_schema: dict[str, Any] | None
    question_field: str | None  # the string property the sandbox's bot puts the user's question in


@dataclass(frozen=True, slots=True)
class ImportedPlugin:
    plugin_id: str
    name: str
    description: str
    server_url: str
    tools: tuple[PluginTool, ...]
    auth: ServiceToken | None = field(repr=False)
    bot_id: str | None
    bot_tool: str | None

    def tool(self, name: str) -> PluginTool:
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """What the admin route shows (never the token's value)."""
        return {
            "plugin_id": self.plugin_id,
            "name": self.name,
            "server_url": self.server_url,
            "tools": [t.name for t in self.tools],
            "bot_id": self.bot_id,
            "bot_tool": self.bot_tool,
            "auth": None if self.auth is None else {"location": self.auth.location, "key": self.auth.key},
        }


@dataclass(frozen=True, slots=True)
class PluginCallResult:
    """``data`` is the trimmed answer the model sees (on success); ``error`` Coze's failure text."""

    ok: bool
    data: dict[str, Any] | None
    error: str | None
    status: int | None


# ---- import --------------------------------------------------------------------------------------
def load_document(raw: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document from YAML or JSON text (or an already parsed object)."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if len(raw) > _MAX_DOCUMENT:
        raise PluginImportError(f"the document is larger than {_MAX_DOCUMENT} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PluginImportError(f"the document is neither JSON nor YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PluginImportError("the document must be an OpenAPI object (a JSON or YAML mapping)")
    return data


def _resolve(doc: dict[str, Any], node: Any, stack: tuple[str, ...] = ()) -> Any:
    """``node`` with local ``$ref`` references replaced by what they point to (kin-openapi resolves them)."""
    if isinstance(node, list):
        return [_resolve(doc, item, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#/") or ref in stack:
            raise PluginImportError(f"cannot resolve the reference '{ref}': only local, non-recursive references work")
        target: Any = doc
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or key not in target:
                raise PluginImportError(f"cannot resolve the reference '{ref}': nothing is defined there")
            target = target[key]
        return _resolve(doc, target, (*stack, ref))
    return {k: _resolve(doc, v, stack) for k, v in node.items()}


def _structure(doc: dict[str, Any]) -> None:
    """The parser's own checks (kin-openapi's ``T.Validate``) that an import depends on."""
    version = doc.get("openapi")
    if not isinstance(version, str) or not version:
        raise PluginImportError("value of openapi must be a non-empty string")
    if not version.startswith("3.0"):
        raise PluginImportError(f"unsupported openapi version '{version}': Coze imports OpenAPI 3.0 documents (3.0.1)")
    if not isinstance(doc.get("paths"), dict):
        raise PluginImportError("value of paths must be an object")
    info = doc.get("info")
    if isinstance(info, dict) and not (isinstance(info.get("version"), str) and info["version"]):
        raise PluginImportError("value of version must be a non-empty string")


def _check_info_and_server(doc: dict[str, Any]) -> str:
    info = doc.get("info")
    if not isinstance(info, dict):
        raise PluginImportError("info is required")
    if not info.get("title"):
        raise PluginImportError("the title of info is required")
    if not info.get("description"):
        raise PluginImportError("the description of info is required")
    servers = doc.get("servers")
    if not isinstance(servers, list) or len(servers) != 1:
        raise PluginImportError("server is required and only one server is allowed")
    server = servers[0]
    url = server.get("url") if isinstance(server, dict) else None
    if not isinstance(url, str):
        raise PluginImportError(f"invalid server url '{url}'")
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise PluginImportError(f"invalid server url '{url}'")
    if len(url) > 512:
        raise PluginImportError(f"server url '{url}' is too long")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise PluginImportError(f"the plugin URL must be a domain name, IP addresses are not supported: '{url}'")
    return url.rstrip("/")


def _check_request_body(body: Any) -> dict[str, Any] | None:
    if body is None:
        return None
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, dict) or not content:
        raise PluginImportError("request body is required")
    if len(content) != 1:
        raise PluginImportError("request body only supports one media type")
    media = next((content[ct] for ct in _BODY_MEDIA_TYPES if ct in content), None)
    if media is None:
        raise PluginImportError(
            "invalid media type, request body only the following types: [" + ", ".join(_BODY_MEDIA_TYPES) + "]"
        )
    schema = media.get("schema") if isinstance(media, dict) else None
    if not isinstance(schema, dict):
        raise PluginImportError("request body schema is required")
    if schema.get("type") != "object":
        raise PluginImportError("request body only supports 'object' type")
    return schema


def _check_parameters(parameters: Any) -> None:
    if not parameters:
        return
    if not isinstance(parameters, list):
        raise PluginImportError("parameter schema is required")
    for param in parameters:
        if not isinstance(param, dict) or not isinstance(param.get("schema"), dict):
            raise PluginImportError("parameter schema is required")
        name = param.get("name")
        where = param.get("in")
        if not where:
            raise PluginImportError("parameter location is required")
        if where == "body":
            raise PluginImportError(f"the location of parameter '{name}' cannot be 'body'")
        kind = param["schema"].get("type")
        if not kind:
            raise PluginImportError(f"the type of  parameter '{name}' is required")
        if kind == "object":
            raise PluginImportError(f"the type of parameter '{name}' cannot be 'object'")
        if where == "path" and kind == "array":
            raise PluginImportError(f"the type of parameter '{name}' cannot be 'array'")


def _check_responses(responses: dict[str, Any]) -> dict[str, Any] | None:
    if not responses:
        return None
    if len(responses) != 1 and (len(responses) != 2 or "default" not in responses):
        raise PluginImportError("response only supports '200' status")
    resp = responses.get("200")
    if resp is None:
        raise PluginImportError("response only supports '200' status")
    if not isinstance(resp, dict):
        raise PluginImportError("response schema is required")
    content = resp.get("content")
    if not isinstance(content, dict) or len(content) != 1 or "application/json" not in content:
        raise PluginImportError("response only supports 'application/json' media type")
    media = content["application/json"]
    schema = media.get("schema") if isinstance(media, dict) else None
    if not isinstance(schema, dict):
        raise PluginImportError("the media type schema of response is required")
    if schema.get("type") != "object":
        raise PluginImportError("response body only supports 'object' type")
    return schema


def _check_property(name: str, schema: Any) -> None:
    """Tool registration converts every body property; an untyped one (``anyOf`` only) is refused."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind not in _TYPES:
        raise PluginImportError(f"unsupported json type '{kind if isinstance(kind, str) else ''}'")
    if kind == "object":
        for sub, prop in (schema.get("properties") or {}).items():
            _check_property(sub, prop)
    elif kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            raise PluginImportError(f"the items of array property '{name}' are required")
        _check_property(name, items)


def _question_field(body: dict[str, Any] | None) -> str | None:
    if body is None:
        return None
    props = body.get("properties") or {}
    strings = [str(n) for n, p in props.items() if isinstance(p, dict) and p.get("type") == "string"]
    required = [str(n) for n in body.get("required") or [] if n in strings]
    chosen = required or strings
    return chosen[0] if chosen else None


def validate_openapi(raw: dict[str, Any]) -> tuple[str, list[PluginTool]]:
    """(server URL, tools) of a document Coze would import; PluginImportError with the rule otherwise."""
    _structure(raw)
    doc = _resolve(raw, raw)
    server_url = _check_info_and_server(doc)
    tools: list[PluginTool] = []
    seen: dict[str, str] = {}
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            raise PluginImportError(f"value of path '{path}' must be an object")
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"{method.upper()} {path}"
            if not isinstance(op, dict):
                raise PluginImportError(f"operation is invalid, err=the operation {where} is not an object")
            responses = op.get("responses")
            if not isinstance(responses, dict):
                raise PluginImportError("operation is invalid, err=value of responses must be an object")
            for code, resp in responses.items():
                if isinstance(resp, dict) and not resp.get("description"):
                    raise PluginImportError(
                        f"operation is invalid, err=a short description of the response '{code}' is required"
                    )
            op_id = op.get("operationId")
            if not op_id:
                raise PluginImportError("operationID is required")
            if not op.get("summary"):
                raise PluginImportError("summary is required")
            if op_id in seen:
                raise PluginImportError(f'operations "{seen[op_id]}" and "{where}" have the same operation id "{op_id}"')
            seen[op_id] = where
            body = _check_request_body(op.get("requestBody"))
            _check_parameters(op.get("parameters"))
            response = _check_responses(responses)
            for name, prop in ((body or {}).get("properties") or {}).items():
                _check_property(name, prop)
            tools.append(
                PluginTool(
                    name=str(op_id), summary=str(op["summary"]), method=method.upper(), path=str(path),
                    body_schema=body, response_schema=response, question_field=_question_field(body),
                )
            )
    if not tools:
        raise PluginImportError("the document declares no operation (no tool to import)")
    return server_url, tools


# ---- the answer the model sees ------------------------------------------------------------------
class _Unsupported(Exception):
    pass


def _trim(value: Any, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return None
        props = schema.get("properties") or {}
        return {k: _trim(v, props[k]) for k, v in value.items() if k in props and isinstance(props[k], dict)}
    if kind == "array":
        if not isinstance(value, list):
            return None
        raw_items = schema.get("items")
        items: dict[str, Any] = raw_items if isinstance(raw_items, dict) else {}
        trimmed = [_trim(v, items) for v in value]
        return [v for v in trimmed if v is not None]
    if kind == "string":
        return value if isinstance(value, str) else ""
    if kind == "boolean":
        return value if isinstance(value, bool) else False
    if kind == "integer":
        if isinstance(value, bool):
            return 0
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) and value.is_integer() else 0
    if kind == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else 0
    raise _Unsupported(f"unsupported type '{kind if isinstance(kind, str) else ''}'")


def trim_response(raw: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """The declared part of a plugin's 200 answer, as Coze hands it to the model (ValueError if unusable)."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ValueError(f"response is not object, raw response={raw[:500]}")
    if schema is None or not schema.get("properties"):
        return {}  # Coze hands the model nothing it was not told about
    props = schema["properties"]
    try:
        return {k: _trim(v, props[k]) for k, v in data.items() if k in props and isinstance(props[k], dict)}
    except _Unsupported as exc:
        raise ValueError(str(exc)) from None


def answer_from_plugin_output(data: Mapping[str, Any]) -> str | None:
    """What the sandbox's bot says from a plugin's answer: its error if it reports one, else its answer text."""
    error = data.get("error")
    if isinstance(error, str) and error:
        return f"The tool reported an error: {error}"
    for key in ("answer", "text", "content", "result", "output"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


# ---- the catalogue -------------------------------------------------------------------------------
class PluginCatalog:
    """The plugins imported into one sandbox, their bots, and the HTTP client that calls them."""

    def __init__(self, *, ids: IdGenerator, timeout: float = 60.0) -> None:
        self._ids = ids
        self._timeout = timeout
        self._plugins: dict[str, ImportedPlugin] = {}
        self._by_bot: dict[str, ImportedPlugin] = {}
        self._http: httpx.AsyncClient | None = None
        self.calls = 0
        self.failures = 0

    def __len__(self) -> int:
        return len(self._plugins)

    def list(self) -> list[ImportedPlugin]:
        return list(self._plugins.values())

    def for_bot(self, bot_id: str) -> ImportedPlugin | None:
        return self._by_bot.get(bot_id)

    def import_plugin(
        self, document: str | bytes | Mapping[str, Any], *, auth: ServiceToken | None = None, tool: str | None = None
    ) -> ImportedPlugin:
        """Validate and add a plugin, with a bot that calls ``tool`` (default: ``coffee_knowledge_query``
        when present, else the first tool that takes a string)."""
        doc = load_document(document)
        server_url, tools = validate_openapi(doc)
        by_name = {t.name: t for t in tools}
        if tool is not None:
            if tool not in by_name:
                raise PluginImportError(f"the plugin has no tool '{tool}' for its bot (tools: {', '.join(by_name)})")
            if by_name[tool].question_field is None:
                raise PluginImportError(f"the sandbox's bot cannot call '{tool}': it takes no string for the question")
            bot_tool: str | None = tool
        elif "coffee_knowledge_query" in by_name and by_name["coffee_knowledge_query"].question_field:
            bot_tool = "coffee_knowledge_query"
        else:
            bot_tool = next((t.name for t in tools if t.question_field), None)
        info = doc.get("info") or {}
        plugin = ImportedPlugin(
            plugin_id=self._ids.next(),
            name=str(info.get("title", "")),
            description=str(info.get("description", "")),
            server_url=server_url,
            tools=tuple(tools),
            auth=auth,
            bot_id=self._ids.next() if bot_tool else None,
            bot_tool=bot_tool,
        )
        self._plugins[plugin.plugin_id] = plugin
        if plugin.bot_id is not None:
            self._by_bot[plugin.bot_id] = plugin
        logger.debug("sandbox: imported plugin %r (%d tools) at %s; bot %s calls %s",
                    plugin.name, len(tools), server_url, plugin.bot_id, bot_tool)
        return plugin

    async def call(
        self,
        plugin: ImportedPlugin,
        tool: PluginTool,
        arguments: dict[str, Any],
        *,
        user_id: str,
        bot_id: str,
        conversation_id: str,
    ) -> PluginCallResult:
        """Call ``tool`` over HTTP as Coze does (see the module docstring)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, headers={"User-Agent": "Coze/1.0 (kai-bridge sandbox)"})
        self.calls += 1
        headers = {
            "Content-Type": "application/json",
            "X-Tt-Logid": new_logid(),
            "X-Aiplugin-Connector-Identifier": user_id,
            "X-AIPlugin-Bot-ID": bot_id,
            "X-AIPlugin-Conversation-ID": conversation_id,
            "X-AIPlugin-ID": plugin.plugin_id,
        }
        params: dict[str, str] = {}
        if plugin.auth is not None:
            if plugin.auth.location == "header":
                headers[plugin.auth.key] = plugin.auth.value
            else:
                params[plugin.auth.key] = plugin.auth.value
        body = json.dumps(arguments, ensure_ascii=False).encode() if tool.body_schema is not None else None
        try:
            response = await self._http.request(
                tool.method, plugin.server_url + tool.path, content=body, headers=headers, params=params
            )
        except httpx.HTTPError as exc:
            self.failures += 1
            return PluginCallResult(ok=False, data=None, error=f"http request failed, err={type(exc).__name__}: {exc}",
                                    status=None)
        text = response.text
        if response.status_code != 200:
            self.failures += 1
            return PluginCallResult(ok=False, data=None, status=response.status_code,
                                    error=f"http request failed, status={response.status_code}\nresp={text[:2000]}")
        try:
            data = trim_response(text, tool.response_schema)
        except ValueError as exc:
            self.failures += 1
            return PluginCallResult(ok=False, data=None, error=str(exc), status=200)
        return PluginCallResult(ok=True, data=data, error=None, status=200)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
