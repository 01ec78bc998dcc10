"""``kai-bridge doctor``: check the configuration and every dependency, one line each.

It loads the settings (reporting every problem), opens the runtime exactly as ``serve``
does, and pings each part: Coze (a token and a cheap authenticated call), the store, the
knowledge base (the seed's example question) and each upstream KAI server. Exit 0 when all
pass, 1 otherwise. Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from kai_bridge.errors import ConfigError, KaiBridgeError

__all__ = ["HELP", "add_arguments", "run"]

HELP = "check the settings, the Coze credentials and every dependency"
SEED_QUESTION = "埃塞俄比亚咖啡特点"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed for each check")


def _line(ok: bool, name: str, detail: str) -> str:
    return f"[{'ok' if ok else 'FAIL'}] {name}: {detail}"


async def _doctor(args: argparse.Namespace) -> int:
    import anyio

    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.logs import redact
    from kai_bridge.runtime import open_runtime

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(_line(False, "settings", str(exc)))
        return 1
    print(_line(True, "settings", f"auth={settings.auth_mode} api_base={settings.coze_api_base or '(sandbox)'}"))
    print(f"[info] data_dir: {settings.data_dir}" + ("" if settings.store_url else " (the SQLite store is here)"))
    print(f"[info] log_dir: {settings.log_dir} (coze_integration.log, error.log)")
    failures = 0
    notes: list[str] = []
    async with open_runtime(settings, announce=notes.append) as runtime:
        for note in notes:
            print(f"[note] {note}")

        async def coze() -> str:
            await runtime.coze.ping()
            auth = runtime.coze.diagnostics().get("auth", {})
            return f"authenticated ({auth.get('mode', settings.auth_mode)})"

        async def store() -> str:
            await runtime.store.ping()
            return f"{runtime.store.kind} reachable"

        async def knowledge() -> str:
            answer = await runtime.knowledge.query(SEED_QUESTION, top_k=1)
            top = answer.passages[0].article_id if answer.passages else "nothing"
            return f"{runtime.knowledge.base.article_count} articles; '{SEED_QUESTION}' -> {top}"

        checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("coze", coze), ("store", store), ("knowledge", knowledge),
        ]
        for name, check in checks:
            try:
                with anyio.fail_after(args.timeout):
                    detail = await check()
                print(_line(True, name, detail))
            except TimeoutError:
                failures += 1
                print(_line(False, name, f"no answer within {args.timeout:g} s"))
            except KaiBridgeError as exc:
                failures += 1
                print(_line(False, name, redact(str(exc))))
        if runtime.settings.upstreams:
            await runtime.upstreams.wait_ready(args.timeout)
        for upstream in runtime.upstreams.diagnostics():
            ok = upstream.get("state") == "connected"
            failures += 0 if ok else 1
            detail = f"{upstream.get('state')} ({upstream.get('tool_count', 0)} tools)"
            if upstream.get("last_error"):
                detail += f": {upstream['last_error']}"
            print(_line(ok, f"upstream {upstream.get('name')}", detail))
    print("all checks passed" if failures == 0 else f"{failures} check(s) failed", file=sys.stderr)
    return 0 if failures == 0 else 1


def run(args: argparse.Namespace) -> int:
    import anyio

    return anyio.run(_doctor, args)
