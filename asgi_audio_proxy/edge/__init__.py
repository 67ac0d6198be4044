"""The edge: the ASGI app and middleware, admission before accept, the client connection
adapters, the load monitor admission sheds by, the ``VoiceClient`` facade and the graceful
server runner.
"""

from __future__ import annotations

from .admission import (
    Authenticator,
    Denied,
    ParameterCheck,
    TokenAuth,
    admit_parameters,
    authenticate_scope,
    origin_allowed,
)
from .collector import settle_collector
from .connection import ClientConnection, ClientGone, StarletteClient, WebsocketsClient, as_client
from .load_monitor import LagGauge, LoopLagMonitor
from .middleware import AudioProxy, AudioProxyMiddleware
from .pool_file import read_pool_file
from .serving import GracefulServer, build_server_app, serve
from .settings import (
    ENV_PREFIX,
    SERVE_SETTINGS,
    ServeSettings,
    Setting,
    SettingError,
    add_settings,
    resolve_settings,
)
from .voice_client import VoiceClient, shared_pool

__all__ = [
    "ENV_PREFIX",
    "SERVE_SETTINGS",
    "AudioProxy",
    "AudioProxyMiddleware",
    "Authenticator",
    "ClientConnection",
    "ClientGone",
    "Denied",
    "GracefulServer",
    "LagGauge",
    "LoopLagMonitor",
    "ParameterCheck",
    "ServeSettings",
    "Setting",
    "SettingError",
    "StarletteClient",
    "TokenAuth",
    "VoiceClient",
    "WebsocketsClient",
    "add_settings",
    "admit_parameters",
    "as_client",
    "authenticate_scope",
    "build_server_app",
    "origin_allowed",
    "read_pool_file",
    "resolve_settings",
    "serve",
    "settle_collector",
    "shared_pool",
]
