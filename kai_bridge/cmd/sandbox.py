"""``kai-bridge sandbox``: serve the Coze-compatible sandbox alone, for cozepy, curl or kai-bridge.

Prints where it listens, the workspace and bot ids, and the registered JWT apps (app id and
kid) to stdout, then serves until Ctrl-C or SIGTERM. PATs and the admin token are never
printed back.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kai_bridge.errors import ConfigError

if TYPE_CHECKING:
    from kai_bridge.sandbox import FaultRule, SandboxConfig
    from kai_bridge.sandbox.plugins import PluginSource

__all__ = ["DEFAULT_CHUNK_DELAY_MS", "HELP", "add_arguments", "build_config", "run"]

HELP = "run the Coze-compatible sandbox API (offline Coze for cozepy, curl and kai-bridge)"
#: The pace Coze streams at, roughly; the embedded sandbox's default (``sandbox_stream_delay``) too.
DEFAULT_CHUNK_DELAY_MS = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port (default 8900; 0 picks a free one)")
    parser.add_argument(
        "--app-id",
        action="append",
        default=[],
        metavar="ID",
        help="JWT OAuth app id (repeat, paired with --public-key)",
    )
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="PEM public key of the preceding --app-id; its fingerprint is the kid",
    )
    parser.add_argument("--pat", action="append", default=[], metavar="TOKEN", help="accept this personal access token")
    parser.add_argument("--audience", help="required JWT aud (default: the Host the client connects to)")
    parser.add_argument("--workspace-id", help="workspace id the bots live in")
    parser.add_argument("--admin-token", help="enable /_sandbox/* admin routes, protected by this token")
    parser.add_argument("--seed", type=int, help="seed the fault dice (deterministic faults)")
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=DEFAULT_CHUNK_DELAY_MS,
        help=f"pause between streamed answer chunks, a Coze-like pace (default {DEFAULT_CHUNK_DELAY_MS:g}; "
        "0 streams as fast as it can, for benchmarks)",
    )
    parser.add_argument(
        "--plugin", action="append", default=[], type=Path, metavar="FILE",
        help="import this OpenAPI file as a Coze cloud plugin, with a bot that calls it (repeatable)",
    )
    parser.add_argument(
        "--plugin-token", default=None, metavar="TOKEN",
        help="the plugins' Service token, sent as 'Authorization: Bearer TOKEN' (see --plugin-token-header/-query)",
    )
    parser.add_argument("--plugin-token-header", default=None, metavar="NAME",
                        help="send the token bare in this header instead")
    parser.add_argument("--plugin-token-query", default=None, metavar="NAME",
                        help="send the token as this query parameter instead")
    parser.add_argument("--plugin-tool", default=None, metavar="OPERATION_ID",
                        help="the tool the plugin bot calls (default coffee_knowledge_query, else the first)")
    parser.add_argument(
        "--token-max-seconds", type=int, default=None, metavar="N",
        help="issued access tokens live at most N seconds (drills: watch tokens expire and a key rotation drain)",
    )
    parser.add_argument(
        "--ready-file", type=Path, default=None, metavar="FILE",
        help="write the base URL to FILE once listening (for scripts that start the sandbox)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='fault rule, e.g. \'{"route": "chat.create", "error_rate": 0.1}\' (repeatable)',
    )


def build_config(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox config the flags describe (raises ConfigError on bad flags or unreadable keys)."""
    from kai_bridge.sandbox import FaultRule, SandboxConfig, public_key_kid

    if len(args.app_id) != len(args.public_key):
        raise ConfigError("give one --public-key for each --app-id (they are paired in order)")
    apps: list[tuple[str, bytes]] = []
    for app_id, path in zip(args.app_id, args.public_key, strict=True):
        try:
            pem = path.read_bytes()
            public_key_kid(pem)
        except OSError as exc:
            raise ConfigError(f"cannot read the public key file {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(f"{path} is not a PEM RSA public key ('-----BEGIN PUBLIC KEY-----')") from exc
        apps.append((app_id, pem))
    faults: list[FaultRule] = []
    for raw in args.fault:
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("a fault rule must be a JSON object")
            faults.append(FaultRule.from_json(data))
        except ValueError as exc:
            raise ConfigError(f"bad --fault {raw!r}: {exc}") from exc
    plugins = _plugin_sources(args)
    extra = {"workspace_id": args.workspace_id} if args.workspace_id else {}
    try:
        return SandboxConfig(
            plugins=plugins,
            apps=apps,
            pats=list(args.pat),
            audience=args.audience,
            admin_enabled=args.admin_token is not None,
            admin_token=args.admin_token,
            faults=faults,
            seed=args.seed,
            stream_chunk_delay=max(0.0, args.chunk_delay_ms) / 1000.0,
            token_max_seconds=args.token_max_seconds,
            **extra,
        )
    except ValueError as exc:
        raise ConfigError(f"bad sandbox settings: {exc}") from exc


def _plugin_sources(args: argparse.Namespace) -> list[PluginSource]:
    """The --plugin files, checked now as Coze's importer would (ConfigError names the broken rule)."""
    from kai_bridge.sandbox.plugins import PluginCatalog, PluginImportError, PluginSource, ServiceToken
    from kai_bridge.sandbox.wire import IdGenerator

    if args.plugin_token_header and args.plugin_token_query:
        raise ConfigError("give --plugin-token-header or --plugin-token-query, not both")
    auth: ServiceToken | None = None
    if args.plugin_token:
        if args.plugin_token_query:
            auth = ServiceToken(location="query", key=args.plugin_token_query, value=args.plugin_token)
        elif args.plugin_token_header:
            auth = ServiceToken(location="header", key=args.plugin_token_header, value=args.plugin_token)
        else:
            auth = ServiceToken(location="header", key="Authorization", value=f"Bearer {args.plugin_token}")
    sources: list[PluginSource] = []
    for path in args.plugin:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the plugin file {path}: {exc}") from exc
        try:
            PluginCatalog(ids=IdGenerator()).import_plugin(text, auth=auth, tool=args.plugin_tool)
        except PluginImportError as exc:
            raise ConfigError(f"{path}: Coze would refuse this plugin: {exc}") from None
        sources.append(PluginSource(document=text, auth=auth, tool=args.plugin_tool))
    return sources


async def _serve(config: SandboxConfig, *, host: str, port: int, ready_file: Path | None = None) -> None:
    import anyio

    from kai_bridge.cmd.common import write_ready_file
    from kai_bridge.sandbox import COFFEE_BOT_ID, PLUGIN_BOT_ID, TOOL_NAME, start_sandbox

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with start_sandbox(config, host=host, port=port) as handle:
            out = sys.stdout
            print(f"Coze sandbox listening on {handle.base_url}", file=out)
            print(f"  workspace id : {handle.workspace_id}", file=out)
            print(f"  bot coffee   : {COFFEE_BOT_ID}  (Coffee Expert)", file=out)
            print(f"  bot plugin   : {PLUGIN_BOT_ID}  (Coffee Expert (local plugin), tool {TOOL_NAME})", file=out)
            for plugin in handle.plugins.list() if handle.plugins is not None else []:
                print(f"  plugin bot   : {plugin.bot_id}  ({plugin.name}: calls {plugin.bot_tool} at "
                      f"{plugin.server_url})", file=out)
            print(f"  answers from : {handle.answerer}", file=out)
            if handle.kids:
                for kid, app_id in handle.kids.items():
                    print(f"  JWT app      : {app_id}  kid {kid}", file=out)
            print(f"  PATs         : {len(config.pats)} configured", file=out)
            print(f"  JWT aud      : {config.audience or handle.host_port + ' (the Host clients connect to)'}", file=out)
            print("  callbacks    : /v1/api_apps (Coze callback apps: signed deliveries to your callback URL)", file=out)
            admin = "on (/_sandbox/faults, /_sandbox/state, /_sandbox/events, /_sandbox/deliveries)"
            print(f"  admin routes : {admin if config.admin_enabled else 'off'}", file=out)
            if not handle.kids and not config.pats:
                print("  note: no credentials registered; pass --pat TOKEN or --app-id ID --public-key FILE", file=out)
            print("Press Ctrl-C to stop.", file=out, flush=True)
            if ready_file is not None:
                write_ready_file(ready_file, handle.base_url)
            async for _signal in signals:
                break


def run(args: argparse.Namespace) -> int:
    import anyio

    from kai_bridge.config import check_host_resolves

    config = build_config(args)
    check_host_resolves(args.host, name="--host")
    try:
        anyio.run(lambda: _serve(config, host=args.host, port=args.port, ready_file=args.ready_file))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return 0
