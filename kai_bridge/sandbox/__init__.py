"""A Coze-compatible sandbox: Coze's Open API paths, envelopes, SSE and JWT checks, offline.

It is the default upstream when no Coze credentials are configured, the upstream of the
project's tests and benchmarks, and a tool for developing without a network. The official SDK
``cozepy`` works against it unchanged. It shares no code with ``kai_bridge.coze`` so each side
checks the other.

- :func:`create_app` builds the ASGI app (usable in-process with ``httpx.ASGITransport``);
- :func:`start_sandbox` serves it on a real socket in the current event loop;
- bots: :data:`COFFEE_BOT_ID` answers directly, :data:`PLUGIN_BOT_ID` calls the local plugin
  ``coffee_knowledge_query`` through requires_action / submit_tool_outputs.

Choices where Coze's behaviour is unknown: HTTP statuses follow coze-js's pairing (400/4000,
401/4100, 403/4101, 404/4200, 429/4013, 5xx/5000) plus 409 for 4016 (a chat already runs in
the conversation) and 400 for 4104; an unknown bot is 4200 (404); an unknown path is 4200
(404) and a wrong method 4000 (405), both as JSON; token-endpoint errors are 401
(``invalid_client``) or 400 (``invalid_request``, ``unsupported_grant_type``); the grant body is
checked before the JWT, so a refused grant does not use up the JWT's ``jti``.

The app and the server (Starlette, uvicorn) are imported on first use of their names, so a
process that only needs the config or the answerers (``kai-bridge call``) loads no HTTP stack.
"""

import importlib
from typing import TYPE_CHECKING

from kai_bridge.sandbox.answers import Answerer, BuiltinAnswerer, KnowledgeAnswerer, answerer_name, default_answerer
from kai_bridge.sandbox.bots import TOOL_NAME
from kai_bridge.sandbox.config import (
    COFFEE_BOT_ID,
    DEFAULT_WORKSPACE_ID,
    PLUGIN_BOT_ID,
    FaultRule,
    RegisteredApp,
    SandboxConfig,
    public_key_kid,
)
from kai_bridge.sandbox.state import SandboxState

if TYPE_CHECKING:
    from kai_bridge.sandbox.app import create_app, sandbox_context
    from kai_bridge.sandbox.server import SandboxHandle, start_sandbox

__all__ = [
    "COFFEE_BOT_ID",
    "DEFAULT_WORKSPACE_ID",
    "PLUGIN_BOT_ID",
    "TOOL_NAME",
    "Answerer",
    "BuiltinAnswerer",
    "FaultRule",
    "KnowledgeAnswerer",
    "RegisteredApp",
    "SandboxConfig",
    "SandboxHandle",
    "SandboxState",
    "answerer_name",
    "create_app",
    "default_answerer",
    "public_key_kid",
    "sandbox_context",
    "start_sandbox",
]

_LAZY = {
    "create_app": "kai_bridge.sandbox.app",
    "sandbox_context": "kai_bridge.sandbox.app",
    "SandboxHandle": "kai_bridge.sandbox.server",
    "start_sandbox": "kai_bridge.sandbox.server",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kai_bridge.sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
