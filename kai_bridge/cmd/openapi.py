"""``kai-bridge openapi``: the OpenAPI 3.0.1 file of the Coze plugin face, generated from the tool registry.

The same document ``GET /plugin/openapi.yaml`` serves, for a server URL given here: import it into
Coze (see ``manifests/coze-plugin/README.md``). The registry is the runtime's, so tools of
configured upstream KAI servers are included. Printed on stdout (or written to ``--out``);
tools whose schemas cannot be expressed for Coze are left out with a warning on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kai_bridge.config import Settings

__all__ = ["HELP", "add_arguments", "generate", "run"]

HELP = "print the Coze plugin's OpenAPI 3.0.1 file, generated from the tool registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server-url", default=None, metavar="URL",
        help="where Coze reaches this server, a domain (not an IP), e.g. https://kai.example.com "
        "(default: settings plugin_public_url)",
    )
    parser.add_argument(
        "--tools", action="append", default=[], metavar="NAMES",
        help="comma-separated tools to include (repeatable; default: settings plugin_tools, else all)",
    )
    parser.add_argument("--format", choices=["yaml", "json"], default=None, help="default: from --out, else yaml")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="write here instead of stdout")


async def generate(settings: Settings, *, server_url: str, tools: list[str], fmt: str) -> tuple[str, list[str]]:
    """(the document text, the tools left out with why) for the runtime's registry."""
    from kai_bridge.plugin.openapi import build_openapi, dump_json, dump_yaml, select_tools
    from kai_bridge.runtime import open_runtime

    async with open_runtime(settings, announce=lambda _text: None) as runtime:
        chosen = select_tools(runtime.registry, tools or settings.plugin_tools)
        doc, skipped = build_openapi(chosen, server_url=server_url, wait=settings.plugin_wait, registry=runtime.registry)
    return (dump_json(doc) if fmt == "json" else dump_yaml(doc)), skipped


def run(args: argparse.Namespace) -> int:
    import anyio

    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.plugin.openapi import check_server_url

    settings = settings_from_args(args)
    url = args.server_url or settings.plugin_public_url
    if not url:
        print("kai-bridge openapi: give --server-url https://your.domain (where Coze reaches kai-bridge)",
              file=sys.stderr)
        return 2
    try:
        url = check_server_url(url)
    except ValueError as exc:
        print(f"kai-bridge openapi: {exc}", file=sys.stderr)
        return 2
    names = [n.strip() for item in args.tools for n in item.split(",") if n.strip()]
    fmt = args.format or ("json" if args.out is not None and args.out.suffix == ".json" else "yaml")
    try:
        text, skipped = anyio.run(lambda: generate(settings, server_url=url, tools=names, fmt=fmt))
    except ValueError as exc:
        print(f"kai-bridge openapi: {exc}", file=sys.stderr)
        return 2
    for line in skipped:
        print(f"kai-bridge openapi: left out {line}", file=sys.stderr)
    if args.out is not None:
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"kai-bridge openapi: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0
