"""The edge: the ASGI app and middleware, admission before accept, the client connection
adapters, the ``VoiceClient`` facade and the graceful server runner.
"""

from __future__ import annotations

from .admission import Authenticator, Denied, TokenAuth, authenticate_scope, origin_allowed
from .connection import ClientConnection, ClientGone, StarletteClient, WebsocketsClient, as_client
from .middleware import AudioProxy, AudioProxyMiddleware
from .serving import GracefulServer, serve
from .voice_client import VoiceClient

__all__ = [
    "AudioProxy",
    "AudioProxyMiddleware",
    "Authenticator",
    "ClientConnection",
    "ClientGone",
    "Denied",
    "GracefulServer",
    "StarletteClient",
    "TokenAuth",
    "VoiceClient",
    "WebsocketsClient",
    "as_client",
    "authenticate_scope",
    "origin_allowed",
    "serve",
]
