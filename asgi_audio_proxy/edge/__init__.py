"""The edge: the ASGI app and middleware, admission before accept, the client connection
adapters, the load monitor admission sheds by, the ``VoiceClient`` facade and the graceful
server runner.

A name here is imported from its module when first asked for, so ``serve``'s settings (all the
command line needs) do not load the session and everything under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
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


# where each name lives
_HOMES = {
    "AudioProxy": ".middleware",
    "AudioProxyMiddleware": ".middleware",
    "Authenticator": ".admission",
    "ClientConnection": ".connection",
    "ClientGone": ".connection",
    "Denied": ".admission",
    "ENV_PREFIX": ".settings",
    "GracefulServer": ".serving",
    "LagGauge": ".load_monitor",
    "LoopLagMonitor": ".load_monitor",
    "ParameterCheck": ".admission",
    "SERVE_SETTINGS": ".settings",
    "ServeSettings": ".settings",
    "Setting": ".settings",
    "SettingError": ".settings",
    "StarletteClient": ".connection",
    "TokenAuth": ".admission",
    "VoiceClient": ".voice_client",
    "WebsocketsClient": ".connection",
    "add_settings": ".settings",
    "admit_parameters": ".admission",
    "as_client": ".connection",
    "authenticate_scope": ".admission",
    "build_server_app": ".serving",
    "origin_allowed": ".admission",
    "read_pool_file": ".pool_file",
    "resolve_settings": ".settings",
    "serve": ".serving",
    "settle_collector": ".collector",
    "shared_pool": ".voice_client",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__, globals())
