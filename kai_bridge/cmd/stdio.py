"""``kai-bridge stdio``: MCP over stdin/stdout for desktop agents, with the operator sidecar.

stdout is the MCP wire: nothing else may write to it (logs go to stderr and files; the
transport also points fd 1 at stderr while serving, see :mod:`kai_bridge.mcp.stdio`). The sidecar (/health, /ready, /diagnostics, /webhook/coze) runs
in the same event loop on ``settings.stdio_sidecar_port``; if that port is taken (a second
desktop agent started another copy), the MCP server runs on without it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kai_bridge.cmd.common import FlagOverrides
from kai_bridge.errors import ConfigError

if TYPE_CHECKING:
    from kai_bridge.config import Settings
    from kai_bridge.mcp.server import McpExtension

__all__ = ["HELP", "add_arguments", "run", "run_stdio"]

HELP = "serve MCP over stdio (for desktop agents); operator sidecar on its own port"
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sidecar-port", type=int, default=None, help="sidecar port (default: settings; 0 = any)")
    parser.add_argument("--no-sidecar", action="store_true", help="do not start the HTTP sidecar")
    parser.add_argument(
        "--extension", action="append", default=[], metavar="MODULE:FUNCTION",
        help="TEST-ONLY: call FUNCTION(server) to add MCP fixtures",
    )


def _sidecar_socket(settings: Settings) -> socket.socket | None:
    from kai_bridge.http.server import bind_socket

    try:
        return bind_socket(settings.server_host, settings.stdio_sidecar_port)
    except ConfigError as exc:
        logger.warning("sidecar not started: %s; MCP over stdio continues without it", exc)
        return None


async def run_stdio(settings: Settings, *, extensions: Sequence[McpExtension] = (),
                    reload_settings: Callable[[], Settings] | None = None) -> None:
    """Serve MCP on this process's stdin/stdout until the client closes stdin.

    ``reload_settings``: as for ``serve``, SIGHUP reloads with it and rotates the Coze credential.
    """
    import anyio

    from kai_bridge.cmd.reload import reloading_on_sighup
    from kai_bridge.http.app import build_sidecar_app
    from kai_bridge.http.server import AppServer, url_of
    from kai_bridge.mcp.events import events_extension
    from kai_bridge.mcp.knowledge import extensions_for
    from kai_bridge.mcp.server import build_mcp_server
    from kai_bridge.mcp.stdio import stdio_transport
    from kai_bridge.runtime import open_runtime
    from kai_bridge.tools import Door

    async with open_runtime(settings, dispatch_events=settings.webhook_dispatch) as runtime:
        server = build_mcp_server(
            runtime.registry,
            extensions=[*extensions_for(runtime.knowledge), events_extension(runtime.webhooks.feed), *extensions],
            door=Door.MCP_STDIO,
        )
        sock = _sidecar_socket(settings) if settings.stdio_sidecar else None
        sidecar = (
            AppServer(
                build_sidecar_app(runtime),
                handle_signals=False,
                request_timeout=settings.server_request_timeout,
                keep_alive_timeout=settings.server_keep_alive_timeout,
                max_connections=settings.server_max_connections,
            )
            if sock is not None
            else None
        )
        reloading = (reloading_on_sighup(runtime.coze, current=settings, load=reload_settings)
                     if reload_settings is not None else contextlib.nullcontext())
        try:
            async with reloading, anyio.create_task_group() as tg:
                if sidecar is not None and sock is not None:
                    logger.info("sidecar listening on %s", url_of(sock, "/health"))
                    tg.start_soon(sidecar.serve, [sock])
                async with stdio_transport() as (read_stream, write_stream):
                    await server.run(read_stream, write_stream, server.create_initialization_options())
                logger.info("stdin closed: stopping")
                if sidecar is not None:
                    sidecar.should_exit = True
        finally:
            if sock is not None:
                sock.close()


def run(args: argparse.Namespace) -> int:
    import anyio

    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.cmd.serve import load_extensions

    overrides: FlagOverrides = {"stdio_sidecar_port": args.sidecar_port}
    if args.no_sidecar:
        overrides["stdio_sidecar"] = False
    settings = settings_from_args(args, overrides=overrides)
    extensions = load_extensions(args.extension)
    anyio.run(lambda: run_stdio(settings, extensions=extensions,
                                reload_settings=lambda: settings_from_args(args, check_files=False,
                                                                           overrides=overrides)))
    return 0
