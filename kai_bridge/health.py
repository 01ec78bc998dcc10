"""The composition root's declarations of its long-lived services: how each is built, pinged and closed.

The svcs shape: :meth:`Health.open` enters a service's context manager on the root's exit
stack (so services close in reverse order of opening) and records its ping; :meth:`Health.declare`
adds a ping for something opened another way (each upstream KAI server). Every reader of
health (``/ready``, ``/health``, ``kai-bridge doctor``, metrics) reads these declarations and
nothing else. A ping returns a short detail on success and raises on failure; a failed
*critical* check makes the process not ready, a failed non-critical one only degraded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import anyio

from kai_bridge.errors import KaiBridgeError

__all__ = ["Check", "CheckResult", "Health", "safe_error_text"]

T = TypeVar("T")
Ping = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    name: str
    ping: Ping
    critical: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    name: str
    ok: bool
    critical: bool
    detail: str  # what the ping said, or the (safe) reason it failed
    ms: float
    at: float  # Unix time the check finished


def safe_error_text(exc: BaseException) -> str:
    """Messages of kai-bridge's own errors are written to be shown; anything else is reduced to its type."""
    if isinstance(exc, KaiBridgeError):
        return str(exc)
    return f"{type(exc).__name__} (details in the server log)"


class Health:
    """The services the root opened, with their pings; see the module docstring."""

    def __init__(self, stack: contextlib.AsyncExitStack, *, clock: Callable[[], float] = time.time) -> None:
        self._stack = stack
        self._clock = clock
        self._checks: dict[str, Check] = {}
        self._last: dict[str, CheckResult] = {}

    async def open(
        self,
        name: str,
        service: contextlib.AbstractAsyncContextManager[T],
        *,
        ping: Callable[[T], Awaitable[str]] | None = None,
        critical: bool = True,
    ) -> T:
        """Enter ``service`` (closed with the root, in reverse order) and declare its ping."""
        value = await self._stack.enter_async_context(service)
        if ping is not None:

            async def bound() -> str:
                return await ping(value)

            self.declare(name, ping=bound, critical=critical)
        return value

    def declare(self, name: str, *, ping: Ping, critical: bool = True) -> None:
        if name in self._checks:
            raise ValueError(f"a health check named {name!r} is already declared")
        self._checks[name] = Check(name=name, ping=ping, critical=critical)

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(self._checks.values())

    @property
    def last(self) -> Mapping[str, CheckResult]:
        """The latest result of each check that has run (liveness reads this; it never pings)."""
        return dict(self._last)

    async def run(self, *, timeout: float = 5.0, names: set[str] | None = None) -> list[CheckResult]:  # noqa: ASYNC109
        """Run the checks concurrently (each bounded by ``timeout``); results in declaration order."""
        chosen = [c for c in self._checks.values() if names is None or c.name in names]
        results: dict[str, CheckResult] = {}

        async def one(check: Check) -> None:
            begun = time.perf_counter()
            ok = False
            try:
                with anyio.fail_after(timeout):
                    detail = await check.ping()
                ok = True
            except TimeoutError:
                detail = f"no answer within {timeout:g} s"
            except Exception as exc:
                detail = safe_error_text(exc)
            results[check.name] = CheckResult(
                name=check.name,
                ok=ok,
                critical=check.critical,
                detail=detail,
                ms=round((time.perf_counter() - begun) * 1000, 1),
                at=self._clock(),
            )

        async with anyio.create_task_group() as tg:
            for check in chosen:
                tg.start_soon(one, check)
        ordered = [results[c.name] for c in chosen]
        self._last.update((r.name, r) for r in ordered)
        return ordered
