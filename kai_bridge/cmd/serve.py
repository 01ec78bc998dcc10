"""``kai-bridge serve``: MCP over Streamable HTTP plus health, readiness and diagnostics, one port.

The HTTP stack and the MCP SDK are imported when the command runs, not when the CLI builds
its parser (see :mod:`kai_bridge.cli`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kai_bridge.errors import ConfigError

if TYPE_CHECKING:
    from kai_bridge.config import Settings
    from kai_bridge.mcp.server import McpExtension

__all__ = ["HELP", "add_arguments", "load_extensions", "run", "serve"]

HELP = "serve MCP (Streamable HTTP) with /health, /ready and /diagnostics on one port"
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="interface to listen on (default: settings server_host)")
    parser.add_argument("--port", type=int, default=None, help="port (default: settings server_port; 0 = any)")
    parser.add_argument(
        "--ready-file", type=Path, default=None, metavar="FILE",
        help="write the MCP URL to FILE once listening (for scripts that start the server)",
    )
    parser.add_argument(
        "--extension", action="append", default=[], metavar="MODULE:FUNCTION",
        help="TEST-ONLY: call FUNCTION(server) to add MCP fixtures (used by the conformance run)",
    )


def load_extensions(specs: Sequence[str]) -> list[McpExtension]:
    """Import ``module:function`` specs (test-only fixture packs) as server extensions."""
    extensions: list[McpExtension] = []
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise ConfigError(f"--extension {spec!r}: use MODULE:FUNCTION, e.g. tests.conformance.fixtures:install")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"--extension {spec!r}: cannot import {module_name} ({exc})") from None
        function = getattr(module, attr, None)
        if not callable(function):
            raise ConfigError(f"--extension {spec!r}: {module_name} has no callable {attr}")
        logger.warning("TEST-ONLY extension %s installed on the MCP server", spec)
        extensions.append(function)
    return extensions


async def serve(
    settings: Settings,
    *,
    extensions: Sequence[McpExtension] = (),
    ready_file: Path | None = None,
    handle_signals: bool = True,
    on_started: Callable[[str], None] | None = None,
    reload_settings: Callable[[], Settings] | None = None,
) -> None:
    """Run the HTTP server until a signal (or ``should_exit``) stops it.

    ``reload_settings``: on SIGHUP, load the settings again with it and rotate the Coze
    credential (:mod:`kai_bridge.cmd.reload`); the command passes it, in-process callers need not.
    """
    from kai_bridge.cmd.common import write_ready_file
    from kai_bridge.cmd.reload import reloading_on_sighup
    from kai_bridge.config import check_host_resolves
    from kai_bridge.http.app import build_app
    from kai_bridge.http.security import check_http_security
    from kai_bridge.http.server import AppServer, bind_socket, url_of
    from kai_bridge.runtime import open_runtime

    check_host_resolves(settings.server_host, name="server_host")
    check_http_security(settings)
    sock = bind_socket(settings.server_host, settings.server_port)
    try:
        async with open_runtime(settings, dispatch_events=settings.webhook_dispatch) as runtime:
            app = build_app(runtime, extensions=extensions)
            url = url_of(sock, settings.mcp_path)

            def started() -> None:
                logger.info("kai-bridge MCP endpoint: %s (health: %s)", url, url_of(sock, "/health"))
                if ready_file is not None:
                    write_ready_file(ready_file, url)
                if on_started is not None:
                    on_started(url)

            reloading = (reloading_on_sighup(runtime.coze, current=settings, load=reload_settings)
                         if reload_settings is not None else contextlib.nullcontext())
            server = AppServer(
                app,
                handle_signals=handle_signals,
                access_log=settings.debug,
                on_started=started,
                request_timeout=settings.server_request_timeout,
                keep_alive_timeout=settings.server_keep_alive_timeout,
                max_connections=settings.server_max_connections,
            )
            async with reloading:
                await server.serve(sockets=[sock])
    finally:
        sock.close()


def run(args: argparse.Namespace) -> int:
    import anyio

    from kai_bridge.cmd.common import FlagOverrides, settings_from_args

    overrides: FlagOverrides = {"server_host": args.host, "server_port": args.port}
    settings = settings_from_args(args, overrides=overrides)
    extensions = load_extensions(args.extension)
    anyio.run(lambda: serve(settings, extensions=extensions, ready_file=args.ready_file,
                            reload_settings=lambda: settings_from_args(args, check_files=False, overrides=overrides)))
    return 0
