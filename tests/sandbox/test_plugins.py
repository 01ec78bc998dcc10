"""The sandbox's cloud plugins: Coze's import rules (with Coze's messages), the trimmed answer, admin and CLI."""

from __future__ import annotations

import ast
import copy
import pathlib
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

import kai_bridge.sandbox as sandbox_pkg
from kai_bridge.cli import build_parser
from kai_bridge.cmd.sandbox import build_config
from kai_bridge.errors import ConfigError
from kai_bridge.sandbox import SandboxConfig, create_app, sandbox_context
from kai_bridge.sandbox.plugins import (
    PluginCatalog,
    PluginImportError,
    ServiceToken,
    answer_from_plugin_output,
    load_document,
    trim_response,
    validate_openapi,
)
from kai_bridge.sandbox.wire import IdGenerator

BASE: dict[str, Any] = {
    "openapi": "3.0.1",
    "info": {"title": "Weather", "description": "Weather by city", "version": "v1"},
    "servers": [{"url": "https://api.weather.example.com"}],
    "paths": {
        "/now": {
            "post": {
                "operationId": "weather_now",
                "summary": "The weather now in a city",
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}},
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"answer": {"type": "string"}}}}}}},
            }
        }
    },
}


def op(doc: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = doc["paths"]["/now"]["post"]
    return operation


def edit(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    def run(doc: dict[str, Any]) -> None:
        fn(doc)

    return run


RULES = [
    pytest.param(edit(lambda d: d.pop("openapi")), "value of openapi must be a non-empty string", id="no-openapi"),
    pytest.param(edit(lambda d: d.__setitem__("paths", [])), "value of paths must be an object", id="paths-list"),
    pytest.param(edit(lambda d: d["info"].pop("version")), "value of version must be a non-empty string",
                 id="no-info-version"),
    pytest.param(edit(lambda d: d.pop("info")), "info is required", id="no-info"),
    pytest.param(edit(lambda d: d.pop("servers")), "server is required and only one server is allowed", id="no-server"),
    pytest.param(edit(lambda d: d["servers"][0].__setitem__("url", "/relative")), "invalid server url '/relative'",
                 id="server-without-host"),
    pytest.param(edit(lambda d: d["servers"][0].__setitem__("url", "http://[::1]:9000")),
                 "the plugin URL must be a domain name, IP addresses are not supported: 'http://[::1]:9000'",
                 id="ipv6-server"),
    pytest.param(edit(lambda d: op(d)["responses"]["200"].pop("description")),
                 "operation is invalid, err=a short description of the response '200' is required",
                 id="response-without-description"),
    pytest.param(edit(lambda d: op(d).pop("responses")), "operation is invalid, err=value of responses must be an object",
                 id="no-responses"),
    pytest.param(edit(lambda d: d["paths"].__setitem__("/later", {"post": copy.deepcopy(op(d))})),
                 'operations "POST /now" and "POST /later" have the same operation id "weather_now"',
                 id="duplicate-operation-id"),
    pytest.param(edit(lambda d: op(d).__setitem__("requestBody", {"content": {}})), "request body is required",
                 id="body-without-content"),
    pytest.param(edit(lambda d: op(d).__setitem__("requestBody", {"content": {"text/plain": {"schema": {"type": "object"}}}})),
                 "invalid media type, request body only the following types: [application/json, "
                 "application/problem+json, application/x-www-form-urlencoded, application/x-yaml, application/yaml]",
                 id="body-media-type"),
    pytest.param(edit(lambda d: op(d).__setitem__("requestBody", {"content": {"application/json": {}}})),
                 "request body schema is required", id="body-without-schema"),
    pytest.param(edit(lambda d: op(d)["requestBody"]["content"]["application/json"]["schema"].pop("type")),
                 "request body only supports 'object' type", id="untyped-body"),
    pytest.param(edit(lambda d: op(d).__setitem__("parameters", [{"name": "q", "in": "query"}])),
                 "parameter schema is required", id="parameter-without-schema"),
    pytest.param(edit(lambda d: op(d).__setitem__("parameters", [{"name": "q", "schema": {"type": "string"}}])),
                 "parameter location is required", id="parameter-without-location"),
    pytest.param(edit(lambda d: op(d).__setitem__("parameters", [{"name": "q", "in": "body", "schema": {"type": "string"}}])),
                 "the location of parameter 'q' cannot be 'body'", id="parameter-in-body"),
    pytest.param(edit(lambda d: op(d).__setitem__("parameters", [{"name": "q", "in": "query", "schema": {}}])),
                 "the type of  parameter 'q' is required", id="untyped-parameter"),  # Coze's message has two spaces
    pytest.param(edit(lambda d: op(d).__setitem__("parameters", [{"name": "q", "in": "query", "schema": {"type": "object"}}])),
                 "the type of parameter 'q' cannot be 'object'", id="object-parameter"),
    pytest.param(edit(lambda d: op(d).__setitem__("parameters", [{"name": "q", "in": "path", "schema": {"type": "array"}}])),
                 "the type of parameter 'q' cannot be 'array'", id="array-in-path"),
    pytest.param(edit(lambda d: op(d)["responses"].__setitem__("default", {"description": "x"})), None,
                 id="200-and-default-is-fine"),
    pytest.param(edit(lambda d: op(d)["responses"].__setitem__("201", {"description": "x"})),
                 "response only supports '200' status", id="a-201"),
    pytest.param(edit(lambda d: op(d)["responses"].pop("200") and op(d)["responses"].__setitem__("201", {"description": "x"})),
                 "response only supports '200' status", id="no-200"),
    pytest.param(edit(lambda d: op(d)["responses"]["200"]["content"]["application/json"].pop("schema")),
                 "the media type schema of response is required", id="response-without-schema"),
    pytest.param(edit(lambda d: op(d)["requestBody"]["content"]["application/json"]["schema"]["properties"]
                      .__setitem__("when", {"type": "object", "properties": {"day": {"oneOf": [{"type": "string"}]}}})),
                 "unsupported json type ''", id="union-nested-in-body"),
]


@pytest.mark.parametrize(("breaks", "message"), RULES)
def test_the_importer_refuses_what_coze_refuses_with_coze_s_message(
    breaks: Callable[[dict[str, Any]], None], message: str | None
) -> None:
    doc = copy.deepcopy(BASE)
    breaks(doc)
    if message is None:
        validate_openapi(doc)
        return
    with pytest.raises(PluginImportError) as refused:
        validate_openapi(doc)
    assert refused.value.rule == message


def test_local_references_are_resolved_as_coze_s_parser_does() -> None:
    doc = copy.deepcopy(BASE)
    doc["components"] = {"schemas": {"Q": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    op(doc)["requestBody"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/Q"}
    _server, tools = validate_openapi(doc)
    assert tools[0].question_field == "city"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("openapi: [unclosed", "the document is neither JSON nor YAML", id="yaml-error"),
        pytest.param("- just\n- a list\n", "the document must be an OpenAPI object", id="not-a-mapping"),
    ],
)
def test_a_document_that_is_not_an_openapi_object_is_refused(text: str, message: str) -> None:
    with pytest.raises(PluginImportError, match=message):
        load_document(text)


# ---- what the model sees -----------------------------------------------------------------------
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "found": {"type": "boolean"},
        "count": {"type": "integer"},
        "score": {"type": "number"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}},
    },
}


