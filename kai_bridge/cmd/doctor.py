"""``kai-bridge doctor``: check the configuration and every dependency, one line each.

It loads the settings (reporting every problem), opens the runtime exactly as ``serve``
does, and runs the health checks the composition root declares (the same ones ``/ready``
runs): Coze (a token and a cheap authenticated call), the store, the knowledge base (the
seed's example question) and each upstream KAI server. Exit 0 when all pass, 1 otherwise.
Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import sys

from kai_bridge.errors import ConfigError
from kai_bridge.logs import redact
from kai_bridge.urls import redact_url

__all__ = ["HELP", "add_arguments", "run"]

HELP = "check the settings, the Coze credentials and every dependency"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed for each check")


def _line(ok: bool, name: str, detail: str) -> str:
    return f"[{'ok' if ok else 'FAIL'}] {name}: {redact(detail)}"


async def _doctor(args: argparse.Namespace) -> int:

    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.runtime import open_runtime

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(_line(False, "settings", str(exc)))
        return 1
    print(_line(True, "settings", f"auth={settings.auth_mode} api_base={redact_url(settings.coze_api_base) or '(sandbox)'}"))
    print(f"[info] data_dir: {settings.data_dir}" + ("" if settings.store_url else " (the SQLite store is here)"))
    print(f"[info] log_dir: {settings.log_dir} (coze_integration.log, error.log)")
    notes: list[str] = []
    async with open_runtime(settings, announce=notes.append) as runtime:
        for note in notes:
            print(f"[note] {redact(note)}")
        if runtime.settings.upstreams:
            # Upstreams connect in the background: give them the same time a check gets.
            await runtime.upstreams.wait_ready(args.timeout)
        # The same checks /ready runs, as the composition root declared them.
        results = await runtime.health.run(timeout=args.timeout)
    for result in results:
        print(_line(result.ok, result.name, result.detail))
    failures = sum(1 for result in results if not result.ok)
    print("all checks passed" if failures == 0 else f"{failures} check(s) failed", file=sys.stderr)
    return 0 if failures == 0 else 1


def run(args: argparse.Namespace) -> int:
    import anyio

    return anyio.run(_doctor, args)
