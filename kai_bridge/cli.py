"""The ``kai-bridge`` command: global flags, logging set-up, and dispatch to ``kai_bridge.cmd.*``.

Each subcommand lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Errors from the package are printed as one line (never a traceback)
and mapped to exit codes: 0 ok, 1 failure, 2 bad usage or settings, 130 interrupted.

Start-up cost matters for a command people type: the subcommand modules import only what
``add_arguments`` needs (argparse, pathlib), and their ``run`` imports the rest. So ``--help``
and ``keygen`` load neither the MCP SDK nor the HTTP stack, and the settings model is loaded
only once a command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kai_bridge import __version__
from kai_bridge.errors import ConfigError, KaiBridgeError

if TYPE_CHECKING:
    from kai_bridge.config import Settings

__all__ = ["build_parser", "main"]

COMMANDS = ("serve", "stdio", "call", "chat", "token", "keygen", "sandbox", "doctor", "events", "openapi")
_log = logging.getLogger("kai_bridge.cli")


def _command_modules() -> dict[str, ModuleType]:
    # Every command is imported: a module that fails to import is a bug to see, not a command
    # to leave out of the help.
    return {name: importlib.import_module(f"kai_bridge.cmd.{name}") for name in COMMANDS}


def _add_global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--config", type=Path, default=default(None), help="TOML settings file (or KAI_BRIDGE_CONFIG)"
    )
    parser.add_argument(
        "--debug", action="store_true", default=default(False), help="debug logging (--log-level DEBUG)"
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=default(None))
    parser.add_argument(
        "--log-json", action="store_true", default=default(False), help="log one JSON object per line"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kai-bridge",
        description="MCP server that bridges KAI tools and Coze agents (with a Coze-compatible sandbox).",
    )
    parser.add_argument("--version", action="version", version=f"kai-bridge {__version__}")
    _add_global_flags(parser, suppress=False)
    # The same flags after the subcommand (``kai-bridge serve --debug``); SUPPRESS keeps the
    # value given before the subcommand when they are not repeated.
    common = argparse.ArgumentParser(add_help=False)
    _add_global_flags(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules().items():
        sub_parser = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def _secrets_of(settings: Settings) -> list[str]:
    values = [settings.coze_pat, settings.coze_private_key, settings.mcp_auth_token, settings.admin_token,
              settings.plugin_token]
    values += [settings.webhook_verify_token, settings.webhook_token]
    values += [u.api_key for u in settings.upstreams]
    values += settings.mcp_client_tokens
    return [v.get_secret_value() for v in values if v is not None]


def _setup_logging(args: argparse.Namespace) -> None:
    from kai_bridge.config import load_settings
    from kai_bridge.logs import configure_logging

    level = "DEBUG" if args.debug else args.log_level
    try:
        settings = load_settings(config_file=args.config, check_files=False)
    except KaiBridgeError:
        # The command itself will report the settings problem; log to stderr meanwhile.
        configure_logging(level=level or "INFO", json_format=args.log_json)
        return
    problems = configure_logging(
        level=level or ("DEBUG" if settings.debug else settings.log_level),
        json_format=args.log_json or settings.log_json,
        log_dir=settings.log_dir if settings.log_files else None,
        secrets=_secrets_of(settings),
    )
    for problem in problems:
        _log.warning(problem)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args)
    from kai_bridge.logs import redact

    try:
        code: int = args._run(args)
    except ConfigError as exc:
        print(f"kai-bridge: configuration error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KaiBridgeError as exc:
        print(f"kai-bridge: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
