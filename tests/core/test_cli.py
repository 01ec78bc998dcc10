"""The kai-bridge command: usage errors and settings errors are one line and an exit code."""

from __future__ import annotations

import secrets

import pytest

import kai_bridge
from kai_bridge import cli
from kai_bridge.cli import COMMANDS, build_parser, main
from kai_bridge.cmd.call import first_sentence
from kai_bridge.cmd.common import settings_from_args


def test_every_documented_command_is_registered() -> None:
    parser = build_parser()
    help_text = parser.format_help()
    for name in COMMANDS:
        assert name in help_text


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_global_flags_work_after_the_subcommand() -> None:
    args = build_parser().parse_args(["doctor", "--debug", "--log-json"])
    assert args.debug is True
    assert args.log_json is True


def test_bad_settings_give_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object, restore_logging: None
) -> None:
    monkeypatch.setenv("KAI_BRIDGE_COZE_API_BASE", "not-a-url")
    monkeypatch.setenv("KAI_BRIDGE_LOG_DIR", str(tmp_path))
    assert main(["call", "coffee_knowledge_query", '{"query": "x"}']) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "coze_api_base" in err
    assert "Traceback" not in err


def test_a_command_module_that_cannot_be_imported_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "vanished"))
    with pytest.raises(ModuleNotFoundError, match=r"kai_bridge\.cmd\.vanished"):
        build_parser()


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"kai-bridge {kai_bridge.__version__}"


@pytest.mark.parametrize(
    ("description", "first"),
    [
        pytest.param("Cancel a chat that is still running (e.g. a long answer). Then ask again.",
                     "Cancel a chat that is still running (e.g. a long answer)", id="abbreviation-in-brackets"),
        pytest.param("Use a grinder, e.g. a burr grinder. It matters.", "Use a grinder, e.g. a burr grinder",
                     id="abbreviation-outside-brackets"),
        pytest.param("Answer from the base (v1.2 of it). More text.", "Answer from the base (v1.2 of it)",
                     id="dot-in-a-number"),
        pytest.param("One sentence only.", "One sentence only", id="single"),
        pytest.param("No stop at all", "No stop at all", id="no-stop"),
        pytest.param("回答咖啡问题。更多说明。", "回答咖啡问题", id="cjk-full-stop"),
        pytest.param("Is it ready? Then go.", "Is it ready", id="question"),
    ],
)
def test_call_list_shows_the_first_sentence_of_each_description(description: str, first: str) -> None:
    assert first_sentence(description) == first


def test_flag_overrides_win_and_unset_flags_are_ignored() -> None:
    args = build_parser().parse_args(["serve", "--port", "9123"])
    settings = settings_from_args(args, overrides={"server_port": args.port, "server_host": args.host})
    assert settings.server_port == 9123
    assert settings.server_host == "127.0.0.1"  # --host not given: the default stays


def test_serve_on_a_host_that_does_not_resolve_says_so(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    assert main(["serve", "--host", "not-a-host.invalid", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "server_host 'not-a-host.invalid' does not resolve" in err
    assert "reachable from the network" not in err


def test_the_sandbox_on_a_host_that_does_not_resolve_says_so(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    assert main(["sandbox", "--host", "not-a-host.invalid", "--port", "0"]) == 2
    assert "--host 'not-a-host.invalid' does not resolve" in capsys.readouterr().err


@pytest.mark.parametrize("question", [pytest.param("", id="empty"), pytest.param("   \n\t", id="blank")])
def test_a_blank_chat_question_is_refused_before_any_coze_call(
    question: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    # A Coze that cannot be reached: had the chat gone out, this would be a connection error (exit 1).
    monkeypatch.setenv("KAI_BRIDGE_COZE_API_BASE", "http://127.0.0.1:9")
    monkeypatch.setenv("KAI_BRIDGE_COZE_PAT", "pat_" + secrets.token_hex(16))
    assert main(["chat", question]) == 2
    err = capsys.readouterr().err
    assert "the question is empty" in err
    assert "Coze" not in err
