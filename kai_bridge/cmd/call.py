"""``kai-bridge call TOOL JSON``: one tool call from the shell, through the same registry as MCP.

The structured result is printed as JSON on stdout. A tool error is one line on stderr and
exit code 1; bad JSON or an unknown tool is exit code 2. ``--list`` lists the tools.

Upstream KAI servers connect in the background, as under ``serve``; a one-shot call cannot
wait for a ``tools/list_changed`` though, so it waits (at most ``--wait`` seconds) for the
upstream whose tool it calls (``kai.<tool>`` waits for upstream ``kai``), and ``--list`` for
all of them. A local tool waits for nothing. The embedded sandbox is started only if a tool
talks to Coze, so a local call starts no HTTP server.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from kai_bridge.errors import ToolError, ToolInputError, ToolNotFoundError, UpstreamToolError

if TYPE_CHECKING:
    from kai_bridge.config import Settings
    from kai_bridge.runtime import Runtime

__all__ = ["HELP", "add_arguments", "call_on", "call_tool", "first_sentence", "run"]

HELP = "call one tool (same registry as MCP) and print its JSON result; --list lists tools"
DEFAULT_WAIT = 10.0

# A sentence ends at . ! ? followed by white space (or the end), or at a CJK full stop; never
# inside brackets, and not after the abbreviations tool descriptions use.
_ENDS = re.compile(r"[.!?](?=\s|$)|[。！？]")
_ABBREVIATION = re.compile(r"(?:^|[\s(])(?:e\.g|i\.e|etc|vs|cf|approx)\.$", re.IGNORECASE)


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` without its final stop (all of it when it has one sentence)."""
    depth = 0
    opened, closed = "([{（【", ")]}）】"
    for index, char in enumerate(text):
        if char in opened:
            depth += 1
        elif char in closed:
            depth = max(0, depth - 1)
        elif depth == 0 and _ENDS.match(text, index):
            if char == "." and _ABBREVIATION.search(text, 0, index + 1):
                continue
            return text[:index].strip()
    return text.strip().rstrip(".。")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", nargs="?", help="tool name, e.g. coffee_knowledge_query")
    parser.add_argument("arguments", nargs="?", default="{}", help='JSON object, e.g. \'{"query": "espresso"}\'')
    parser.add_argument("--list", action="store_true", help="list the tools and exit")
    parser.add_argument("--user-id", default=None, help="caller identity for conversation tools (default 'cli')")
    parser.add_argument("--compact", action="store_true", help="print the result on one line")
    parser.add_argument(
        "--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
        help=f"how long to wait for configured upstream KAI servers to connect (default {DEFAULT_WAIT:g})",
    )


def _upstream_of(runtime: Runtime, name: str) -> str | None:
    prefix, dot, _ = name.partition(".")
    configured = {u.name for u in runtime.settings.upstreams}
    return prefix if dot and prefix in configured else None


def _not_connected(runtime: Runtime, names: set[str], wait: float) -> list[str]:
    lines = []
    for diag in runtime.upstreams.diagnostics():
        if diag["name"] in names and diag["state"] != "connected":
            why = f": {diag['last_error']}" if diag.get("last_error") else ""
            lines.append(f"upstream KAI server '{diag['name']}' is not connected after {wait:g} s ({diag['state']}){why}")
    return lines


async def call_tool(
    settings: Settings,
    *,
    name: str | None,
    arguments: dict[str, Any],
    listing: bool,
    user_id: str,
    wait: float = DEFAULT_WAIT,
) -> tuple[int, str]:
    """Run the call (or the listing) against a runtime; returns (exit code, stdout text)."""
    from kai_bridge.runtime import open_runtime

    async with open_runtime(settings, sandbox_on_demand=True) as runtime:
        if listing:
            names = {u.name for u in settings.upstreams}
            if names:
                await runtime.upstreams.wait_ready(wait)
            for line in _not_connected(runtime, names, wait):
                print(f"kai-bridge call: note: {line}; its tools are not listed", file=sys.stderr)
            lines = [
                f"{tool.name}\t{tool.title}\t{first_sentence(tool.description)}" for tool in runtime.registry.list()
            ]
            return 0, "\n".join(lines)
        if name is None:
            raise ToolNotFoundError("no tool named: give TOOL (or --list)")
        upstream = _upstream_of(runtime, name)
        if upstream is not None and not await runtime.upstreams.wait_ready(wait, names=[upstream]):
            (line,) = _not_connected(runtime, {upstream}, wait)
            raise UpstreamToolError(f"{line}. Tool '{name}' was not called; `kai-bridge doctor` checks the upstream")
        return 0, await call_on(runtime, name=name, arguments=arguments, user_id=user_id)


async def call_on(runtime: Runtime, *, name: str, arguments: dict[str, Any], user_id: str) -> str:
    """The CLI door's call on an open runtime: the result as indented JSON (ToolError on failure)."""
    from kai_bridge.tools.registry import Door, NullToolContext

    result = await runtime.registry.call(name, arguments, ctx=NullToolContext(caller_id=user_id, door=Door.CLI))
    return json.dumps(result, ensure_ascii=False, indent=2)


def run(args: argparse.Namespace) -> int:
    import anyio

    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.logs import redact

    if not args.list and not args.tool:
        print("kai-bridge call: name a tool (or use --list)", file=sys.stderr)
        return 2
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        print(
            f"kai-bridge call: ARGUMENTS is not valid JSON: {exc.msg} at column {exc.colno}; "
            "pass one JSON object, e.g. '{\"query\": \"espresso\"}'",
            file=sys.stderr,
        )
        return 2
    if not isinstance(arguments, dict):
        print("kai-bridge call: ARGUMENTS must be a JSON object, e.g. '{\"query\": \"espresso\"}'", file=sys.stderr)
        return 2
    if not args.wait >= 0:
        print("kai-bridge call: --wait must be 0 or more seconds", file=sys.stderr)
        return 2
    settings = settings_from_args(args)
    try:
        code, text = anyio.run(
            lambda: call_tool(settings, name=args.tool, arguments=arguments, listing=args.list,
                              user_id=args.user_id or "cli", wait=args.wait)
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
