"""Event routes: which events a route takes, and how it builds the tool's arguments (no code run)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import JsonValue

from kai_bridge.config import WebhookRoute, load_settings
from kai_bridge.errors import ConfigError
from kai_bridge.webhooks.event_routes import CompiledRoute, EventDocument, MappingError, compile_routes


def doc(body: dict[str, JsonValue], event_type: str = "conversation.message") -> EventDocument:
    return EventDocument(body=body, event_type=event_type, event_id="ev1", source="token", received_at=12.5)


def route(**fields: Any) -> CompiledRoute:
    values: dict[str, Any] = {"event_type": "conversation.message", "tool": "send_message"}
    values.update(fields)
    [compiled] = compile_routes([WebhookRoute(**values)])
    return compiled


SEED: dict[str, JsonValue] = {
    "event": "conversation.message",
    "data": {"conversation_id": "conv_123", "message": "Hello from Coze", "n": 3, "tags": ["a", "b"],
             "user": {"id": 7}},
}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param({"message": "${data.message}"}, {"message": "Hello from Coze"}, id="whole-string"),
        pytest.param({"n": "${data.n}"}, {"n": 3}, id="whole-keeps-the-number"),
        pytest.param({"user": "${data.user}"}, {"user": {"id": 7}}, id="whole-keeps-the-object"),
        pytest.param({"first": "${data.tags.0}"}, {"first": "a"}, id="list-index"),
        pytest.param({"text": "conv ${data.conversation_id}: ${data.message}"},
                     {"text": "conv conv_123: Hello from Coze"}, id="interpolated"),
        pytest.param({"text": "user=${data.user}"}, {"text": 'user={"id":7}'}, id="interpolated-object-as-json"),
        pytest.param({"text": "costs $${price}"}, {"text": "costs ${price}"}, id="escaped"),
        pytest.param({"meta": {"type": "${@type}", "id": "${@id}", "src": "${@source}", "at": "${@received_at}"}},
                     {"meta": {"type": "conversation.message", "id": "ev1", "src": "token", "at": 12.5}},
                     id="special-names-nested"),
        pytest.param({"list": ["${data.n}", "x", 1]}, {"list": [3, "x", 1]}, id="inside-a-list"),
        pytest.param({"literal": 5, "flag": True, "plain": "no placeholders"},
                     {"literal": 5, "flag": True, "plain": "no placeholders"}, id="literals-pass-through"),
    ],
)
def test_arguments_are_mapped_from_the_event(arguments: dict[str, Any], expected: dict[str, Any]) -> None:
    assert route(arguments=arguments).arguments(doc(SEED)) == expected


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"message": "${data.missing}"}, id="missing-key"),
        pytest.param({"message": "${data.tags.5}"}, id="index-out-of-range"),
        pytest.param({"message": "says ${data.message.deeper}"}, id="through-a-string"),
    ],
)
def test_a_path_the_event_lacks_fails_with_its_name(arguments: dict[str, Any]) -> None:
    with pytest.raises(MappingError, match=r"is not in the event"):
        route(arguments=arguments).arguments(doc(SEED))


@pytest.mark.parametrize(
    ("fields", "applies"),
    [
        pytest.param({}, True, id="exact-type"),
        pytest.param({"event_type": "conversation.*"}, True, id="glob"),
        pytest.param({"event_type": "*"}, True, id="any"),
        pytest.param({"event_type": "bot.published"}, False, id="other-type"),
        pytest.param({"match": {"data.conversation_id": "conv_123"}}, True, id="match-equal"),
        pytest.param({"match": {"data.conversation_id": "conv_9"}}, False, id="match-different"),
        pytest.param({"match": {"data.nothing": "x"}}, False, id="match-missing-field"),
        pytest.param({"match": {"data.user.id": "7"}}, True, id="string-matches-numeric-id"),
        pytest.param({"match": {"data.n": True}}, False, id="bool-is-not-a-number"),
        pytest.param({"match": {"@source": "token"}}, True, id="match-special-name"),
    ],
)
def test_a_route_applies_to_events_of_its_type_that_match(fields: dict[str, Any], applies: bool) -> None:
    assert route(**fields).applies(doc(SEED)) is applies


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        pytest.param({"arguments": {"m": "${}"}}, "not a field path", id="empty-path"),
        pytest.param({"arguments": {"m": "${data..message}"}}, "not a field path", id="empty-segment"),
        pytest.param({"arguments": {"m": "${@nope}"}}, "names starting with @", id="unknown-special"),
        pytest.param({"match": {"data message": "x"}}, "not a field path", id="space-in-match-path"),
    ],
)
def test_a_malformed_route_is_a_config_error_naming_it(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        route(name="r1", **fields)
    assert "r1" in str(info.value)


def test_routes_come_from_toml_and_json_environment(tmp_path: Any) -> None:
    config = tmp_path / "kai.toml"
    config.write_text(
        '[[webhook_routes]]\nname = "ask"\nevent_type = "conversation.message"\ntool = "send_message"\n'
        'arguments = { message = "${data.message}", conversation_id = "${data.conversation_id}" }\n',
        encoding="utf-8",
    )
    from_toml = load_settings(config_file=config, environ={}, check_files=False)
    env = '[{"event_type": "bot.deleted", "tool": "notify.send", "arguments": {"text": "gone: ${event.bot_id}"}}]'
    from_env = load_settings(environ={"KAI_BRIDGE_WEBHOOK_ROUTES": env}, check_files=False)
    assert from_toml.webhook_routes[0].arguments == {"message": "${data.message}",
                                                     "conversation_id": "${data.conversation_id}"}
    assert from_env.webhook_routes[0].label == "bot.deleted->notify.send"


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        pytest.param({"webhook_routes": [{"event_type": "a", "tool": "bad tool"}]}, "tool", id="bad-tool-name"),
        pytest.param({"webhook_routes": [{"event_type": "", "tool": "t"}]}, "event_type", id="empty-type"),
        pytest.param({"webhook_routes": [{"event_type": "a", "tool": "t", "code": "x"}]}, "code", id="unknown-key"),
        pytest.param({"webhook_routes": [{"name": "x", "event_type": "a", "tool": "t"},
                                         {"name": "x", "event_type": "b", "tool": "t"}]}, "unique", id="same-name"),
        pytest.param({"webhook_token": "   "}, "whitespace", id="blank-token"),
        pytest.param({"webhook_verify_token": " abc "}, "whitespace", id="padded-token"),
        pytest.param({"webhook_audit_status": "maybe"}, "webhook_audit_status", id="bad-audit"),
    ],
)
def test_bad_webhook_settings_are_refused_by_name(values: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        load_settings(environ={}, overrides=values, check_files=False)
    assert "   " not in str(info.value)  # secrets are not echoed
    assert " abc " not in str(info.value)


def test_a_bad_routes_environment_value_says_it_must_be_json() -> None:
    with pytest.raises(ConfigError, match="KAI_BRIDGE_WEBHOOK_ROUTES must be a JSON list"):
        load_settings(environ={"KAI_BRIDGE_WEBHOOK_ROUTES": "[{oops"}, check_files=False)
