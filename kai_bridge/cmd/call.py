"""``kai-bridge call TOOL JSON``: one tool call from the shell, through the same registry as MCP.

The structured result is printed as JSON on stdout. A tool error is one line on stderr and
exit code 1; bad JSON or an unknown tool is exit code 2. ``--list`` lists the tools.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import anyio

from kai_bridge.config import Settings
from kai_bridge.errors import ToolError, ToolInputError, ToolNotFoundError
from kai_bridge.logs import redact
from kai_bridge.tools.registry import Door, NullToolContext

if TYPE_CHECKING:
    from kai_bridge.runtime import Runtime

__all__ = ["HELP", "add_arguments", "call_on", "call_tool", "run"]

HELP = "call one tool (same registry as MCP) and print its JSON result; --list lists tools"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", nargs="?", help="tool name, e.g. coffee_knowledge_query")
    parser.add_argument("arguments", nargs="?", default="{}", help='JSON object, e.g. \'{"query": "espresso"}\'')
    parser.add_argument("--list", action="store_true", help="list the tools and exit")
    parser.add_argument("--user-id", default=None, help="caller identity for conversation tools (default 'cli')")
    parser.add_argument("--compact", action="store_true", help="print the result on one line")


async def call_tool(settings: Settings, *, name: str | None, arguments: dict[str, Any], listing: bool,
                    user_id: str) -> tuple[int, str]:
    """Run the call (or the listing) against a runtime; returns (exit code, stdout text)."""
    from kai_bridge.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        if listing:
            lines = []
            for tool in runtime.registry.list():
                first = tool.description.split(". ")[0].rstrip(".")
                lines.append(f"{tool.name}\t{tool.title}\t{first}")
            return 0, "\n".join(lines)
        if name is None:
            raise ToolNotFoundError("no tool named: give TOOL (or --list)")
        return 0, await call_on(runtime, name=name, arguments=arguments, user_id=user_id)


async def call_on(runtime: Runtime, *, name: str, arguments: dict[str, Any], user_id: str) -> str:
    """The CLI door's call on an open runtime: the result as indented JSON (ToolError on failure)."""
    result = await runtime.registry.call(name, arguments, ctx=NullToolContext(caller_id=user_id, door=Door.CLI))
    return json.dumps(result, ensure_ascii=False, indent=2)


def run(args: argparse.Namespace) -> int:
    from kai_bridge.cmd.common import settings_from_args

    if not args.list and not args.tool:
        print("kai-bridge call: name a tool (or use --list)", file=sys.stderr)
        return 2
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        print(f"kai-bridge call: ARGUMENTS is not valid JSON: {exc.msg} at column {exc.colno}", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print("kai-bridge call: ARGUMENTS must be a JSON object, e.g. '{\"query\": \"espresso\"}'", file=sys.stderr)
        return 2
    settings = settings_from_args(args)
    try:
        code, text = anyio.run(
            lambda: call_tool(settings, name=args.tool, arguments=arguments, listing=args.list,
                              user_id=args.user_id or "cli")
        )
    except (ToolNotFoundError, ToolInputError) as exc:
        print(f"kai-bridge call: {redact(str(exc))}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"kai-bridge call: tool error: {redact(str(exc))}", file=sys.stderr)
        return 1
    if args.compact and not args.list:
        text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    print(text)
    return code
