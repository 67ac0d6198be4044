"""asgi-audio-proxy: put a real-time voice model (MiniCPM-o) behind one WebSocket in any ASGI app.

The names a user needs are here; everything else is importable from its subpackage:
``audio`` (pure audio), ``dialects`` (client wire formats), ``edge`` (ASGI app, middleware,
admission, serving), ``session`` (one conversation), ``upstreams`` (model-server adapters),
``pool`` (leases and the fair queue), ``simulator``, ``client`` (the command-line client).
"""

from __future__ import annotations

from typing import Any

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


def __getattr__(name: str) -> Any:
    # Redis is an optional extra: the store is imported when first asked for
    if name == "RedisLeaseStore":
        from .pool import RedisLeaseStore

        return RedisLeaseStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
