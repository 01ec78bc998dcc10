"""Small parts of the sandbox: chunking, tool-output answers, answerers, config checks, exports."""

from __future__ import annotations

import pytest

import kai_bridge.sandbox as sandbox_pkg
from kai_bridge.keys import generate_key_pair
from kai_bridge.sandbox import (
    BuiltinAnswerer,
    FaultRule,
    KnowledgeAnswerer,
    SandboxConfig,
    answerer_name,
    default_answerer,
    public_key_kid,
)
from kai_bridge.sandbox.engine import answer_from_tool_output, split_chunks


@pytest.mark.parametrize(
    "text",
    [
        "Espresso is brewed by forcing water at about 9 bar through finely ground coffee.",
        "意式浓缩是用约 9 bar 的压力、90–96 °C 的热水快速穿过细研磨咖啡粉制成的。",
        "short",
        "",
    ],
)
def test_chunks_are_small_and_add_up_to_the_text(text: str) -> None:
    chunks = split_chunks(text, words=2)

    assert "".join(chunks) == text
    if len(text) > 20:
        assert len(chunks) > 3
        assert max(len(c) for c in chunks) < len(text) / 2


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        pytest.param('{"answer": "A"}', "A", id="answer-field"),
        pytest.param('{"result": {"answer": "B"}}', "B", id="nested"),
        pytest.param('{"text": "C", "sources": []}', "C", id="text-field"),
        pytest.param('"D"', "D", id="json-string"),
        pytest.param("  E  ", "E", id="raw"),
        pytest.param(
            '{"content": [{"type": "text", "text": "F1"}, {"type": "text", "text": "F2"}]}', "F1\nF2", id="mcp"
        ),
        pytest.param('{"score": 3}', '{"score": 3}', id="json-without-text"),
    ],
)
def test_the_plugin_answer_comes_from_the_output(output: str, answer: str) -> None:
    assert answer_from_tool_output(output) == answer


def test_builtin_answers_follow_the_question_language() -> None:
    answerer = BuiltinAnswerer()

    english = answerer("How much caffeine is in a cup of coffee?")
    chinese = answerer("一杯咖啡有多少咖啡因？")

    assert "caffeine" in english
    assert "咖啡因" in chinese
    assert answerer("Tell me something") != answerer("随便说说")


def test_the_default_answerer_uses_the_knowledge_package_when_present() -> None:
    chosen = default_answerer()

    assert isinstance(chosen, KnowledgeAnswerer)
    assert answerer_name(chosen) == "knowledge"
    answer = chosen("What is a washed process?")
    assert "wash" in answer.lower()


def test_the_kid_is_the_sha256_of_the_der_public_key() -> None:
    pair = generate_key_pair()

    assert public_key_kid(pair.public_pem) == pair.kid
    assert public_key_kid(pair.public_pem.decode()) == pair.kid


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"latency_ms": -1},
        {"error_status": 404},
        {"times": 0},
        {"route": ""},
        {"cut_stream_after_events": -1},
    ],
)
def test_fault_rules_reject_impossible_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        FaultRule(**kwargs)  # type: ignore[arg-type]


def test_the_config_keeps_secrets_out_of_its_repr() -> None:
    config = SandboxConfig(pats=["pat_secret_value"], admin_token="admin_secret_value")

    assert "secret_value" not in repr(config)


def test_the_public_interface_is_pinned() -> None:
    assert set(sandbox_pkg.__all__) == {
        "COFFEE_BOT_ID",
        "DEFAULT_WORKSPACE_ID",
        "PLUGIN_BOT_ID",
        "TOOL_NAME",
        "Answerer",
        "BuiltinAnswerer",
        "FaultRule",
        "KnowledgeAnswerer",
        "RegisteredApp",
        "SandboxConfig",
        "SandboxHandle",
        "SandboxState",
        "answerer_name",
        "create_app",
        "default_answerer",
        "public_key_kid",
        "sandbox_context",
        "start_sandbox",
    }
    assert sandbox_pkg.COFFEE_BOT_ID != sandbox_pkg.PLUGIN_BOT_ID
    assert len(sandbox_pkg.COFFEE_BOT_ID) == len(sandbox_pkg.PLUGIN_BOT_ID) == 19

