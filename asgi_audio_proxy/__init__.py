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
from .controls import ConfigControl, Control, StopControl, parse_control
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
from .health import HealthSource, UpstreamHealth
from .lease import Lease, UpstreamLeaser
from .leases import (
    DEFAULT_LEASE_TTL_S,
    Grant,
    LeaseStore,
    MemoryLeaseStore,
    QueueFull,
    StoreSnapshot,
    Waiting,
)
from .metrics import LATENCY_BUCKETS_S, WAIT_BUCKETS_S, MeteredClient, ProxyMetrics
from .middleware import AudioProxy, AudioProxyMiddleware
from .pool import PoolLease, UpstreamPool
from .serving import GracefulServer, serve
from .session import ProxySession, SessionState
from .stats import AudioLedger, SessionLog, SessionStats
from .upstream import BodyClosed, MiniCPMUpstream, Upstream, UpstreamItem, new_http_client
from .voice_client import VoiceClient

__version__ = "0.1.0"

__all__ = [
    "CLIENT_OPTION_KEYS",
    "CLIENT_SAMPLE_RATE_HZ",
    "DEFAULT_LEASE_TTL_S",
    "LATENCY_BUCKETS_S",
    "MESSAGE_BYTES",
    "MESSAGE_SAMPLES",
    "WAIT_BUCKETS_S",
    "AudioFormatError",
    "AudioLedger",
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
    "ConfigControl",
    "Control",
    "Denied",
    "GracefulServer",
    "Grant",
    "HealthSource",
    "IdleTimeout",
    "Lease",
    "LeaseStore",
    "MemoryLeaseStore",
    "MessageTooBig",
    "MeteredClient",
    "MiniCPMUpstream",
    "PoolLease",
    "ProxyConfig",
    "ProxyMetrics",
    "ProxySession",
    "QueueFull",
    "Resampler",
    "ServerShutdown",
    "SessionLimitExceeded",
    "SessionLog",
    "SessionState",
    "SessionStats",
    "StarletteClient",
    "StopControl",
    "StoreSnapshot",
    "TokenAuth",
    "Upstream",
    "UpstreamError",
    "UpstreamHealth",
    "UpstreamItem",
    "UpstreamLeaser",
    "UpstreamOptions",
    "UpstreamPool",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "VoiceClient",
    "Waiting",
    "WavAudio",
    "WebsocketsClient",
    "__version__",
    "as_client",
    "authenticate_scope",
    "b64decode_strict",
    "new_http_client",
    "origin_allowed",
    "parse_control",
    "pcm16_to_wav",
    "serve",
    "wav_to_pcm16",
]
