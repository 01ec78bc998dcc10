"""The Coze plugin face: the tool registry as a Coze plugin (``/plugin/tools/{name}``) and its OpenAPI file.

- :class:`PluginFace` / :func:`plugin_routes`: the Starlette routes (see :mod:`kai_bridge.plugin.routes`
  for the contract: Service token, tool errors as HTTP 200 with ``error``, bounded calls);
- :func:`build_openapi`: the OpenAPI 3.0.1 document Coze imports, generated from the registry;
- :func:`caller_from_headers`: the caller identity Coze's plugin headers carry.
"""

from kai_bridge.plugin.identity import caller_from_headers, coze_user_key
from kai_bridge.plugin.openapi import (
    PLACEHOLDER_SERVER_URL,
    build_openapi,
    check_server_url,
    coze_schema,
    dump_json,
    dump_yaml,
    select_tools,
)
from kai_bridge.plugin.routes import PluginFace, PluginOptions, PluginToolContext, plugin_routes

__all__ = [
    "PLACEHOLDER_SERVER_URL",
    "PluginFace",
    "PluginOptions",
    "PluginToolContext",
    "build_openapi",
    "caller_from_headers",
    "check_server_url",
    "coze_schema",
    "coze_user_key",
    "dump_json",
    "dump_yaml",
    "plugin_routes",
    "select_tools",
]
