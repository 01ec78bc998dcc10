"""The kai-bridge command: usage errors and settings errors are one line and an exit code."""

from __future__ import annotations

import pytest

from kai_bridge.cli import COMMANDS, build_parser, main


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