@pytest.mark.parametrize(
    ("raw", "seen"),
    [
        pytest.param('{"answer": "hi", "secret": "x"}', {"answer": "hi"}, id="undeclared-left-out"),
        pytest.param('{"answer": 3, "found": "yes", "count": 2.0, "score": "x"}',
                     {"answer": "", "found": False, "count": 2, "score": 0}, id="mistyped-get-defaults"),
        pytest.param('{"items": [{"id": "a", "extra": 1}, 7]}', {"items": [{"id": "a"}]}, id="nested"),
        pytest.param('{"answer": null}', {"answer": ""}, id="null-string"),
        pytest.param("", {}, id="empty-body"),
    ],
)
def test_an_answer_is_trimmed_to_the_declared_fields_with_coze_s_defaults(raw: str, seen: dict[str, Any]) -> None:
    assert trim_response(raw, SCHEMA) == seen


@pytest.mark.parametrize(
    ("raw", "schema", "problem"),
    [
        pytest.param("[1]", SCHEMA, "response is not object", id="not-an-object"),
        pytest.param('{"x": 1}', {"type": "object", "properties": {"x": {"anyOf": [{"type": "integer"}]}}},
                     "unsupported type ''", id="untyped-response-field"),
    ],
)
def test_an_answer_coze_cannot_read_fails_the_call(raw: str, schema: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        trim_response(raw, schema)


def test_the_bot_says_the_tool_s_error_or_its_answer() -> None:
    assert answer_from_plugin_output({"error": "bad query", "error_code": "invalid_arguments"}) == (
        "The tool reported an error: bad query")
    assert answer_from_plugin_output({"answer": " 42 "}) == "42"
    assert answer_from_plugin_output({"found": True}) is None


# ---- the catalogue, admin route and CLI ---------------------------------------------------------
def test_an_imported_plugin_gets_a_bot_that_calls_its_question_tool() -> None:
    catalog = PluginCatalog(ids=IdGenerator())
    plugin = catalog.import_plugin(yaml.safe_dump(BASE))
    assert plugin.bot_tool == "weather_now"
    assert plugin.bot_id is not None
    assert catalog.for_bot(plugin.bot_id) is plugin
    with pytest.raises(PluginImportError, match="has no tool 'nope'"):
        catalog.import_plugin(BASE, tool="nope")


async def test_the_admin_route_imports_lists_and_refuses_like_coze() -> None:
    admin = secrets.token_hex(16)
    service_token = secrets.token_hex(16)
    pat = "pat_" + secrets.token_hex(16)
    app = create_app(SandboxConfig(admin_enabled=True, admin_token=admin, pats=[pat]))
    headers = {"Authorization": f"Bearer {admin}"}
    broken = copy.deepcopy(BASE)
    broken["servers"] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as http:
        no_admin = await http.post("/_sandbox/plugins", json=BASE)
        refused = await http.post("/_sandbox/plugins", json=broken, headers=headers)
        imported = await http.post("/_sandbox/plugins", headers=headers, json={
            "document": yaml.safe_dump(BASE), "tool": "weather_now",
            "auth": {"location": "query", "key": "key", "value": service_token}})
        listed = await http.get("/_sandbox/plugins", headers=headers)
        bot = await http.get(f"/v1/bots/{imported.json()['data']['bot_id']}", headers={"Authorization": f"Bearer {pat}"})
    assert no_admin.status_code == 401
    assert refused.status_code == 400
    assert refused.json()["code"] == 109000003
    assert refused.json()["msg"] == "invalid plugin openapi3 document : server is required and only one server is allowed"
    assert imported.json()["data"]["bot_tool"] == "weather_now"
    assert listed.json()["data"]["plugins"][0]["auth"] == {"location": "query", "key": "key"}
    assert service_token not in listed.text
    assert bot.json()["data"]["name"] == "Weather (cloud plugin bot)"
    assert len(sandbox_context(app).plugins) == 1


def _sandbox_args(*extra: str) -> Any:
    return build_parser().parse_args(["sandbox", *extra])


def test_the_sandbox_cli_imports_a_plugin_file_with_its_service_token(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "weather.yaml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    token = secrets.token_hex(16)
    config = build_config(_sandbox_args("--plugin", str(path), "--plugin-token", token))
    assert len(config.plugins) == 1
    assert config.plugins[0].auth == ServiceToken(location="header", key="Authorization", value=f"Bearer {token}")
    assert token not in repr(config)
    bare = build_config(_sandbox_args("--plugin", str(path), "--plugin-token", token, "--plugin-token-header", "X-Key"))
    assert bare.plugins[0].auth == ServiceToken(location="header", key="X-Key", value=token)


def test_the_sandbox_cli_refuses_a_plugin_file_coze_would_refuse(tmp_path: pathlib.Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["info"].pop("description")
    path = tmp_path / "weather.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match="the description of info is required"):
        build_config(_sandbox_args("--plugin", str(path)))


def test_the_sandbox_shares_no_code_with_the_plugin_face() -> None:
    root = pathlib.Path(sandbox_pkg.__file__).parent
    imported: set[str] = set()
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert "kai_bridge.sandbox.plugins" in imported  # the scan sees the package's own imports
    assert not [m for m in imported if m == "kai_bridge.plugin" or m.startswith("kai_bridge.plugin.")]
    assert not [m for m in imported if m == "kai_bridge.coze" or m.startswith("kai_bridge.coze.")]
