"""The one object that holds a sandbox instance's parts, handed to every route module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kai_bridge.sandbox.answers import Answerer
from kai_bridge.sandbox.auth import AuthService
from kai_bridge.sandbox.callbacks import CallbackHub
from kai_bridge.sandbox.config import SandboxConfig
from kai_bridge.sandbox.engine import ChatEngine
from kai_bridge.sandbox.faults import FaultEngine
from kai_bridge.sandbox.plugins import PluginCatalog
from kai_bridge.sandbox.state import SandboxState
from kai_bridge.sandbox.store import Store

__all__ = ["SandboxContext"]


@dataclass(frozen=True, slots=True)
class SandboxContext:
    config: SandboxConfig
    clock: Callable[[], float]
    state: SandboxState
    auth: AuthService
    store: Store
    engine: ChatEngine
    faults: FaultEngine
    answerer: Answerer
    callbacks: CallbackHub
    plugins: PluginCatalog
