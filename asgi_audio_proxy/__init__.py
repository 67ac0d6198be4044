"""asgi-audio-proxy: put a real-time voice model (MiniCPM-o) behind one WebSocket in any ASGI app.

Clients stream PCM16 mono 16 kHz audio as binary frames; the proxy sends it to the model server
as 200 ms WAV messages and relays the reply: text as ``{"type": "text", "content": ...}``,
audio as PCM16 16 kHz binary frames.
"""

from __future__ import annotations

from .admission import Authenticator, Denied, TokenAuth, authenticate_scope, origin_allowed
from .audio import (
    CLIENT_SAMPLE_RATE_HZ,
    MESSAGE_BYTES,
    MESSAGE_SAMPLES,
    AudioFormatError,
    ChunkBuffer,
    Resampler,
    WavAudio,
    b64decode_strict,
    pcm16_to_wav,
    wav_to_pcm16,
)
from .config import CLIENT_OPTION_KEYS, ProxyConfig, UpstreamOptions
from .connection import ClientConnection, ClientGone, StarletteClient, WebsocketsClient, as_client
from .errors import (
    AudioProxyError,
    BadClientPayload,
    ClientError,
    ClientTooSlow,
    IdleTimeout,
    MessageTooBig,
    ServerShutdown,
    SessionLimitExceeded,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .middleware import AudioProxy, AudioProxyMiddleware
from .serving import GracefulServer, serve
from .session import Lease, ProxySession, SessionState, UpstreamLeaser
from .stats import SessionLog, SessionStats
from .upstream import BodyClosed, MiniCPMUpstream, Upstream, UpstreamItem
from .voice_client import VoiceClient

__version__ = "0.1.0"

__all__ = [
    "CLIENT_OPTION_KEYS",
    "CLIENT_SAMPLE_RATE_HZ",
    "MESSAGE_BYTES",
    "MESSAGE_SAMPLES",
    "AudioFormatError",
    "AudioProxy",
    "AudioProxyError",
    "AudioProxyMiddleware",
    "Authenticator",
    "BadClientPayload",
    "BodyClosed",
    "ChunkBuffer",
    "ClientConnection",
    "ClientError",
    "ClientGone",
    "ClientTooSlow",
    "Denied",
    "GracefulServer",
    "IdleTimeout",
    "Lease",
    "MessageTooBig",
    "MiniCPMUpstream",
    "ProxyConfig",
    "ProxySession",
    "Resampler",
    "ServerShutdown",
    "SessionLimitExceeded",
    "SessionLog",
    "SessionState",
    "SessionStats",
    "StarletteClient",
    "TokenAuth",
    "Upstream",
    "UpstreamError",
    "UpstreamItem",
    "UpstreamLeaser",
    "UpstreamOptions",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "VoiceClient",
    "WavAudio",
    "WebsocketsClient",
    "__version__",
    "as_client",
    "authenticate_scope",
    "b64decode_strict",
    "origin_allowed",
    "pcm16_to_wav",
    "serve",
    "wav_to_pcm16",
]
