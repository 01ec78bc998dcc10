"""The plugin's OpenAPI file: valid OpenAPI 3.0.1, every Coze import rule kept, answers that match it.

Three independent checks: openapi-spec-validator (the standard), the rule checks written here
(one per Coze rule, each with a document that breaks it), and the sandbox's own importer (a
separate implementation of Coze's rules, with Coze's messages).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

from kai_bridge.cli import main
from kai_bridge.config import Settings
from kai_bridge.plugin import PLACEHOLDER_SERVER_URL, build_openapi, check_server_url, coze_schema, select_tools
from kai_bridge.plugin.openapi import UnsupportedSchema, dump_yaml, operation_id
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox.plugins import PluginImportError, validate_openapi
from kai_bridge.tools.registry import ToolRegistry
from tests.plugin.conftest import face_client

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "manifests" / "coze-plugin" / "openapi.yaml"
SIX_TYPES = {"string", "integer", "number", "boolean", "object", "array"}
WAIT = Settings().plugin_wait


def generated(registry: ToolRegistry, url: str = PLACEHOLDER_SERVER_URL) -> dict[str, Any]:
    doc, skipped = build_openapi(select_tools(registry), server_url=url, wait=WAIT, registry=registry)
    assert skipped == []
    return doc


def operations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in doc["paths"].values():
        yield from item.values()


# ---- our own check of each Coze rule -----------------------------------------------------------
def _schemas(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema in a request or response schema tree, with where it is."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, prop in (node.get("properties") or {}).items():
        yield from _schemas(prop, f"{path}.{name}")
    if "items" in node:
        yield from _schemas(node["items"], f"{path}[]")


def _typed(doc: dict[str, Any]) -> bool:
    for op in operations(doc):
        roots = [m.get("schema") for m in op.get("requestBody", {}).get("content", {}).values()]
        roots += [m.get("schema") for r in op.get("responses", {}).values() for m in r.get("content", {}).values()]
        for root in roots:
            for _, schema in _schemas(root):
                if schema.get("type") not in SIX_TYPES:
                    return False
                if {"anyOf", "oneOf", "allOf", "$ref", "nullable"} & set(schema):
                    return False
                if schema["type"] == "array" and not isinstance(schema.get("items"), dict):
                    return False
    return True


def _one_json_object_body(doc: dict[str, Any]) -> bool:
    for op in operations(doc):
        body = op.get("requestBody")
        if body is None:
            continue
        content = body.get("content", {})
        if list(content) != ["application/json"] or content["application/json"].get("schema", {}).get("type") != "object":
            return False
    return True


def _only_200(doc: dict[str, Any]) -> bool:
    return all("200" in op["responses"] and set(op["responses"]) <= {"200", "default"} for op in operations(doc))


def _json_object_response(doc: dict[str, Any]) -> bool:
    for op in operations(doc):
        content = op["responses"]["200"].get("content", {})
        if list(content) != ["application/json"] or content["application/json"].get("schema", {}).get("type") != "object":
            return False
    return True


def _domain_server(doc: dict[str, Any]) -> bool:
    host = urlsplit(doc["servers"][0]["url"]).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(host)
    return False


COZE_RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "openapi 3.0.1": lambda d: d.get("openapi") == "3.0.1",
    "info.title": lambda d: bool(d.get("info", {}).get("title")),
    "info.description": lambda d: bool(d.get("info", {}).get("description")),
    "exactly one server": lambda d: len(d.get("servers", [])) == 1,
    "the server is a domain": lambda d: len(d.get("servers", [])) == 1 and _domain_server(d),
    "server url <= 512": lambda d: all(len(s["url"]) <= 512 for s in d.get("servers", [])),
    "operationId everywhere": lambda d: all(op.get("operationId") for op in operations(d)),
    "summary everywhere": lambda d: all(op.get("summary") for op in operations(d)),
    "one application/json object body": _one_json_object_body,
    "only a 200 response": _only_200,
    "one application/json object response": _json_object_response,
    "every property typed, no unions, arrays with items": _typed,
}


def _first_op(doc: dict[str, Any]) -> dict[str, Any]:
    return next(operations(doc))


def _body(doc: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = _first_op(doc)["requestBody"]["content"]["application/json"]["schema"]
    return schema


def _set(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return fn


BREAKS: list[Any] = [
    pytest.param("openapi 3.0.1", _set(lambda d: d.__setitem__("openapi", "3.1.0")),
                 "unsupported openapi version '3.1.0': Coze imports OpenAPI 3.0 documents (3.0.1)", id="openapi-3.1"),
    pytest.param("info.title", _set(lambda d: d["info"].pop("title")), "the title of info is required", id="no-title"),
    pytest.param("info.description", _set(lambda d: d["info"].pop("description")),
                 "the description of info is required", id="no-description"),
    pytest.param("exactly one server", _set(lambda d: d["servers"].append({"url": "https://b.example.com"})),
                 "server is required and only one server is allowed", id="two-servers"),
    pytest.param("the server is a domain", _set(lambda d: d["servers"][0].__setitem__("url", "https://10.1.2.3:8443")),
                 "the plugin URL must be a domain name, IP addresses are not supported: 'https://10.1.2.3:8443'",
                 id="ip-server"),
    pytest.param("server url <= 512", _set(lambda d: d["servers"][0].__setitem__("url", "https://a.example.com/" + "p" * 600)),
                 "server url 'https://a.example.com/" + "p" * 600 + "' is too long", id="long-server-url"),
    pytest.param("operationId everywhere", _set(lambda d: _first_op(d).pop("operationId")), "operationID is required",
                 id="no-operation-id"),
    pytest.param("summary everywhere", _set(lambda d: _first_op(d).pop("summary")), "summary is required",
                 id="no-summary"),
    pytest.param("one application/json object body",
                 _set(lambda d: _first_op(d)["requestBody"]["content"].__setitem__("application/xml", {"schema": {"type": "object"}})),
                 "request body only supports one media type", id="two-body-media-types"),
    pytest.param("one application/json object body", _set(lambda d: _body(d).__setitem__("type", "array")),
                 "request body only supports 'object' type", id="array-body"),
    pytest.param("only a 200 response", _set(lambda d: _first_op(d)["responses"].__setitem__("400", {"description": "bad"})),
                 "response only supports '200' status", id="a-400-response"),
    pytest.param("one application/json object response",
                 _set(lambda d: _first_op(d)["responses"]["200"].__setitem__(
                     "content", {"text/plain": {"schema": {"type": "object"}}})),
                 "response only supports 'application/json' media type", id="text-response"),
    pytest.param("one application/json object response",
                 _set(lambda d: _first_op(d)["responses"]["200"]["content"]["application/json"]["schema"].__setitem__("type", "array")),
                 "response body only supports 'object' type", id="array-response"),
    pytest.param("every property typed, no unions, arrays with items",
                 _set(lambda d: _body(d)["properties"].__setitem__(
                     "x", {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None})),
                 "unsupported json type ''", id="pydantic-optional-in-body"),
    pytest.param("every property typed, no unions, arrays with items",
                 _set(lambda d: _body(d)["properties"].__setitem__("tags", {"type": "array"})),
                 "the items of array property 'tags' are required", id="array-without-items"),
    pytest.param("every property typed, no unions, arrays with items",
                 _set(lambda d: _body(d)["properties"].__setitem__("x", {"$ref": "#/components/schemas/Missing"})),
                 "cannot resolve the reference '#/components/schemas/Missing': nothing is defined there",
                 id="unresolved-ref"),
    pytest.param("every property typed, no unions, arrays with items",
                 _set(lambda d: _first_op(d)["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
                      .__setitem__("x", {"type": "string", "nullable": True})),
                 None, id="nullable-in-response"),  # Coze imports it; its answers then fail at call time
]


@pytest.fixture
def document(bridge: Runtime) -> dict[str, Any]:
    return generated(bridge.registry)


def test_the_generated_file_is_valid_openapi_3_0_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.0.1"
    validate_spec(document)  # raises OpenAPIValidationError with the path of the problem


@pytest.mark.parametrize("rule", list(COZE_RULES))
def test_the_generated_file_keeps_every_coze_rule(document: dict[str, Any], rule: str) -> None:
    assert COZE_RULES[rule](document), rule


def test_the_sandbox_importer_accepts_the_generated_file_as_it_is(bridge: Runtime, document: dict[str, Any]) -> None:
    server, tools = validate_openapi(yaml.safe_load(dump_yaml(document)))
    assert server == PLACEHOLDER_SERVER_URL
    assert sorted(t.name for t in tools) == sorted(operation_id(t.name) for t in bridge.registry.list())


@pytest.mark.parametrize(("rule", "breaks", "coze_message"), BREAKS)
def test_each_coze_rule_has_a_failing_case(
    document: dict[str, Any], rule: str, breaks: Callable[[dict[str, Any]], None], coze_message: str | None
) -> None:
    broken = copy.deepcopy(document)
    breaks(broken)
    failing = [name for name, check in COZE_RULES.items() if not check(broken)]
    assert rule in failing
    if coze_message is None:
        validate_openapi(broken)  # the importer lets it through (Coze checks this one only at call time)
        return
    with pytest.raises(PluginImportError) as refused:
        validate_openapi(broken)
    assert refused.value.rule == coze_message
    assert str(refused.value) == f"invalid plugin openapi3 document : {coze_message}"


def test_summaries_tell_the_model_when_to_call_and_long_tools_how_to_poll(document: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for op in operations(document)}
    assert "coffee question" in by_id["coffee_knowledge_query"]["summary"]
    assert "pending" in by_id["send_message"]["summary"]
    assert "get_chat_result" in by_id["send_message"]["summary"]
    response = by_id["send_message"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert response["properties"]["pending"]["properties"]["arguments"]["properties"]["chat_id"]["type"] == "string"
    assert "pending" not in by_id["coffee_knowledge_query"]["responses"]["200"]["content"]["application/json"]["schema"][
        "properties"]


# ---- schema conversion -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                                              "default": None, "title": "A"}}, "required": ["a"]},
                     {"type": "object", "properties": {"a": {"type": "string"}}}, id="optional-becomes-plain"),
        pytest.param({"anyOf": [{"enum": ["zh", "en"], "type": "string"}, {"type": "null"}], "description": "d"},
                     {"type": "string", "enum": ["zh", "en"], "description": "d"}, id="optional-literal"),
        pytest.param({"const": "x"}, {"type": "string", "enum": ["x"]}, id="const"),
        pytest.param({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 0,
                                                                   "exclusiveMinimum": True}, id="exclusive-minimum"),
        pytest.param({"type": "string", "examples": ["a", "b"]}, {"type": "string", "example": "a"}, id="examples"),
        pytest.param({"type": ["integer", "null"]}, {"type": "integer"}, id="type-list"),
        pytest.param({}, {"type": "string"}, id="any-value"),
        pytest.param({"type": "array"}, {"type": "array", "items": {"type": "string"}}, id="array-without-items"),
        pytest.param({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}], "description": "d"},
                     {"type": "object", "properties": {"a": {"type": "integer"}}, "description": "d"}, id="all-of"),
    ],
)
def test_json_schema_is_converted_to_the_shape_coze_imports(source: dict[str, Any], expected: dict[str, Any]) -> None:
    assert coze_schema(source) == expected


def test_a_recursive_schema_cannot_be_expressed() -> None:
    with pytest.raises(UnsupportedSchema, match="recursive"):
        coze_schema({"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("https://10.0.0.1", "IP address", id="ipv4"),
        pytest.param("http://[::1]:8080", "IP address", id="ipv6"),
        pytest.param("ftp://kai.example.com", "http(s) URL", id="not-http"),
        pytest.param("kai.example.com", "http(s) URL", id="no-scheme"),
        pytest.param("https://kai.example.com?x=1", "query", id="query"),
    ],
)
def test_a_server_url_coze_cannot_use_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match="IP address" if problem == "IP address" else None) as refused:
        check_server_url(url)
    assert problem in str(refused.value)


def test_a_domain_server_url_is_kept_without_its_trailing_slash() -> None:
    assert check_server_url("https://kai.example.com/bridge/") == "https://kai.example.com/bridge"
    assert check_server_url("http://localhost:8080") == "http://localhost:8080"


# ---- answers match the file --------------------------------------------------------------------
async def test_real_answers_and_errors_validate_against_the_declared_responses(bridge: Runtime,
                                                                               document: dict[str, Any]) -> None:
    schemas = {path.rsplit("/", 1)[1]: item["post"]["responses"]["200"]["content"]["application/json"]["schema"]
               for path, item in document["paths"].items()}
    async with face_client(bridge.registry) as (_, http):
        sent = (await http.post("/plugin/tools/send_message", json={"message": "What is a flat white?"})).json()
        answers = {
            "coffee_knowledge_query": (await http.post("/plugin/tools/coffee_knowledge_query",
                                                       json={"query": "埃塞俄比亚咖啡特点"})).json(),
            "send_message": sent,
            "get_chat_result": (await http.post("/plugin/tools/get_chat_result",
                                                json={"chat_id": sent["chat_id"]})).json(),
            "get_conversation_messages": (await http.post("/plugin/tools/get_conversation_messages", json={})).json(),
            "create_conversation": (await http.post("/plugin/tools/create_conversation", json={})).json(),
        }
        error = (await http.post("/plugin/tools/get_chat_result", json={"chat_id": "0000"})).json()
    for tool, answer in answers.items():
        assert "error_code" not in answer, (tool, answer)
        OAS30Validator(schemas[tool]).validate(answer)
    assert error["error_code"] == "tool_failed"
    OAS30Validator(schemas["get_chat_result"]).validate(error)


# ---- where the file comes from -----------------------------------------------------------------
async def test_the_face_serves_the_same_file_as_yaml_and_json(bridge: Runtime) -> None:
    expected = generated(bridge.registry, "https://kai.example.com")
    async with face_client(bridge.registry, public_url="https://kai.example.com") as (_, http):
        as_yaml = await http.get("/plugin/openapi.yaml")
        as_json = await http.get("/plugin/openapi.json")
        chosen = await http.get("/plugin/openapi.json", params={"tools": "send_message"})
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == expected
    assert as_json.json() == expected
    # a long tool brings the tool that fetches its result
    assert sorted(chosen.json()["paths"]) == ["/plugin/tools/get_chat_result", "/plugin/tools/send_message"]


async def test_the_served_file_takes_the_host_asked_for_and_refuses_an_ip(bridge: Runtime) -> None:
    async with face_client(bridge.registry) as (_, http):
        from_host = await http.get("/plugin/openapi.json")  # the client asked for http://kai.example.com
        from_ip = await http.get("/plugin/openapi.json", headers={"Host": "127.0.0.1:8080"})
        unknown = await http.get("/plugin/openapi.json", params={"tools": "nope"})
    assert from_host.json()["servers"] == [{"url": "http://kai.example.com"}]
    assert from_ip.status_code == 400
    assert "IP address" in from_ip.json()["error"]
    assert "KAI_BRIDGE_PLUGIN_PUBLIC_URL" in from_ip.json()["error"]
    assert unknown.status_code == 400
    assert "unknown tool(s) nope" in unknown.json()["error"]


def test_the_manifest_file_is_the_generated_file_for_the_default_tools(bridge: Runtime) -> None:
    expected = dump_yaml(generated(bridge.registry))
    assert MANIFEST.read_text(encoding="utf-8") == expected, (
        "manifests/coze-plugin/openapi.yaml is stale: regenerate it with "
        "`kai-bridge openapi --server-url https://kai-bridge.example.com --out manifests/coze-plugin/openapi.yaml`"
    )


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's state and logs go to the test's directory, not the user's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAI_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KAI_BRIDGE_LOG_DIR", str(tmp_path / "logs"))


def test_the_cli_writes_the_file_for_the_chosen_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    isolate(tmp_path, monkeypatch)
    out = tmp_path / "plugin.json"
    code = main(["openapi", "--server-url", "https://kai.example.com", "--tools", "coffee_knowledge_query",
                 "--out", str(out)])
    assert code == 0
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert list(doc["paths"]) == ["/plugin/tools/coffee_knowledge_query"]
    assert doc["servers"] == [{"url": "https://kai.example.com"}]
    validate_spec(doc)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["openapi", "--server-url", "https://192.168.1.10"], "IP address", id="ip"),
        pytest.param(["openapi"], "give --server-url", id="missing"),
        pytest.param(["openapi", "--server-url", "https://kai.example.com", "--tools", "nope"], "unknown tool(s) nope",
                     id="unknown-tool"),
    ],
)
def test_the_cli_refuses_what_coze_could_not_import(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], restore_logging: None,
) -> None:
    isolate(tmp_path, monkeypatch)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
