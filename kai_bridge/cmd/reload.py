"""SIGHUP for the long-running commands (serve, stdio): re-read the settings, rotate the Coze credential.

On each SIGHUP the settings are loaded again the way the command loaded them at start (the
``--config`` TOML file, the environment, the flags: a value the environment sets stays what
it was) and :func:`~kai_bridge.wiring.rotation.rotate_credential` takes over a new Coze key
pair or PAT. A reload that cannot be applied is logged at ERROR with the reason and changes
nothing: the credential in use stays. Settings other than the credential that changed are
named in a WARNING (they apply on the next start). Without a handler SIGHUP would end the
process; with one it never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio

from kai_bridge.errors import ConfigError

if TYPE_CHECKING:
    from kai_bridge.config import Settings
    from kai_bridge.coze import CozeClient

__all__ = ["reload_once", "reloading_on_sighup"]

logger = logging.getLogger(__name__)


async def reload_once(client: CozeClient, *, current: Settings, load: Callable[[], Settings]) -> bool:
    """One reload: True when the settings were read and the credential taken over (or unchanged)."""
    from kai_bridge.wiring.rotation import changed_on_restart_only, rotate_credential

    try:
        fresh = load()
    except ConfigError as exc:
        logger.error("SIGHUP: the settings could not be read again, nothing changed (the Coze credential in "
                     "use stays): %s", exc)
        return False
    try:
        done = await rotate_credential(client, current=current, fresh=fresh)
    except ConfigError as exc:
        logger.error("SIGHUP: the new Coze credential was refused and the one in use stays: %s", exc)
        return False
    logger.info("SIGHUP: %s", done)
    later = changed_on_restart_only(current, fresh)
    if later:
        logger.warning("SIGHUP: changed settings that apply only after a restart: %s", ", ".join(later))
    return True


@contextlib.asynccontextmanager
async def reloading_on_sighup(client: CozeClient, *, current: Settings,
                              load: Callable[[], Settings]) -> AsyncIterator[None]:
    """While the block runs, each SIGHUP reloads (see the module docstring); the handler is in place on entry."""
    with anyio.open_signal_receiver(signal.SIGHUP) as signals:

        async def receive() -> None:
            async for _signal in signals:
                await reload_once(client, current=current, load=load)

        # A plain task, not a task group: the block's own errors must come out unwrapped.
        task = asyncio.ensure_future(receive())
        try:
            yield
        finally:
            task.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await task
