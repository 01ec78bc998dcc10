"""Settings -> the objects the core is built from; the only place that maps one to the other.

The Coze layer (:mod:`kai_bridge.coze`) takes plain keyword options and knows nothing of
:class:`~kai_bridge.config.Settings`; :mod:`kai_bridge.wiring.coze` reads the settings and
builds the HTTP pool, the credential, the retry policy, the breaker and the client: for real
Coze, or for the embedded sandbox when no credentials are set.
"""

from kai_bridge.wiring.coze import (
    SANDBOX_APP_ID,
    CozeSession,
    auth_from_settings,
    breaker_from_settings,
    client_from_settings,
    http_client_from_settings,
    open_coze_session,
    retry_from_settings,
)

__all__ = [
    "SANDBOX_APP_ID",
    "CozeSession",
    "auth_from_settings",
    "breaker_from_settings",
    "client_from_settings",
    "http_client_from_settings",
    "open_coze_session",
    "retry_from_settings",
]
