"""asgi-audio-proxy: put a real-time voice model (MiniCPM-o) behind one WebSocket in any ASGI app.

The names a user needs are here; everything else is importable from its subpackage:
``audio`` (pure audio), ``dialects`` (client wire formats), ``edge`` (ASGI app, middleware,
admission, serving), ``session`` (one conversation), ``upstreams`` (model-server adapters),
``pool`` (leases and the fair queue), ``simulator``, ``client`` (the command-line client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_names

if TYPE_CHECKING:
    from .config import ProxyConfig, UpstreamOptions
    from .dialects.realtime import realtime_dialect
    from .dialects.twilio import twilio_dialect
    from .edge.admission import Denied, TokenAuth
    from .edge.middleware import AudioProxy, AudioProxyMiddleware
    from .edge.serving import serve
    from .edge.voice_client import VoiceClient
    from .errors import AudioProxyError, ClientError, UpstreamError
    from .metrics import ProxyMetrics
    from .pool.file_store import FileLeaseStore
    from .pool.pool import UpstreamPool
    from .pool.redis_store import RedisLeaseStore
    from .pool.store import MemoryLeaseStore
    from .session.stats import SessionStats

__version__ = "0.2.0"

__all__ = [
    "AudioProxy",
    "AudioProxyError",
    "AudioProxyMiddleware",
    "ClientError",
    "Denied",
    "FileLeaseStore",
    "MemoryLeaseStore",
    "ProxyConfig",
    "ProxyMetrics",
    "RedisLeaseStore",
    "SessionStats",
    "TokenAuth",
    "UpstreamError",
    "UpstreamOptions",
    "UpstreamPool",
    "VoiceClient",
    "__version__",
    "realtime_dialect",
    "serve",
    "twilio_dialect",
]


# Where each name lives. A name is imported when first asked for, so a command that needs one
# part (the simulator, the client) does not load them all; Redis is an optional extra.
_HOMES = {
    "ProxyConfig": ".config",
    "UpstreamOptions": ".config",
    "realtime_dialect": ".dialects.realtime",
    "twilio_dialect": ".dialects.twilio",
    "Denied": ".edge.admission",
    "TokenAuth": ".edge.admission",
    "AudioProxy": ".edge.middleware",
    "AudioProxyMiddleware": ".edge.middleware",
    "serve": ".edge.serving",
    "VoiceClient": ".edge.voice_client",
    "AudioProxyError": ".errors",
    "ClientError": ".errors",
    "UpstreamError": ".errors",
    "ProxyMetrics": ".metrics",
    "FileLeaseStore": ".pool.file_store",
    "UpstreamPool": ".pool.pool",
    "MemoryLeaseStore": ".pool.store",
    "SessionStats": ".session.stats",
    "RedisLeaseStore": ".pool",  # says which extra to install when redis is missing
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__, globals())
